package hot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/gateway"
	"github.com/nanokms/nanokms/internal/grpcserve"
	"github.com/nanokms/nanokms/metrics"
	"github.com/nanokms/nanokms/metrics/gatewaymetrics"
)

// gatewayGCPercent is the gateway's garbage collector target (the
// runtime's default is 100): its queue is in bbolt's memory map or the
// database, its heap small; a higher target spends less CPU collecting (cli.TuneGC).
const gatewayGCPercent = 400

type gatewayOptions struct {
	config string
}

func newGatewayCmd(e *cli.Env) *cobra.Command {
	var opts gatewayOptions
	cmd := &cobra.Command{
		Use:   "gateway --config F",
		Short: "Run the hot gateway: the Custody gRPC service, the bridge's hot end and the node side",
		Long: `Runs the hot gateway with the configuration file F (docs/CONFIG.md, "Gateway").
It serves the Custody gRPC API to withdrawal services (mutual TLS on TCP, or a
Unix socket), keeps its queue in a bbolt file (gateway.state) or a PostgreSQL
database ([gateway.postgres]), writes request frames to the
bridge and resends them until answered, verifies every signed block against its
intent, and (with a [node] section) publishes and follows confirmation. Logs
are JSON lines on standard error.`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runGateway(cmd.Context(), e, opts) },
	}
	cmd.Flags().StringVar(&opts.config, "config", "", "the gateway's configuration file")
	return cmd
}

func runGateway(ctx context.Context, e *cli.Env, opts gatewayOptions) error {
	if opts.config == "" {
		return cli.UsageErr("--config is required")
	}
	defer cli.TuneGC(gatewayGCPercent)()
	cfg, err := gateway.LoadConfig(opts.config)
	if err != nil {
		return cli.WithHint(err, "docs/CONFIG.md documents every key")
	}
	log := slog.New(slog.NewJSONHandler(e.Stderr, &slog.HandlerOptions{Level: cli.LogLevel(cfg.LogLevel)}))
	mopts := gatewaymetrics.GatewayOptions{NoNode: cfg.Node.RPC == ""}
	if cfg.Leader != nil {
		mopts.Medium = cfg.Leader.Medium
	}
	m := gatewaymetrics.NewGateway(mopts)
	manifest, err := gateway.LoadManifests(cfg.Manifests...)
	if err != nil {
		return cli.WithHint(err, "write a manifest on the cold host with 'nanokms account list --wallet W --json'")
	}
	medium, err := bridge.OpenReported(cfg.Bridge, bridge.Hot, log, m)
	if err != nil {
		return err
	}
	defer medium.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nodeSide, err := openNodeSide(ctx, cfg.Node, log, m)
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "listen" {
		return cli.WithHint(err, "is another process using node.callback.listen's port?")
	}
	if err != nil {
		return err
	}
	defer nodeSide.Close()

	gopts := gateway.Options{
		Out: medium.Writer, Reader: medium.Reader, Manifest: manifest, Ledger: nodeSide.Ledger(),
		ResendInterval: cfg.ResendInterval, Log: log,
		Observe: m.ObserveRequest, ObserveAlert: m.ObserveAlert, ObserveWriteFault: m.WriteFault,
		AutoReceive: cfg.Node.AutoReceive, Representative: cfg.Node.Representative,
		MediumCheck: medium.Present, ObserveLeader: m.ObserveLeader,
	}
	if cfg.Node.RPC != "" {
		gopts.NodeCheck = nodeSide.Check
	}
	gw, err := openGateway(ctx, &cfg.Settings, gopts, log)
	if err != nil {
		return err
	}
	defer gw.Close()
	stored, err := gw.List(nil)
	if err != nil {
		return err
	}
	for _, r := range stored {
		m.Seed(r)
	}
	l, err := grpcserve.Listen(cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway.listen: %w", err)
	}
	var metricsL net.Listener
	if cfg.MetricsListen != "" {
		if metricsL, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			l.Close()
			return cli.WithHint(fmt.Errorf("gateway.metrics_listen: %w", err), "is another process using the port?")
		}
	}
	errc := make(chan error, 4)
	running := 3
	go func() { errc <- gw.Run(ctx) }()
	go func() {
		errc <- gateway.ServeCustody(ctx, l, gateway.NewCustodyServer(gw), cfg.TLS, 5*time.Second)
	}()
	go func() { errc <- nodeSide.Run(ctx, gw) }()
	if metricsL != nil {
		running++
		// /metrics, and the health endpoints beside it (package health).
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.Handler(m.Registry, log))
		hh := gw.Health().Handler()
		mux.Handle("/healthz", hh)
		mux.Handle("/readyz", hh)
		go func() { errc <- metrics.Serve(ctx, metricsL, mux) }()
	}
	log.Info("serving", "listen", cfg.Listen, "store", storeName(&cfg.Settings), "metrics", cfg.MetricsListen, "bridge", cfg.Bridge.Kind,
		"accounts", len(manifest.Accounts()), "node", cfg.Node.RPC, "callback", nodeSide.CallbackAddr() != nil)
	first := <-errc
	cancel()
	for i := 1; i < running; i++ {
		if err := <-errc; first == nil {
			first = err
		}
	}
	if first != nil && !errors.Is(first, context.Canceled) {
		return first
	}
	log.Info("stopped")
	return nil
}
