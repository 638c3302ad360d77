package gateway

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/node"
)

// Config is the hot gateway's configuration file, in TOML, documented key
// by key in docs/CONFIG.md: [gateway] (Settings, whose fields are
// promoted, with [gateway.postgres] and [gateway.tls]), [bridge] and
// [node] (with [node.callback]). Its toml tags declare the file's keys;
// it is read strictly (see package conffile): an unknown key is an error
// at any depth, every value has one type, and every problem is reported,
// all at once, as a *conffile.Error naming its key path.
type Config struct {
	Settings `toml:"gateway"`
	Bridge   bridge.Config `toml:"bridge"`
	Node     NodeConfig    `toml:"node"`
}

// Settings is the [gateway] section. The gateway keeps its state in
// exactly one of State (a bbolt file) and Postgres (a PostgreSQL
// database).
type Settings struct {
	// State is the absolute path of the gateway's bbolt file; "" when the
	// state is on PostgreSQL.
	State string `toml:"state" conf:"abspath"`
	// Postgres is the gateway's PostgreSQL database ([gateway.postgres],
	// OpenPG); nil when the state is the bbolt file State.
	Postgres *conffile.Postgres `toml:"postgres"`
	// Leader is [gateway.leader]: this gateway is one of several on the
	// database of Postgres, and drives the bridge only while elected
	// (Options.Elector); nil when it is the database's single gateway.
	Leader *LeaderSettings `toml:"leader"`
	// Listen is "unix:///path" or "tcp://host:port" (which needs TLS).
	Listen string `toml:"listen" conf:"required"`
	// Manifests are account manifests written by 'nanokms account list --json'.
	Manifests []string `toml:"manifests" conf:"unique,abspath"`
	// ResendInterval is how long the gateway waits for an answer before
	// writing a request to the bridge again.
	ResendInterval time.Duration `toml:"resend_interval" conf:"default=30s"`
	// MetricsListen is the address of the Prometheus /metrics listener ("" for none).
	MetricsListen string              `toml:"metrics_listen"`
	LogLevel      string              `toml:"log_level" conf:"default=info,oneof=debug|info|warn|error"`
	TLS           *conffile.TLSServer `toml:"tls"` // [gateway.tls]; nil when absent
}

// LeaderSettings is the [gateway.leader] section: the election of the
// gateway that drives the bridge among those sharing one PostgreSQL
// database (package gateway/leader, whose Config the keys fill).
type LeaderSettings struct {
	// Medium names the bridge medium: the key of its advisory lock and of
	// its epoch's row. Every gateway on this bridge gives the same name.
	Medium string `toml:"medium" conf:"required"`
	// Holder names this gateway in the epoch's row and the logs; "" means
	// "hostname/pid".
	Holder string `toml:"holder"`
	// CheckInterval is how often a candidate polls the lock and the
	// leader checks its term.
	CheckInterval time.Duration `toml:"check_interval" conf:"default=1s"`
	// CheckTimeout bounds each statement of the election; a leader whose
	// check does not answer within it stops leading.
	CheckTimeout time.Duration `toml:"check_timeout" conf:"default=5s"`
}

// NodeConfig is the gateway's [node] section (the Nano node it reads from
// and publishes to). Empty RPC means no node: heads come with submissions.
type NodeConfig struct {
	RPC string `toml:"rpc"` // "http://[::1]:7076", "ipc+tcp://host:port" or "ipc+unix:///path"
	// IPCEncoding is the encoding byte of the IPC preamble: 1 (legacy
	// RPC) or 2 (legacy RPC allowing the unsafe actions the node's IPC
	// configuration permits). Only with an ipc+ RPC; 0 (not given, or an
	// HTTP RPC) means 1.
	IPCEncoding int           `toml:"ipc_encoding" conf:"default=1"`
	WebSocket   string        `toml:"websocket"`                  // "ws://[::1]:7078" ("" for polling only)
	Timeout     time.Duration `toml:"timeout" conf:"default=10s"` // per RPC call
	// Work is "cpu", "node" or "server"; WorkServers are the work servers'
	// URLs for "server".
	Work        string   `toml:"work" conf:"default=cpu,oneof=cpu|node|server"`
	WorkServers []string `toml:"work_servers" conf:"unique"`
	// AutoReceive makes receive intents from confirmed sends to custody accounts.
	AutoReceive bool `toml:"auto_receive"`
	// Representative is the representative given to accounts opened by auto-receive.
	Representative nano.PublicKey `toml:"representative"`
	// WorkThreshold, when set (hex), replaces the network's thresholds for
	// every block kind: for development networks (the dev node) only.
	WorkThreshold string `toml:"work_threshold"`
	// Callback is [node.callback], the listener for the node's HTTP
	// callback; nil when absent.
	Callback *CallbackConfig `toml:"callback"`
}

