package cold

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/hsm/tlskey"
	"github.com/nanokms/nanokms/internal/p11uri"
	"github.com/nanokms/nanokms/metrics"
	"github.com/nanokms/nanokms/metrics/signermetrics"
	"github.com/nanokms/nanokms/signer"
	"github.com/nanokms/nanokms/signer/signerconf"
)

// The token is the signer's key store, and the token monitor its server
// follows (found at run time, so a token that stopped being one would
// silently go unwatched: checked here at build time).
var (
	_ signer.KeyStore     = (*hsm.Token)(nil)
	_ signer.TokenMonitor = (*hsm.Token)(nil)
)

type signerOptions struct {
	config string
}

func newSignerCmd(e *cli.Env) *cobra.Command {
	var opts signerOptions
	cmd := &cobra.Command{
		Use:   "signer --config F",
		Short: "Run the cold signer: verify, decide, record, sign (gRPC on a Unix socket or mTLS)",
		Long: `Runs the cold signer with the configuration file F (docs/CONFIG.md). It
opens its state (the bbolt file signer.state, or the signers' PostgreSQL
database of [signer.postgres]), logs in to the token with the PIN from the
configured file or environment variable, and serves the Signer gRPC API and
the gRPC health service until interrupted; then it finishes in-flight
requests (within signer.shutdown_grace) and exits. Logs are JSON lines on
standard error.`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSigner(cmd.Context(), e, opts)
		},
	}
	cmd.Flags().StringVar(&opts.config, "config", "", "the signer's configuration file")
	cmd.AddCommand(newSignerAdoptCmd(e), newSignerAccountsCmd(e), newSignerReleaseCmd(e), newSignerStateCmd(e),
		newSignerBackupCmd(e), newSignerRestoreCmd(e))
	return cmd
}

// loadSignerConfig loads --config, with a hint on failure.
func loadSignerConfig(path string) (*signerconf.Config, error) {
	if path == "" {
		return nil, cli.UsageErr("--config is required")
	}
	cfg, err := signerconf.Load(path)
	if err != nil {
		return nil, cli.WithHint(err, "docs/CONFIG.md documents every key")
	}
	return cfg, nil
}

func runSigner(ctx context.Context, e *cli.Env, opts signerOptions) error {
	defer TuneSignerGC()()
	cfg, err := loadSignerConfig(opts.config)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(e.Stderr, &slog.HandlerOptions{Level: cli.LogLevel(cfg.Signer.LogLevel)}))

	store, err := openSignerStore(ctx, &cfg.Signer)
	if err != nil {
		return err
	}
	defer store.Close()

	// The PIN is read once: the TLS key (when it is on the token) and the
	// keystore share it, and hsm.ReadPIN removes an environment variable
	// once read.
	pin, err := readSignerPIN(cfg.Token)
	if err != nil {
		return err
	}
	defer pin.Wipe()
	// The TLS key first: crypto11 must initialise the module before
	// package hsm does (see package hsm/tlskey).
	var tlsKey *tlskey.Key
	if t := cfg.Signer.TLS; t != nil && t.KeyLabel != "" {
		tlsKey, err = openTLSKey(ctx, cfg.Token.Module, cfg.Token.Label, t.KeyLabel, pin, "signer.tls.key_label")
		if err != nil {
			return noRestartOnPIN(err)
		}
		defer tlsKey.Close()
	}
	tok, err := openSignerToken(ctx, cfg.Token, pin)
	if err != nil {
		return noRestartOnPIN(err)
	}
	defer tok.Close()
	pin.Wipe()

	// What the token does not enforce is said at every start, never
	// silently accepted (docs/HSM.md).
	if ne := tok.Capabilities().NotEnforced(); len(ne) > 0 {
		names := make([]string, len(ne))
		for i, a := range ne {
			names[i] = string(a.Attribute)
		}
		log.Warn("the token does not enforce these protective attributes", "token", tokenDisplay(cfg.Token), "not_enforced", names)
	}
	m := signermetrics.NewSigner()
	s := store.newSigner(tok, &cfg.Policy, signer.Options{MaxIntentTTL: cfg.Signer.MaxIntentTTL, Logger: log, Observe: m.Observe})
	// The metrics file is written until the signer has stopped, then once more.
	mctx, stopMetrics := context.WithCancel(context.Background())
	metricsDone := metrics.StartTextfile(mctx, m.Registry, cfg.Signer.Metrics, 0,
		func(err error) { log.Warn("writing metrics", "file", cfg.Signer.Metrics, "error", err.Error()) })
	defer func() { stopMetrics(); metricsDone() }()
	sopts := signer.ServeOptions{Listen: cfg.Signer.Listen, Grace: cfg.Signer.ShutdownGrace, ObserveToken: m.ObserveToken}
	if t := cfg.Signer.TLS; t != nil {
		sopts.CertFile, sopts.KeyFile, sopts.ClientCAFile, sopts.AllowedIdentities = t.Cert, t.Key, t.ClientCA, t.AllowedIdentities
		if tlsKey != nil {
			sopts.Key = tlsKey
		}
	}
	l, err := signer.Listen(sopts)
	if err != nil {
		return err
	}
	if cfg.Signer.HealthListen != "" {
		if sopts.HealthListener, err = listenHealth(cfg.Signer.HealthListen, "signer.health_listen"); err != nil {
			l.Close()
			return err
		}
	}
	log.Info("serving", "listen", cfg.Signer.Listen, "state", store.describe(&cfg.Signer), "token", tokenDisplay(cfg.Token), "metrics", cfg.Signer.Metrics,
		"health", cfg.Signer.HealthListen)
	if err := signer.Serve(ctx, l, signer.NewServer(s), sopts); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// tokenDisplay names the configured token in logs: its label, or its URI.
