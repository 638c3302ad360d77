package cold

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/hsm/tlskey"
	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/internal/health"
	"github.com/nanokms/nanokms/internal/mtls"
	"github.com/nanokms/nanokms/metrics"
	"github.com/nanokms/nanokms/metrics/relaymetrics"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/relay"
)

type relayOptions struct {
	config string
}

func newRelayCmd(e *cli.Env) *cobra.Command {
	var opts relayOptions
	cmd := &cobra.Command{
		Use:   "relay --config F",
		Short: "Run the cold relay: bridge requests in, signer answers out",
		Long: `Runs the cold relay with the configuration file F (docs/CONFIG.md, "Relay").
It reads request frames from the bridge's inbound side, checks them, asks the
signer, and writes response or refusal frames to the outbound side. With
relay.signers (several signers sharing one PostgreSQL database) it asks a
healthy one and sends the request again to the next when one is unavailable.
While no signer can answer it retries with backoff; it never drops a request
it has read. Logs are JSON lines on standard error.`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRelay(cmd.Context(), e, opts) },
	}
	cmd.Flags().StringVar(&opts.config, "config", "", "the relay's configuration file")
	return cmd
}

func runRelay(ctx context.Context, e *cli.Env, opts relayOptions) error {
	if opts.config == "" {
		return cli.UsageErr("--config is required")
	}
	defer cli.TuneGC(relayGCPercent)()
	cfg, err := relay.LoadConfig(opts.config)
	if err != nil {
		return cli.WithHint(err, "docs/CONFIG.md documents every key")
	}
	log := slog.New(slog.NewJSONHandler(e.Stderr, &slog.HandlerOptions{Level: cli.LogLevel(cfg.LogLevel)}))
	m := relaymetrics.NewRelay()
	medium, err := bridge.OpenReported(cfg.Bridge, bridge.Cold, log, m)
	if err != nil {
		return err
	}
	defer medium.Close()
	reconnect := grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           grpcbackoff.Config{BaseDelay: cfg.RetryMin, Multiplier: 1.6, Jitter: 0.2, MaxDelay: cfg.RetryMax},
		MinConnectTimeout: 5 * time.Second,
	})
	client, eps, closeSigners, err := dialSigners(ctx, cfg.Endpoints(), cfg.TLS, reconnect, log)
	if err != nil {
		return err
	}
	defer closeSigners()
	r := &relay.Relay{
		In: medium.Reader, Out: medium.Writer, Signer: client, Log: log,
		RetryMin: cfg.RetryMin, RetryMax: cfg.RetryMax, Heartbeat: cfg.Heartbeat, Observe: m.Observe,
	}
	// The metrics file is written until the relay has stopped, then once more.
	mctx, stopMetrics := context.WithCancel(context.Background())
	metricsDone := metrics.StartTextfile(mctx, m.Registry, cfg.Metrics, 0,
		func(err error) { log.Warn("writing metrics", "file", cfg.Metrics, "error", err.Error()) })
	defer func() { stopMetrics(); metricsDone() }()
	healthDone := func() error { return nil }
	if cfg.HealthListen != "" {
		hl, err := listenHealth(cfg.HealthListen, "relay.health_listen")
		if err != nil {
			return err
		}
		mon := health.NewMonitor(health.Options{OnChange: health.LogChanges(log)},
			relay.Readiness(medium.Present, eps)...)
		hctx, stopHealth := context.WithCancel(ctx)
		served := make(chan error, 1)
		go func() { served <- health.Serve(hctx, hl, mon.Handler()) }()
		go mon.Run(hctx)
		healthDone = func() error {
			mon.SetStopping()
			stopHealth()
			return <-served
		}
	}
	signers := slog.Any("signers", cfg.Signers)
	if cfg.Signer != "" {
		signers = slog.String("signer", cfg.Signer)
	}
	log.Info("relaying", signers, "bridge", cfg.Bridge.Kind, "metrics", cfg.Metrics, "health", cfg.HealthListen)
	err = r.Run(ctx)
	if herr := healthDone(); err == nil && herr != nil {
		err = fmt.Errorf("relay.health_listen: %w", herr)
	}
	if err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// dialSigners connects to the signers at addrs (reconnecting as opt
