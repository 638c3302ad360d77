package cold

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
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
signer, and writes response or refusal frames to the outbound side. While the
signer is down it retries with backoff; it never drops a request it has read.
Logs are JSON lines on standard error.`,
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
	conn, closeKey, err := dialSigner(ctx, cfg.Signer, cfg.TLS)
	if err != nil {
		return err
	}
	defer closeKey()
	defer conn.Close()
	r := &relay.Relay{
		In: medium.Reader, Out: medium.Writer, Signer: pb.NewSignerClient(conn), Log: log,
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
			relay.Readiness(medium.Present, healthpb.NewHealthClient(conn))...)
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
	log.Info("relaying", "signer", cfg.Signer, "bridge", cfg.Bridge.Kind, "metrics", cfg.Metrics, "health", cfg.HealthListen)
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

// dialSigner connects to the signer: a Unix socket, or TCP with mutual TLS,
// the relay's key a file or a key on a token ([relay.tls.token]). The
// caller calls closeKey once the connection is closed.
func dialSigner(ctx context.Context, addr string, tlsCfg *conffile.TLSClient) (conn *grpc.ClientConn, closeKey func(), err error) {
	closeKey = func() {}
	switch {
	case strings.HasPrefix(addr, "unix://"):
		conn, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		return conn, closeKey, err
	case strings.HasPrefix(addr, "tcp://"):
		if tlsCfg == nil {
			return nil, closeKey, fmt.Errorf("relay.signer %s: tcp needs [relay.tls]", addr)
		}
		var c *tls.Config
		if tlsCfg.KeyLabel == "" {
			c, err = mtls.Client(tlsCfg.Cert, tlsCfg.Key, tlsCfg.CA, tlsCfg.ServerName)
		} else {
			var key *tlskey.Key
			key, err = openRelayTLSKey(ctx, tlsCfg)
			if err != nil {
				return nil, closeKey, err
			}
			closeKey = func() { key.Close() }
			var cert tls.Certificate
			if cert, err = mtls.KeyPair(tlsCfg.Cert, key); err == nil {
				c, err = mtls.ClientCert(cert, tlsCfg.CA, tlsCfg.ServerName)
			}
		}
		if err != nil {
			closeKey()
			return nil, func() {}, err
		}
		conn, err = grpc.NewClient(strings.TrimPrefix(addr, "tcp://"), grpc.WithTransportCredentials(credentials.NewTLS(c)))
		if err != nil {
			closeKey()
			return nil, func() {}, err
		}
		return conn, closeKey, nil
	}
	return nil, closeKey, fmt.Errorf("relay.signer %q is neither unix:// nor tcp://", addr)
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