func tokenDisplay(tc signerconf.Token) string {
	if tc.Label != "" {
		return tc.Label
	}
	return tc.URI
}

// exitSignerPIN is the signer's exit status when the token refused its
// PIN or the PIN is locked. A service manager must not restart it then:
// every restart would try the PIN again, and the token locks it after a
// few failures (deploy/systemd/nanokms-signer.service has
// RestartPreventExitStatus=3).
const exitSignerPIN = 3

// noRestartOnPIN gives a wrong or locked PIN the exit status exitSignerPIN.
func noRestartOnPIN(err error) error {
	if !errors.Is(err, hsm.ErrWrongPIN) && !errors.Is(err, hsm.ErrPINLocked) {
		return err
	}
	var ce *cli.Error
	if errors.As(err, &ce) {
		ce.Code = exitSignerPIN
		return err
	}
	return &cli.Error{Err: err, Code: exitSignerPIN}
}

// readSignerPIN reads the token PIN from where the configuration says.
func readSignerPIN(tc signerconf.Token) (*hsm.PIN, error) {
	pin, err := hsm.ReadPIN(tc.PINFile, tc.PINEnv)
	if err != nil {
		return nil, cli.WithHint(fmt.Errorf("reading the token PIN: %w", err), "the PIN comes from token.pin_file (readable by this user only: chmod 600) or the variable token.pin_env names")
	}
	return pin, nil
}

// openSignerToken logs in to the token the configuration names.
func openSignerToken(ctx context.Context, tc signerconf.Token, pin *hsm.PIN) (*hsm.Token, error) {
	cfg := hsm.Config{Module: tc.Module, ModuleParams: tc.ModuleParams, TokenLabel: tc.Label, WalletDir: tc.WalletDir, PIN: pin, PoolSize: tc.PoolSize,
		NoModuleReload: !tc.ReloadModule}
	if tc.URI != "" {
		u, err := p11uri.Parse(tc.URI)
		if err != nil { // signerconf.Load checked it
			return nil, fmt.Errorf("token.uri: %w", err)
		}
		cfg.URI = u
	}
	tok, err := hsm.Open(ctx, cfg)
	if err != nil {
		return nil, HintTokenErr(err)
	}
	return tok, nil
}

// HintTokenErr attaches a hint to the token errors an operator can act on.
func HintTokenErr(err error) error {
	switch {
	case errors.Is(err, hsm.ErrWrongPIN):
		return cli.WithHint(fmt.Errorf("the token refused the PIN (it was tried once): %w", err), "check the PIN file; repeated failures lock the token")
	case errors.Is(err, hsm.ErrTokenNotFound):
		return cli.WithHint(err, "list tokens with 'softhsm2-util --show-slots' or 'pkcs11-tool -L'")
	case errors.Is(err, hsm.ErrMasterKeyMissing):
		return cli.WithHint(err, "create it with 'nanokms token init'")
	case errors.Is(err, hsm.ErrWalletDir):
		return cli.WithHint(err, "token.wallet_dir must exist, be a real directory, and be writable by this user only (chmod go-w)")
	}
	if h := hsm.TokenErrorHint(err); h != "" {
		return cli.WithHint(err, h)
	}
	return err
}