// CallbackConfig is the [node.callback] section: where the gateway
// receives the node's HTTP callback (the node's [node.httpcallback]
// address, port and target point here). Every callback is an untrusted
// hint, checked against the node before it counts (node.CallbackHandler).
type CallbackConfig struct {
	// Listen is host:port; there is no default host.
	Listen string `toml:"listen" conf:"required"`
	// Path is the request path the node posts to (its target).
	Path string `toml:"path" conf:"default=/"`
	// AllowedSources are the IP addresses and CIDR prefixes callbacks are
	// accepted from; absent means loopback only (see Sources).
	AllowedSources []string `toml:"allowed_sources" conf:"unique"`
}

// Sources returns the allowed sources as prefixes (an address is a
// prefix of its full length): node.LoopbackSources when none are listed.
// The configuration must have been checked (ParseConfig).
func (cb *CallbackConfig) Sources() []netip.Prefix {
	if len(cb.AllowedSources) == 0 {
		return node.LoopbackSources
	}
	out := make([]netip.Prefix, 0, len(cb.AllowedSources))
	for _, s := range cb.AllowedSources {
		if p, msg := parseSource(s); msg == "" {
			out = append(out, p)
		}
	}
	return out
}

// parseSource parses an allowed source: an IP address or a CIDR prefix
// without host bits, and no zone. It returns what is wrong otherwise.
func parseSource(s string) (netip.Prefix, string) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Sprintf("%q is not an IP address or a CIDR prefix (such as 10.0.0.5 or 10.0.0.0/24)", s)
		}
		if m := p.Masked(); m != p {
			return netip.Prefix{}, fmt.Sprintf("%q has bits set past its prefix length: write %q", s, m.String())
		}
		return p, ""
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Prefix{}, fmt.Sprintf("%q is not an IP address or a CIDR prefix (such as 10.0.0.5 or 10.0.0.0/24)", s)
	case a.Zone() != "":
		return netip.Prefix{}, fmt.Sprintf("%q has a zone: write the address alone", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), ""
}

// CheckConf checks [node.callback]: the listen address, the path, the
// allowed sources.
func (cb *CallbackConfig) CheckConf(c *conffile.Checker) {
	c.HostPort(&cb.Listen, conffile.Listen)
	c.Check(&cb.Path, func(s string) string {
		switch {
		case !strings.HasPrefix(s, "/"):
			return fmt.Sprintf("must start with \"/\" (the node's callback target), not %q", s)
		case strings.ContainsAny(s, "?#") || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return fmt.Sprintf("must be a path alone, without query, fragment, spaces or control characters: %q", s)
		}
		return ""
	})
	c.CheckEach(&cb.AllowedSources, func(s string) string {
		_, msg := parseSource(s)
		return msg
	})
	if c.IsSet(&cb.AllowedSources) && len(cb.AllowedSources) == 0 && !c.Failed(&cb.AllowedSources) {
		c.FailAt(&cb.AllowedSources, "must list at least one address or prefix (leave the key out to accept loopback only)")
	}
}

// LoadConfig reads the gateway's configuration file at path and parses it
// with ParseConfig. Errors are as relay.LoadConfig's.
func LoadConfig(path string) (*Config, error) {
	return conffile.Load[Config](path, "gateway", "gateway")
}

// ParseConfig parses and validates the contents of a gateway
// configuration file. Results and errors are as relay.ParseConfig's.
func ParseConfig(data []byte) (*Config, error) {
	cfg, errs := conffile.Decode[Config](data)
	if len(errs) > 0 {
		return nil, conffile.Join(errs)
	}
	return cfg, nil
}

