package dev

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/devnode"
	"github.com/nanokms/nanokms/nano"
)

type devnodeOptions struct {
	listen, ipc, ws      string
	state                string
	workThreshold        string
	workThresholdReceive string
	confirmDelay         time.Duration
	dropNotifications    float64
	dropFirst            int
	duplicate            bool
	callback             string
	epochSigner          string
	fund                 []string
}

func newDevnodeCmd(e *cli.Env) *cobra.Command {
	var opts devnodeOptions
	cmd := &cobra.Command{
		Use:   "devnode [--listen ADDR] [--ipc unix:///PATH|tcp://HOST:PORT] [--ws ADDR] [flags]",
		Short: "Run a development ledger node for tests and demos (NOT a network node)",
		Long: `Runs a development peer: an in-memory (or --state bbolt) Nano ledger that
answers the node's RPC over HTTP (--listen) and IPC (--ipc), and its
WebSocket API (--ws), in the node's formats. Every processed block is
validated for real (hash, signature, work at a low threshold, balances,
receivables, forks) and confirmed after --confirm-delay.

It is not a network node: no peers, no consensus, no voting. Its genesis
account is derived from the public all-zero dev seed, so anyone can spend
from it: never point anything holding real funds at it.

The genesis account and the addresses it listens on are logged (JSON lines
on standard error); it serves until interrupted. docs/DEVNODE.md documents
every flag, RPC action and error.`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDevnode(cmd.Context(), e, opts, cmd.Flags().Changed("work-threshold-receive"))
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.listen, "listen", "127.0.0.1:7076", `HTTP RPC address ("" for none)`)
	f.StringVar(&opts.ipc, "ipc", "", "IPC address: unix:///path/to/socket or tcp://host:port")
	f.StringVar(&opts.ws, "ws", "127.0.0.1:7078", `WebSocket address ("" for none)`)
	f.StringVar(&opts.state, "state", "", "keep the ledger in this bbolt file (default: memory only)")
	f.StringVar(&opts.workThreshold, "work-threshold", "", "work threshold (hex) for every block kind; 0 disables work checks (default ff00000000000000 for send/change, f000000000000000 for receive/open/epoch)")
	f.StringVar(&opts.workThresholdReceive, "work-threshold-receive", "", "work threshold (hex) for receive, open and epoch blocks")
	f.DurationVar(&opts.confirmDelay, "confirm-delay", devnode.DefaultConfirmDelay, "time from processing a block to confirming it (0: at once)")
	f.Float64Var(&opts.dropNotifications, "drop-notifications", 0, "probability (0 to 1) of dropping each confirmation notification (WebSocket and callback)")
	f.IntVar(&opts.dropFirst, "drop-first", 0, "drop the first N confirmation notifications")
	f.BoolVar(&opts.duplicate, "duplicate-notifications", false, "send every confirmation notification twice")
	f.StringVar(&opts.callback, "callback", "", "POST every confirmed block to this URL, as a node's HTTP callback")
	f.StringVar(&opts.epochSigner, "epoch-signer", "", "account whose key signs epoch blocks (default: the genesis account)")
	f.StringArrayVar(&opts.fund, "fund", nil, "ADDRESS=AMOUNT: send AMOUNT (raw, or with an XNO unit: 1.5XNO) from genesis at start; repeatable")
	return cmd
}

// devFund is one --fund.
type devFund struct {
	dest   nano.PublicKey
	amount nano.Amount
}

func parseDevFunds(specs []string) ([]devFund, error) {
	var out []devFund
	for _, s := range specs {
		addr, amt, ok := strings.Cut(s, "=")
		if !ok {
			return nil, cli.UsageErr("--fund %q: want ADDRESS=AMOUNT", s)
		}
		k, err := nano.ParseAddress(strings.TrimSpace(addr))
		if err != nil {
			return nil, cli.UsageErr("--fund: %w", err)
		}
		a, err := nano.ParseAmountUnit(amt)
		if err != nil || a.IsZero() {
			return nil, cli.UsageErr("--fund %q: want a positive amount (raw, or 1.5XNO)", s)
		}
		out = append(out, devFund{dest: k, amount: a})
	}
	return out, nil
}

