package coldbridge

import (
	"time"

	"github.com/nanokms/nanokms/nano"
)

// BridgeConfig is the [bridge] section shared by the relay and the
// gateway: which medium, and where.
type BridgeConfig struct {
	// Kind is "file" or "serial".
	Kind string
	// File transport: Inbound is the directory this side reads frames
	// from, Outbound the one it writes to (on a USB stick: "to-cold" and
	// "to-hot"). Root is the trusted medium root both lie beneath (the
	// stick's mount point); "" means the directory holding each. Nothing
	// beneath the root is followed if it is a symbolic link.
	Inbound, Outbound string
	Root              string
	// Serial transport: the device and its baud rate; Pace paces writes to
	// the baud rate (for pseudo-terminals, which do not).
	Device string
	Baud   int
	Pace   bool
	// MaxAge refuses frames created longer ago than this (0: no limit);
	// MaxFutureSkew refuses frames created further ahead (default 5m).
	MaxAge        time.Duration
	MaxFutureSkew time.Duration
	// PollInterval is how often a file reader looks for new files.
	PollInterval time.Duration
}

// TLSClientConfig is a client's mutual TLS 1.3 set-up. Exactly one of Key
// and KeyLabel is set; Token is set exactly when KeyLabel is.
type TLSClientConfig struct {
	Cert, Key, CA string // PEM files: this side's certificate and key, the server's CA
	ServerName    string // the name the server's certificate must carry
	// KeyLabel names this side's private key on Token instead of Key: an
	// ECDSA key pair made there by `nanokms token tls-key`, which never
	// leaves the token (package hsm/tlskey).
	KeyLabel string
	Token    *TLSToken
}

// TLSToken is the PKCS#11 token that holds a TLS key ([relay.tls.token]).
// Exactly one of PINFile and PINEnv is set.
type TLSToken struct {
	Module  string // absolute path of the PKCS#11 library
	Label   string // the token's label, 1 to 32 bytes
	PINFile string // absolute path of a file holding the user PIN
	PINEnv  string // name of an environment variable holding the user PIN
}

// TLSServerConfig is a server's mutual TLS 1.3 set-up.
type TLSServerConfig struct {
	Cert, Key, ClientCA string   // PEM files
	AllowedIdentities   []string // client certificate DNS SANs or common names allowed in
}

// RelayConfig is the cold relay's configuration file.
type RelayConfig struct {
	// Signer is the signer's address: "unix:///path" or "tcp://host:port"
	// (which needs TLS).
	Signer string
	TLS    *TLSClientConfig
	// RetryMin and RetryMax bound the backoff while the signer is down.
	RetryMin, RetryMax time.Duration
	// Heartbeat is how often the relay writes a heartbeat frame (0: never).
	Heartbeat time.Duration
	// Metrics is the textfile-collector file the relay writes its metrics to ("" for none).
	Metrics  string
	LogLevel string
	Bridge   BridgeConfig
}

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

// GatewayConfig is the hot gateway's configuration file.
type GatewayConfig struct {
	// State is the gateway's bbolt file.
	State string
	// Listen is "unix:///path" or "tcp://host:port" (which needs TLS).
	Listen string
	TLS    *TLSServerConfig
	// Manifests are account manifests written by 'nanokms account list --json'.
	Manifests []string
	// ResendInterval is how long the gateway waits for an answer before
	// writing a request to the bridge again.
	ResendInterval time.Duration
	// MetricsListen is the address of the Prometheus /metrics listener ("" for none).
	MetricsListen string
	LogLevel      string
	Bridge        BridgeConfig
	Node          NodeConfig
}