// CheckConf checks [gateway]: exactly one state store ([gateway.leader]
// only with PostgreSQL), where it serves
// (with TLS exactly when over TCP), at least one manifest, the metrics
// listener.
func (s *Settings) CheckConf(c *conffile.Checker) {
	c.StateStore(&s.State, &s.Postgres, "the gateway's PostgreSQL database")
	if s.Leader != nil && s.Postgres == nil && !c.Failed(&s.Postgres) {
		c.FailAt(&s.Leader, "only allowed with [%s]: the gateways that share a database elect the one that drives the bridge", c.Key(&s.Postgres))
	}
	c.Endpoint(&s.Listen, conffile.Listen)
	switch {
	case !c.IsSet(&s.Manifests):
		c.FailAt(&s.Manifests, "required: the account manifests (written by 'nanokms account list --json') of the accounts the gateway serves")
	case len(s.Manifests) == 0 && !c.Failed(&s.Manifests):
		c.FailAt(&s.Manifests, "must list at least one manifest")
	}
	c.HostPort(&s.MetricsListen, conffile.Listen)
	if c.NeedsTLS(&s.TLS, &s.Listen, "the gateway serves TCP") {
		s.TLS.Check(c, "")
	}
}

// CheckConf checks [node]. The section is optional: without rpc the
// gateway has no node (heads come with submissions), but work still says
// how proof of work is made.
func (n *NodeConfig) CheckConf(c *conffile.Checker) {
	rpc := c.IsSet(&n.RPC)
	c.Check(&n.RPC, checkRPC)
	if !c.Failed(&n.RPC) {
		c.OnlyWhen(strings.HasPrefix(n.RPC, "ipc+"), fmt.Sprintf("when %s is ipc+tcp:// or ipc+unix://", c.Key(&n.RPC)), &n.IPCEncoding)
	}
	if c.IsSet(&n.IPCEncoding) && !c.Failed(&n.IPCEncoding) && n.IPCEncoding != int(node.IPCLegacy) && n.IPCEncoding != int(node.IPCLegacyUnsafe) {
		c.FailAt(&n.IPCEncoding, "must be %d (legacy RPC) or %d (legacy RPC allowing unsafe actions), not %d", node.IPCLegacy, node.IPCLegacyUnsafe, n.IPCEncoding)
	}
	c.URL(&n.WebSocket, "ws", "wss")
	if c.IsSet(&n.WebSocket) && !rpc {
		c.FailAt(&n.WebSocket, "only allowed with %s (the websocket only tells of confirmations)", c.Key(&n.RPC))
	}

	switch {
	case c.Failed(&n.Work):
		// Already reported; whether work_servers belong is unknown.
	case n.Work == "node" && !rpc:
		c.FailAt(&n.Work, "\"node\" requires %s: the node generates the work", c.Key(&n.RPC))
	case n.Work == "server":
		c.CheckEach(&n.WorkServers, func(s string) string { return conffile.CheckURL(s, "http", "https") })
		if len(n.WorkServers) == 0 && !c.Failed(&n.WorkServers) {
			c.FailAt(&n.WorkServers, "required when %s = \"server\": list at least one work server URL", c.Key(&n.Work))
		}
	default:
		c.OnlyWhen(false, fmt.Sprintf("when %s = \"server\"", c.Key(&n.Work)), &n.WorkServers)
	}

	c.Check(&n.WorkThreshold, func(s string) string {
		if _, err := nano.ParseThreshold(s); err != nil {
			return "must be 1 to 16 hex digits (a work threshold such as fff0000000000000)"
		}
		return ""
	})

	if n.Callback != nil && !rpc {
		c.FailAt(&n.Callback, "only allowed with %s: each callback is checked against the node (block_info)", c.Key(&n.RPC))
	}
	if n.AutoReceive && !rpc {
		c.FailAt(&n.AutoReceive, "requires %s: receivable sends are found through the node", c.Key(&n.RPC))
	}
	if n.AutoReceive && !c.IsSet(&n.Representative) {
		c.FailAt(&n.Representative, "required when %s = true: the representative of the accounts auto-receive opens", c.Key(&n.AutoReceive))
	}
}

// checkRPC checks a node RPC address: an http:// or https:// URL, or
// ipc+tcp://host:port, or ipc+unix:///absolute/path.
func checkRPC(s string) string {
	const form = "must be http://host:port, https://host:port, ipc+tcp://host:port or ipc+unix:///absolute/path"
	if ipc, ok := strings.CutPrefix(s, "ipc+"); ok {
		if !strings.HasPrefix(ipc, "tcp://") && !strings.HasPrefix(ipc, "unix://") {
			return fmt.Sprintf("%s, not %q", form, s)
		}
		if _, err := conffile.ParseEndpoint(ipc, conffile.Dial); err != nil {
			return fmt.Sprintf("%q: %v", s, err)
		}
		return ""
	}
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		return conffile.CheckURL(s, "http", "https")
	}
	return fmt.Sprintf("%s, not %q", form, s)
}