func devnodeNodeOptions(opts devnodeOptions, receiveSet bool, log *slog.Logger) (devnode.Options, error) {
	o := devnode.Options{
		StatePath:       opts.state,
		DropProbability: opts.dropNotifications,
		DropFirst:       opts.dropFirst,
		Duplicate:       opts.duplicate,
		CallbackURL:     opts.callback,
		Logger:          log,
		ConfirmDelay:    opts.confirmDelay,
	}
	if opts.confirmDelay == 0 {
		o.ConfirmDelay = -1 // at once
	} else if opts.confirmDelay < 0 {
		return o, cli.UsageErr("--confirm-delay must not be negative")
	}
	if opts.dropNotifications < 0 || opts.dropNotifications > 1 {
		return o, cli.UsageErr("--drop-notifications must be between 0 and 1")
	}
	if opts.dropFirst < 0 {
		return o, cli.UsageErr("--drop-first must not be negative")
	}
	if opts.workThreshold != "" {
		v, err := nano.ParseThreshold(opts.workThreshold)
		if err != nil {
			return o, cli.UsageErr("--work-threshold: %w", err)
		}
		if v == 0 {
			o.DisableWork = true
		}
		o.WorkThreshold, o.ReceiveWorkThreshold = v, v
	}
	if receiveSet {
		v, err := nano.ParseThreshold(opts.workThresholdReceive)
		if err != nil {
			return o, cli.UsageErr("--work-threshold-receive: %w", err)
		}
		if v == 0 || o.DisableWork {
			return o, cli.UsageErr("--work-threshold-receive: to disable work checks use --work-threshold 0")
		}
		o.ReceiveWorkThreshold = v
	}
	if opts.epochSigner != "" {
		k, err := nano.ParseAddress(opts.epochSigner)
		if err != nil {
			return o, cli.UsageErr("--epoch-signer: %w", err)
		}
		o.EpochSigner = k
	}
	return o, nil
}

func runDevnode(ctx context.Context, e *cli.Env, opts devnodeOptions, receiveSet bool) error {
	if opts.listen == "" && opts.ipc == "" && opts.ws == "" {
		return cli.UsageErr("nothing to serve: give --listen, --ipc or --ws")
	}
	log := slog.New(slog.NewJSONHandler(e.Stderr, nil))
	nopts, err := devnodeNodeOptions(opts, receiveSet, log)
	if err != nil {
		return err
	}
	funds, err := parseDevFunds(opts.fund)
	if err != nil {
		return err
	}
	var httpL, ipcL, wsL net.Listener
	closeAll := func() {
		for _, l := range []net.Listener{httpL, ipcL, wsL} {
			if l != nil {
				l.Close()
			}
		}
	}
	if opts.listen != "" {
		if httpL, err = net.Listen("tcp", opts.listen); err != nil {
			return cli.WithHint(fmt.Errorf("--listen: %w", err), "is another node (or devnode) using the port?")
		}
	}
	if opts.ipc != "" {
		if ipcL, err = devnode.ListenIPC(opts.ipc); err != nil {
			closeAll()
			return cli.UsageErr("--ipc: %w", err)
		}
	}
	if opts.ws != "" {
		if wsL, err = net.Listen("tcp", opts.ws); err != nil {
			closeAll()
			return cli.WithHint(fmt.Errorf("--ws: %w", err), "is another node (or devnode) using the port?")
		}
	}
	n, err := devnode.New(nopts)
	if err != nil {
		closeAll()
		return err
	}
	defer n.Close()
	send, receive := n.Thresholds()
	attrs := []any{
		"genesis", devnode.GenesisAddress,
		"genesis_seed", devnode.DevSeedHex,
		"genesis_block", n.GenesisHash().String(),
		"work_threshold", fmt.Sprintf("%016x", send),
		"work_threshold_receive", fmt.Sprintf("%016x", receive),
		"confirm_delay", opts.confirmDelay.String(),
		"warning", "development peer, not a network node: the genesis key is public",
	}
	if httpL != nil {
		attrs = append(attrs, "rpc", "http://"+httpL.Addr().String())
	}
	if ipcL != nil {
		attrs = append(attrs, "ipc", opts.ipc)
	}
	if wsL != nil {
		attrs = append(attrs, "ws", "ws://"+wsL.Addr().String())
	}
	if opts.state != "" {
		attrs = append(attrs, "state", opts.state)
	}
	for _, f := range funds {
		h, err := n.Fund(ctx, f.dest, f.amount)
		if err == nil {
			// Confirmed before the node serves: what a client first sees
			// of a fund does not depend on how soon it asked.
			err = n.WaitConfirmed(ctx, h)
		}
		if err != nil {
			closeAll()
			return fmt.Errorf("--fund %s: %w", f.dest.Address(), err)
		}
		if opts.confirmDelay == 0 {
			// Confirmed at once: before the first request is answered,
			// not whenever the confirmer next runs.
			if err := n.WaitConfirmed(ctx, h); err != nil {
				closeAll()
				return fmt.Errorf("--fund %s: %w", f.dest.Address(), err)
			}
		}
		log.Info("funded", "account", f.dest.Address(), "amount", f.amount.String(), "send", h.String())
	}
	log.Info("devnode serving", attrs...)
	if err := n.Serve(ctx, httpL, ipcL, wsL); err != nil {
		return err
	}
	log.Info("devnode stopped")
	return nil
}
