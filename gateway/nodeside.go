package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/node"
)

// DefaultReceivableScan is how often a NodeSide asks the node for sends
// waiting on custody accounts (notifications can be missed).
const DefaultReceivableScan = 30 * time.Second

var _ Ledger = (*node.Ledger)(nil)

// NodeSideOptions tune a NodeSide beyond its NodeConfig. The zero value
// gives the defaults the gateway command uses.
type NodeSideOptions struct {
	// Log receives the node side's events; nil discards.
	Log *slog.Logger
	// PollInterval is the block_info polling period while a published
	// block awaits confirmation; 0 means node.DefaultPollInterval.
	PollInterval time.Duration
	// ReceivableScan is how often the node is asked for sends waiting on
	// custody accounts; 0 means DefaultReceivableScan.
	ReceivableScan time.Duration
	// Thresholds, when not zero, are the network's base work thresholds;
	// they take precedence over NodeConfig.WorkThreshold.
	Thresholds node.WorkThresholds
	// WS tunes the WebSocket client; its Log defaults to Log.
	WS node.WSOptions
	// Work, when set, replaces the work provider NodeConfig.Work names.
	Work node.WorkProvider
	// WrapWork, when set, wraps the work provider (to time it for
	// metrics); the Ledger and the precomputer use what it returns.
	WrapWork func(node.WorkProvider) node.WorkProvider
	// CallbackListener, when set with [node.callback], is where the
	// callback is served instead of a listener on its listen address
	// (tests pass one on port 0). The NodeSide owns it.
	CallbackListener net.Listener
	// ObserveCallback, when set, is told the result of every request to
	// the callback listener (for metrics).
	ObserveCallback func(node.CallbackResult)
}

// callbackShutdown bounds how long Run waits for callbacks in progress
// when it stops.
const callbackShutdown = 5 * time.Second

// NodeSide is the gateway's link to a Nano node: the RPC client, the
// WebSocket, the HTTP callback listener, the work provider and the Ledger
// the gateway publishes through, and (Run) the loop that feeds
// confirmations to the compromise watch and auto-receive and scans for
// receivable sends. The WebSocket and the callback deliver into one
// node.ConfirmationFeed, which the Ledger awaits and Run reads: a block
// announced on both paths is applied once. The zero value of
// NodeConfig.RPC means no node: Ledger is nil and Run only waits.
type NodeSide struct {
	cfg    NodeConfig
	opts   NodeSideOptions
	log    *slog.Logger
	client *node.Client
	feed   *node.ConfirmationFeed
	ws     *node.WS
	cbL    net.Listener // the callback listener, with [node.callback]
	led    *node.Ledger
	pre    *node.Precomputer
}

// NewNodeTransport opens the RPC transport a [node] rpc URL names:
// http(s)://, ipc+tcp://host:port or ipc+unix:///path. ipcEncoding is the
// IPC preamble's encoding (node.ipc_encoding: node.IPCLegacy or
// node.IPCLegacyUnsafe; 0 means IPCLegacy); an HTTP transport ignores it.
func NewNodeTransport(rpc string, ipcEncoding int) (node.Transport, error) {
	enc := node.IPCLegacy
	if ipcEncoding != 0 {
		if ipcEncoding < 0 || ipcEncoding > 255 {
			return nil, fmt.Errorf("node.ipc_encoding %d: want 1 or 2", ipcEncoding)
		}
		enc = byte(ipcEncoding)
	}
	switch {
	case strings.HasPrefix(rpc, "http://"), strings.HasPrefix(rpc, "https://"):
		return node.NewHTTP(rpc, node.HTTPOptions{}), nil
	case strings.HasPrefix(rpc, "ipc+tcp://"):
		return node.NewIPC("tcp", strings.TrimPrefix(rpc, "ipc+tcp://"), enc)
	case strings.HasPrefix(rpc, "ipc+unix://"):
		return node.NewIPC("unix", strings.TrimPrefix(rpc, "ipc+unix://"), enc)
	}
	return nil, fmt.Errorf("node.rpc %q: want http(s)://, ipc+tcp:// or ipc+unix://", rpc)
}