// says: with the relay's retry bounds, so that a signer that comes back
// is reached again within relay.retry_max): the one signer's client, or
// for several a relay.Signers over them, health-checked until
// closeSigners is called; and each signer's endpoint, for the relay's
// readiness. The TLS key, when on a token, is opened once.
func dialSigners(ctx context.Context, addrs []string, tlsCfg *conffile.TLSClient, opt grpc.DialOption, log *slog.Logger) (client relay.SignerClient, eps []relay.SignerEndpoint, closeSigners func(), err error) {
	var (
		conns []*grpc.ClientConn
		key   *tlskey.Key
	)
	closeSigners = func() {
		for _, c := range conns {
			c.Close()
		}
		if key != nil {
			key.Close()
		}
	}
	var tc *tls.Config
	for _, a := range addrs {
		if strings.HasPrefix(a, "tcp://") {
			if tc, key, err = relayTLS(ctx, tlsCfg); err != nil {
				return nil, nil, func() {}, err
			}
			break
		}
	}
	eps = make([]relay.SignerEndpoint, 0, len(addrs))
	for _, a := range addrs {
		conn, err := dialSigner(a, tc, opt)
		if err != nil {
			closeSigners()
			return nil, nil, func() {}, err
		}
		conns = append(conns, conn)
		eps = append(eps, relay.SignerEndpoint{Name: a, Signer: pb.NewSignerClient(conn), Health: healthpb.NewHealthClient(conn)})
	}
	if len(eps) == 1 {
		return eps[0].Signer, eps, closeSigners, nil
	}
	s := relay.NewSigners(eps, relay.SignersOptions{Log: log})
	wctx, stop := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); s.Watch(wctx) }()
	closeConns := closeSigners
	return s, eps, func() { stop(); <-watched; closeConns() }, nil
}

// relayTLS builds the relay's client TLS set-up from [relay.tls]: its key
// a file, or a key on [relay.tls.token] (returned, to be closed once the
// connections are).
func relayTLS(ctx context.Context, tlsCfg *conffile.TLSClient) (*tls.Config, *tlskey.Key, error) {
	if tlsCfg == nil {
		return nil, nil, errors.New("relay: a tcp:// signer needs [relay.tls]")
	}
	if tlsCfg.KeyLabel == "" {
		c, err := mtls.Client(tlsCfg.Cert, tlsCfg.Key, tlsCfg.CA, tlsCfg.ServerName)
		return c, nil, err
	}
	key, err := openRelayTLSKey(ctx, tlsCfg)
	if err != nil {
		return nil, nil, err
	}
	cert, err := mtls.KeyPair(tlsCfg.Cert, key)
	var c *tls.Config
	if err == nil {
		c, err = mtls.ClientCert(cert, tlsCfg.CA, tlsCfg.ServerName)
	}
	if err != nil {
		key.Close()
		return nil, nil, err
	}
	return c, key, nil
}

// dialSigner connects to the signer at addr: a Unix socket, or TCP with
// the mutual TLS set-up tc.
func dialSigner(addr string, tc *tls.Config, opt grpc.DialOption) (*grpc.ClientConn, error) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), opt)
	case strings.HasPrefix(addr, "tcp://"):
		return grpc.NewClient(strings.TrimPrefix(addr, "tcp://"), grpc.WithTransportCredentials(credentials.NewTLS(tc)), opt)
	}
	return nil, fmt.Errorf("relay: signer %q is neither unix:// nor tcp://", addr)
}

// openRelayTLSKey opens the relay's TLS key on [relay.tls.token].
func openRelayTLSKey(ctx context.Context, t *conffile.TLSClient) (*tlskey.Key, error) {
	pin, err := hsm.ReadPIN(t.Token.PINFile, t.Token.PINEnv)
	if err != nil {
		return nil, cli.WithHint(fmt.Errorf("reading the PIN of relay.tls.token: %w", err), "the PIN comes from relay.tls.token.pin_file (readable by this user only: chmod 600) or the variable relay.tls.token.pin_env names")
	}
	defer pin.Wipe()
	return openTLSKey(ctx, t.Token.Module, t.Token.Label, t.KeyLabel, pin, "relay.tls.key_label")
}
