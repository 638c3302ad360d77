package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nanokms/nanokms/coldbridge"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/node"
)

// receivableScan is how often the gateway asks the node for sends waiting
// on custody accounts (notifications can be missed).
const receivableScan = 30 * time.Second

// nodeSide is the gateway's link to a Nano node; its zero value means no node.
type nodeSide struct {
	cfg    coldbridge.NodeConfig
	log    *slog.Logger
	client *node.Client
	ws     *node.WS
	led    *node.Ledger
	pre    *node.Precomputer
}

var _ coldbridge.Ledger = (*node.Ledger)(nil)

// newNodeTransport opens the RPC transport a [node] rpc URL names.
func newNodeTransport(rpc string, timeout time.Duration) (node.Transport, error) {
	switch {
	case strings.HasPrefix(rpc, "http://"), strings.HasPrefix(rpc, "https://"):
		return node.NewHTTP(rpc, node.HTTPOptions{}), nil
	case strings.HasPrefix(rpc, "ipc+tcp://"):
		return node.NewIPC("tcp", strings.TrimPrefix(rpc, "ipc+tcp://"), 1)
	case strings.HasPrefix(rpc, "ipc+unix://"):
		return node.NewIPC("unix", strings.TrimPrefix(rpc, "ipc+unix://"), 1)
	}
	return nil, fmt.Errorf("node.rpc %q: want http(s)://, ipc+tcp:// or ipc+unix://", rpc)
}

func openNodeSide(ctx context.Context, cfg coldbridge.NodeConfig, log *slog.Logger) (*nodeSide, error) {
	n := &nodeSide{cfg: cfg, log: log}
	if cfg.RPC == "" {
		return n, nil
	}
	t, err := newNodeTransport(cfg.RPC, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	n.client = node.NewClient(t, node.ClientOptions{Timeout: cfg.Timeout})
	if cfg.WebSocket != "" {
		ws, err := node.DialWS(ctx, cfg.WebSocket, node.WSOptions{Log: log})
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("node.websocket %s: %w", cfg.WebSocket, err)
		}
		n.ws = ws
	}
	var work node.WorkProvider
	switch cfg.Work {
	case "node":
		work = node.NodeWork{Client: n.client}
	case "server":
		var servers []*node.Client
		for _, u := range cfg.WorkServers {
			servers = append(servers, node.NewClient(node.NewHTTP(u, node.HTTPOptions{}), node.ClientOptions{Timeout: cfg.Timeout}))
		}
		work = &node.ServerWork{Servers: servers, Log: log}
	default:
		work = node.CPUWork{}
	}
	var thresholds node.WorkThresholds
	if cfg.WorkThreshold != "" {
		th, err := nano.ParseThreshold(cfg.WorkThreshold)
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("node.work_threshold: %w", err)
		}
		thresholds = node.WorkThresholds{Send: th, Receive: th}
	}
	n.pre = node.NewPrecomputer(work, node.PrecomputerOptions{})
	led, err := node.NewLedger(node.LedgerOptions{
		Client: n.client, WS: n.ws, Work: work, Precomputer: n.pre, Thresholds: thresholds,
		Permanent: coldbridge.ErrPermanent, Log: log,
	})
	if err != nil {
		n.Close()
		return nil, err
	}
	n.led = led
	return n, nil
}

// ledger returns the gateway's Ledger, or nil without a node.
func (n *nodeSide) ledger() coldbridge.Ledger {
	if n.led == nil {
		return nil
	}
	return n.led
}

// Run follows confirmations (compromise watch, auto-receive) and scans for
// receivable sends until ctx ends.
func (n *nodeSide) Run(ctx context.Context, gw *coldbridge.Gateway) error {
	if n.client == nil {
		<-ctx.Done()
		return nil
	}
	var accounts []nano.PublicKey
	for _, a := range gw.Manifest().Accounts() {
		accounts = append(accounts, nano.PublicKey(a.GetPublicKey()))
	}
	var confirmations <-chan node.Confirmation
	if n.ws != nil {
		if err := n.ws.AddAccounts(ctx, accounts...); err != nil {
			n.log.Warn("subscribing to custody accounts", "error", err.Error())
		}
		confirmations = n.ws.Confirmations()
	}
	scan := time.NewTicker(receivableScan)
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
			gw.ObserveConfirmed(ctx, coldbridge.Confirmed{Hash: c.Hash, Block: c.Block, Subtype: c.Subtype})
		case <-scan.C:
			n.scanReceivable(ctx, gw, accounts)
		}
	}
}

// scanReceivable queues automatic receives of every send waiting on a
// custody account.
func (n *nodeSide) scanReceivable(ctx context.Context, gw *coldbridge.Gateway, accounts []nano.PublicKey) {
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

// Close releases the node connections.
func (n *nodeSide) Close() {
	if n.pre != nil {
		n.pre.Close()
	}
	if n.ws != nil {
		n.ws.Close()
	}
	if n.client != nil {
		n.client.Close()
	}
}
