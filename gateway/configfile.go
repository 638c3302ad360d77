package gateway

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/nano"
)

// The relay's and the gateway's configuration files, in TOML, documented
// key by key in docs/CONFIG.md. They are read strictly (see package
// conffile): an unknown key is an error at any depth, every value has one
// type, and every problem is reported, all at once, as a *conffile.Error
// naming its key path.

// Defaults of the configuration files (the others are the transports':
// DefaultPollInterval, DefaultMaxFutureSkew, DefaultBaud).
const (
	confDefaultResendInterval = 30 * time.Second
	confDefaultNodeTimeout    = 10 * time.Second
	confDefaultWork           = "cpu"
)

// The files' shapes. Every leaf is a conffile.Value, typed by validate so
// that a type error names its key path; the toml tags are the only place
// key names are spelled, in the order of docs/CONFIG.md.

type configFile struct {
	Gateway gatewaySection `toml:"gateway"`
	Bridge  bridge.Section `toml:"bridge"`
	Node    confNode       `toml:"node"`
}

type gatewaySection struct {
	State          conffile.Value             `toml:"state"`
	Listen         conffile.Value             `toml:"listen"`
	Manifests      conffile.Value             `toml:"manifests"`
	ResendInterval conffile.Value             `toml:"resend_interval"`
	MetricsListen  conffile.Value             `toml:"metrics_listen"`
	LogLevel       conffile.Value             `toml:"log_level"`
	TLS            *conffile.TLSServerSection `toml:"tls"` // nil when [gateway.tls] is absent
}

type confNode struct {
	RPC            conffile.Value `toml:"rpc"`
	WebSocket      conffile.Value `toml:"websocket"`
	Timeout        conffile.Value `toml:"timeout"`
	Work           conffile.Value `toml:"work"`
	WorkServers    conffile.Value `toml:"work_servers"`
	AutoReceive    conffile.Value `toml:"auto_receive"`
	Representative conffile.Value `toml:"representative"`
	WorkThreshold  conffile.Value `toml:"work_threshold"`
}

// LoadConfig reads the gateway's configuration file at path and
// parses it with ParseConfig. Errors are as LoadRelayConfig's.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gateway: reading the gateway configuration: %w", err)
	}
	cfg, errs := parseConfig(data)
	if len(errs) > 0 {
		conffile.SetFile(errs, path)
		return nil, conffile.Join(errs)
	}
	return cfg, nil
}

// ParseConfig parses and validates the contents of a gateway
// configuration file. Results and errors are as ParseRelayConfig's.
func ParseConfig(data []byte) (*Config, error) {
	cfg, errs := parseConfig(data)
	if len(errs) > 0 {
		return nil, conffile.Join(errs)
	}
	return cfg, nil
}

func parseConfig(data []byte) (*Config, []*conffile.Error) {
	return conffile.Build(data, (*configFile).validate)
}

// validate checks the gateway's file and builds its Config;
// problems are recorded in c.
func (f *configFile) validate(c *conffile.Checker) *Config {
	const key = "gateway"
	g := &f.Gateway
	cfg := &Config{State: c.AbsPath(key+".state", g.State)}
	listen := c.Endpoint(key+".listen", g.Listen, conffile.Listen)
	if listen.Network != "" {
		cfg.Listen = listen.String()
	}

	if !g.Manifests.IsSet() {
		c.Fail(key+".manifests", "required: the account manifests (written by 'nanokms account list --json') of the accounts the gateway serves")
	} else {
		cfg.Manifests = c.UniqueStrings(key+".manifests", g.Manifests, conffile.CheckAbsPath)
		if list, isArray := g.Manifests.Raw().([]any); isArray && len(list) == 0 {
			c.Fail(key+".manifests", "must list at least one manifest")
		}
	}
	cfg.ResendInterval = c.Duration(key+".resend_interval", g.ResendInterval, confDefaultResendInterval)
	if g.MetricsListen.IsSet() {
		cfg.MetricsListen = c.HostPort(key+".metrics_listen", g.MetricsListen, conffile.Listen)
	}
	cfg.LogLevel = c.LogLevel(key+".log_level", g.LogLevel)

	if c.NeedsTLS(key+".tls", key+".listen", listen, g.TLS != nil, "the gateway serves TCP") {
		cfg.TLS = g.TLS.Validate(c, key+".tls", "")
	}

	cfg.Bridge = f.Bridge.Validate(c, "bridge")
	cfg.Node = f.Node.validate(c, "node")
	return cfg
}

// validate checks [node] at key. The section is optional: without rpc the
// gateway has no node (heads come with submissions), but work still says
// how proof of work is made.
func (f *confNode) validate(c *conffile.Checker, key string) NodeConfig {
	n := NodeConfig{}
	if f.RPC.IsSet() {
		n.RPC = c.StrCheck(key+".rpc", f.RPC, confCheckRPC)
	}
	if f.WebSocket.IsSet() {
		n.WebSocket = c.URL(key+".websocket", f.WebSocket, "ws", "wss")
		if !f.RPC.IsSet() {
			c.Fail(key+".websocket", "only allowed with %s.rpc (the websocket only tells of confirmations)", key)
		}
	}
	n.Timeout = c.Duration(key+".timeout", f.Timeout, confDefaultNodeTimeout)

	n.Work = c.OneOf(key+".work", f.Work, confDefaultWork, "cpu", "node", "server")
	switch {
	case c.FailedAt(key + ".work"):
		// Already reported; whether work_servers belong is unknown.
	case n.Work == "node" && !f.RPC.IsSet():
		c.Fail(key+".work", "\"node\" requires %s.rpc: the node generates the work", key)
	case n.Work == "server":
		n.WorkServers = c.UniqueStrings(key+".work_servers", f.WorkServers, func(s string) string { return conffile.CheckURL(s, "http", "https") })
		if len(f.WorkServers.List()) == 0 && !c.FailedAt(key+".work_servers") {
			c.Fail(key+".work_servers", "required when %s.work = \"server\": list at least one work server URL", key)
		}
	case f.WorkServers.IsSet():
		c.Fail(key+".work_servers", "only allowed when %s.work = \"server\"", key)
	}

	if f.WorkThreshold.IsSet() {
		n.WorkThreshold = c.StrCheck(key+".work_threshold", f.WorkThreshold, func(s string) string {
			if _, err := nano.ParseThreshold(s); err != nil {
				return "must be 1 to 16 hex digits (a work threshold such as fff0000000000000)"
			}
			return ""
		})
	}

	n.AutoReceive = c.Bool(key+".auto_receive", f.AutoReceive, false)
	if n.AutoReceive && !f.RPC.IsSet() {
		c.Fail(key+".auto_receive", "requires %s.rpc: receivable sends are found through the node", key)
	}
	switch {
	case f.Representative.IsSet():
		n.Representative, _ = c.Account(key+".representative", f.Representative)
	case n.AutoReceive:
		c.Fail(key+".representative", "required when %s.auto_receive = true: the representative of the accounts auto-receive opens", key)
	}
	return n
}

// confCheckRPC checks a node RPC address: an http:// or https:// URL, or
// ipc+tcp://host:port, or ipc+unix:///absolute/path.
func confCheckRPC(s string) string {
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
