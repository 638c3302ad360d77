package gateway

import (
	"time"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/nano"
)

// NodeConfig is the gateway's [node] section (the Nano node it reads from
// and publishes to). Empty RPC means no node: heads come with submissions.
type NodeConfig struct {
	RPC       string        // "http://[::1]:7076", "ipc+tcp://host:port" or "ipc+unix:///path"
	WebSocket string        // "ws://[::1]:7078" ("" for polling only)
	Timeout   time.Duration // per RPC call
	// Work is "cpu", "node" or "server"; WorkServers are the work servers'
	// URLs for "server".
	Work        string
	WorkServers []string
	// AutoReceive makes receive intents from confirmed sends to custody accounts.
	AutoReceive bool
	// Representative is the representative given to accounts opened by auto-receive.
	Representative nano.PublicKey
	// WorkThreshold, when set (hex), replaces the network's thresholds for
	// every block kind: for development networks (the dev node) only.
	WorkThreshold string
}

// Config is the hot gateway's configuration file.
type Config struct {
	// State is the gateway's bbolt file.
	State string
	// Listen is "unix:///path" or "tcp://host:port" (which needs TLS).
	Listen string
	TLS    *conffile.TLSServer
	// Manifests are account manifests written by 'nanokms account list --json'.
	Manifests []string
	// ResendInterval is how long the gateway waits for an answer before
	// writing a request to the bridge again.
	ResendInterval time.Duration
	// MetricsListen is the address of the Prometheus /metrics listener ("" for none).
	MetricsListen string
	LogLevel      string
	Bridge        bridge.Config
	Node          NodeConfig
}