// OpenNodeSide connects to the node cfg names (the WebSocket is dialled
// within ctx) and, with [node.callback], listens for its callback (served
// by Run). Close releases it.
func OpenNodeSide(ctx context.Context, cfg NodeConfig, opts NodeSideOptions) (*NodeSide, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.ReceivableScan <= 0 {
		opts.ReceivableScan = DefaultReceivableScan
	}
	n := &NodeSide{cfg: cfg, opts: opts, log: opts.Log}
	if cfg.RPC == "" {
		if opts.CallbackListener != nil {
			opts.CallbackListener.Close()
		}
		return n, nil
	}
	t, err := NewNodeTransport(cfg.RPC, cfg.IPCEncoding)
	if err != nil {
		return nil, err
	}
	n.client = node.NewClient(t, node.ClientOptions{Timeout: cfg.Timeout})
	n.feed = node.NewConfirmationFeed(node.FeedOptions{DedupeSize: opts.WS.DedupeSize, Buffer: opts.WS.Buffer})
	if cfg.Callback != nil {
		n.cbL = opts.CallbackListener
		if n.cbL == nil {
			if n.cbL, err = net.Listen("tcp", cfg.Callback.Listen); err != nil {
				n.Close()
				return nil, fmt.Errorf("node.callback.listen: %w", err)
			}
		}
	} else if opts.CallbackListener != nil {
		opts.CallbackListener.Close()
	}
	if cfg.WebSocket != "" {
		wsOpts := opts.WS
		if wsOpts.Log == nil {
			wsOpts.Log = opts.Log
		}
		wsOpts.Feed = n.feed
		ws, err := node.DialWS(ctx, cfg.WebSocket, wsOpts)
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("node.websocket %s: %w", cfg.WebSocket, err)
		}
		n.ws = ws
	}
	work := opts.Work
	if work == nil {
		switch cfg.Work {
		case "node":
			work = node.NodeWork{Client: n.client}
		case "server":
			var servers []*node.Client
			for _, u := range cfg.WorkServers {
				servers = append(servers, node.NewClient(node.NewHTTP(u, node.HTTPOptions{}), node.ClientOptions{Timeout: cfg.Timeout}))
			}
			work = &node.ServerWork{Servers: servers, Log: opts.Log}
		default:
			work = node.CPUWork{}
		}
	}
	if opts.WrapWork != nil {
		work = opts.WrapWork(work)
	}
	thresholds := opts.Thresholds
	if thresholds == (node.WorkThresholds{}) && cfg.WorkThreshold != "" {
		th, err := nano.ParseThreshold(cfg.WorkThreshold)
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("node.work_threshold: %w", err)
		}
		thresholds = node.WorkThresholds{Send: th, Receive: th}
	}
	n.pre = node.NewPrecomputer(work, node.PrecomputerOptions{})
	led, err := node.NewLedger(node.LedgerOptions{
		Client: n.client, WS: n.ws, Feed: n.feed, Work: work, Precomputer: n.pre, Thresholds: thresholds,
		PollInterval: opts.PollInterval, Permanent: ErrPermanent, Rejected: ErrBlockRejected, Log: opts.Log,
	})
	if err != nil {
		n.Close()
		return nil, err
	}
	n.led = led
	return n, nil
}

// Ledger returns the Ledger to give the gateway, or nil without a node.
func (n *NodeSide) Ledger() Ledger {
	if n.led == nil {
		return nil
	}
	return n.led
}

// Client returns the node's RPC client (nil without a node).
func (n *NodeSide) Client() *node.Client { return n.client }

// WS returns the node's WebSocket client (nil without one).
func (n *NodeSide) WS() *node.WS { return n.ws }

// CallbackAddr returns the callback listener's address (nil without
// [node.callback]).
func (n *NodeSide) CallbackAddr() net.Addr {
	if n.cbL == nil {
		return nil
	}
	return n.cbL.Addr()
}

// Run serves the callback listener, follows confirmations (compromise
// watch, auto-receive) and scans for receivable sends until ctx ends; the
// callback listener is shut down before it returns.
func (n *NodeSide) Run(ctx context.Context, gw *Gateway) error {
	if n.client == nil {
		<-ctx.Done()
		return nil
	}
	accounts := n.custodyAccounts(gw)
	if n.cbL != nil {
		stop := n.serveCallbacks(gw)
		defer stop()
	}
	if n.ws != nil {
		if err := n.ws.AddAccounts(ctx, accounts...); err != nil {
			n.log.Warn("subscribing to custody accounts", "error", err.Error())
		}
	}
	confirmations := n.feed.Confirmations()
	scan := time.NewTicker(n.opts.ReceivableScan)
	defer scan.Stop()
	n.scanReceivable(ctx, gw, accounts)
	for {
		select {
		case <-ctx.Done():
			return nil
		case c, ok := <-confirmations:
			if !ok {
				confirmations = nil
				continue
			}
			gw.ObserveConfirmed(ctx, Confirmed{Hash: c.Hash, Block: c.Block, Subtype: c.Subtype})
		case <-scan.C:
			n.scanReceivable(ctx, gw, accounts)
		}
	}
}

// serveCallbacks serves the node's HTTP callback on the callback
// listener: each body is checked against the node (node.CallbackHandler)
// before it reaches the feed. It returns a function that shuts the
// server down (callbacks in progress get callbackShutdown to finish) and
// waits for it.
func (n *NodeSide) serveCallbacks(gw *Gateway) (stop func()) {
	h := node.NewCallbackHandler(n.client, n.feed, node.CallbackOptions{
		Sources: n.cfg.Callback.Sources(),
		Path:    n.cfg.Callback.Path,
		Ours:    gw.Manifest().Contains,
		Timeout: n.cfg.Timeout,
		Log:     n.log,
		Observe: n.opts.ObserveCallback,
	})
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      n.cfg.Timeout + 10*time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(n.cbL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("the callback listener failed", "error", err.Error())
		}
	}()
	n.log.Info("serving the node's callback", "listen", n.cbL.Addr().String(), "path", n.cfg.Callback.Path)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), callbackShutdown)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
	}
}

func (n *NodeSide) custodyAccounts(gw *Gateway) []nano.PublicKey {
	var accounts []nano.PublicKey
	for _, a := range gw.Manifest().Accounts() {
		accounts = append(accounts, nano.PublicKey(a.GetPublicKey()))
	}
	return accounts
}

// scanReceivable queues automatic receives of every send waiting on a
// custody account.
func (n *NodeSide) scanReceivable(ctx context.Context, gw *Gateway, accounts []nano.PublicKey) {
	if !n.cfg.AutoReceive {
		return
	}
	for _, a := range accounts {
		items, err := n.client.Receivable(ctx, a, 64, nano.Amount{})
		if err != nil {
			n.log.Warn("receivable", "account", a.Address(), "error", err.Error())
			continue
		}
		for _, it := range items {
			if err := gw.AutoReceive(ctx, a, it.Hash); err != nil {
				n.log.Warn("auto-receive", "account", a.Address(), "source", it.Hash.String(), "error", err.Error())
			}
		}
	}
}

// Check reports whether the node answers now (its version RPC, within
// ctx and the RPC timeout): the gateway's readiness check "node"
// (Options.NodeCheck). Without a node it returns nil.
func (n *NodeSide) Check(ctx context.Context) error {
	if n.client == nil {
		return nil
	}
	if _, err := n.client.Version(ctx); err != nil {
		return err
	}
	return nil
}

// Close releases the node connections and the callback listener (Run
// has shut its server down already).
func (n *NodeSide) Close() {
	if n.cbL != nil {
		n.cbL.Close()
	}
	if n.pre != nil {
		n.pre.Close()
	}
	if n.ws != nil {
		n.ws.Close()
	}
	if n.feed != nil {
		n.feed.Close()
	}
	if n.client != nil {
		n.client.Close()
	}
}
