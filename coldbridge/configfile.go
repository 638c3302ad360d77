package coldbridge

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nanokms/nanokms/conffile"
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
	confDefaultRetryMin       = 200 * time.Millisecond
	confDefaultRetryMax       = 10 * time.Second
	confDefaultMaxAge         = 24 * time.Hour
	confDefaultResendInterval = 30 * time.Second
	confDefaultNodeTimeout    = 10 * time.Second
	confDefaultLogLevel       = "info"
	confDefaultWork           = "cpu"
)

// confBauds are the line speeds bridge.baud accepts: the standard termios
// rates from 9600 up.
var confBauds = []int64{9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600,
	1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000}

// The files' shapes. Every leaf is a conffile.Value, typed by validate so
// that a type error names its key path; the toml tags are the only place
// key names are spelled, in the order of docs/CONFIG.md.

type confRelayFile struct {
	Relay  confRelay  `toml:"relay"`
	Bridge confBridge `toml:"bridge"`
}

type confRelay struct {
	Signer    conffile.Value `toml:"signer"`
	RetryMin  conffile.Value `toml:"retry_min"`
	RetryMax  conffile.Value `toml:"retry_max"`
	Heartbeat conffile.Value `toml:"heartbeat"`
	Metrics   conffile.Value `toml:"metrics"`
	LogLevel  conffile.Value `toml:"log_level"`
	TLS       *confTLSClient `toml:"tls"` // nil when [relay.tls] is absent
}

type confTLSClient struct {
	Cert       conffile.Value `toml:"cert"`
	Key        conffile.Value `toml:"key"`
	KeyLabel   conffile.Value `toml:"key_label"`
	CA         conffile.Value `toml:"ca"`
	ServerName conffile.Value `toml:"server_name"`
	Token      *confTLSToken  `toml:"token"` // nil when [relay.tls.token] is absent
}

type confTLSToken struct {
	Module  conffile.Value `toml:"module"`
	Label   conffile.Value `toml:"label"`
	PINFile conffile.Value `toml:"pin_file"`
	PINEnv  conffile.Value `toml:"pin_env"`
}

type confBridge struct {
	Kind          conffile.Value `toml:"kind"`
	Inbound       conffile.Value `toml:"inbound"`
	Outbound      conffile.Value `toml:"outbound"`
	Root          conffile.Value `toml:"root"`
	Device        conffile.Value `toml:"device"`
	Baud          conffile.Value `toml:"baud"`
	Pace          conffile.Value `toml:"pace"`
	MaxAge        conffile.Value `toml:"max_age"`
	MaxFutureSkew conffile.Value `toml:"max_future_skew"`
	PollInterval  conffile.Value `toml:"poll_interval"`
}

type confGatewayFile struct {
	Gateway confGateway `toml:"gateway"`
	Bridge  confBridge  `toml:"bridge"`
	Node    confNode    `toml:"node"`
}

type confGateway struct {
	State          conffile.Value `toml:"state"`
	Listen         conffile.Value `toml:"listen"`
	Manifests      conffile.Value `toml:"manifests"`
	ResendInterval conffile.Value `toml:"resend_interval"`
	MetricsListen  conffile.Value `toml:"metrics_listen"`
	LogLevel       conffile.Value `toml:"log_level"`
	TLS            *confTLSServer `toml:"tls"` // nil when [gateway.tls] is absent
}

type confTLSServer struct {
	Cert              conffile.Value `toml:"cert"`
	Key               conffile.Value `toml:"key"`
	ClientCA          conffile.Value `toml:"client_ca"`
	AllowedIdentities conffile.Value `toml:"allowed_identities"`
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

// LoadRelayConfig reads the relay's configuration file at path and parses
// it with ParseRelayConfig.
//
// An error reading the file is returned wrapped (it names the file;
// errors.Is(err, fs.ErrNotExist) works). A problem with its contents is
// returned as ParseRelayConfig returns it, with File set to path in every
// *conffile.Error.
func LoadRelayConfig(path string) (*RelayConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("coldbridge: reading the relay configuration: %w", err)
	}
	cfg, errs := parseRelayConfig(data)
	if len(errs) > 0 {
		conffile.SetFile(errs, path)
		return nil, conffile.Join(errs)
	}
	return cfg, nil
}

// ParseRelayConfig parses and validates the contents of a relay
// configuration file.
//
// On success it returns a RelayConfig with every default applied. Otherwise
// it returns a nil RelayConfig and every problem it found: a single
// *conffile.Error when there is one, else an error made by errors.Join
// whose Unwrap() []error returns only *conffile.Error values, in a stable
// order. It never panics.
func ParseRelayConfig(data []byte) (*RelayConfig, error) {
	cfg, errs := parseRelayConfig(data)
	if len(errs) > 0 {
		return nil, conffile.Join(errs)
	}
	return cfg, nil
}

// LoadGatewayConfig reads the gateway's configuration file at path and
// parses it with ParseGatewayConfig. Errors are as LoadRelayConfig's.
func LoadGatewayConfig(path string) (*GatewayConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("coldbridge: reading the gateway configuration: %w", err)
	}
	cfg, errs := parseGatewayConfig(data)
	if len(errs) > 0 {
		conffile.SetFile(errs, path)
		return nil, conffile.Join(errs)
	}
	return cfg, nil
}

// ParseGatewayConfig parses and validates the contents of a gateway
// configuration file. Results and errors are as ParseRelayConfig's.
func ParseGatewayConfig(data []byte) (*GatewayConfig, error) {
	cfg, errs := parseGatewayConfig(data)
	if len(errs) > 0 {
		return nil, conffile.Join(errs)
	}
	return cfg, nil
}

func parseRelayConfig(data []byte) (*RelayConfig, []*conffile.Error) {
	var f confRelayFile
	c, ok := conffile.Parse(data, &f)
	if !ok {
		return nil, c.Errors()
	}
	cfg := f.validate(c)
	if errs := c.Errors(); len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

func parseGatewayConfig(data []byte) (*GatewayConfig, []*conffile.Error) {
	var f confGatewayFile
	c, ok := conffile.Parse(data, &f)
	if !ok {
		return nil, c.Errors()
	}
	cfg := f.validate(c)
	if errs := c.Errors(); len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// confLogLevel reads a log_level key.
func confLogLevel(c *conffile.Checker, key string, v conffile.Value) string {
	return c.OneOf(key, v, confDefaultLogLevel, "debug", "info", "warn", "error")
}

// validate checks the relay's file and builds its RelayConfig; problems
// are recorded in c.
func (f *confRelayFile) validate(c *conffile.Checker) *RelayConfig {
	const key = "relay"
	r := &f.Relay
	cfg := &RelayConfig{}
	signer := c.Endpoint(key+".signer", r.Signer, conffile.Dial)
	if signer.Network != "" {
		cfg.Signer = signer.String()
	}
	cfg.RetryMin = c.Duration(key+".retry_min", r.RetryMin, confDefaultRetryMin)
	cfg.RetryMax = c.Duration(key+".retry_max", r.RetryMax, confDefaultRetryMax)
	if cfg.RetryMax < cfg.RetryMin && !c.FailedAt(key+".retry_min") && !c.FailedAt(key+".retry_max") {
		c.Fail(key+".retry_max", "%s is less than %s.retry_min (%s)", cfg.RetryMax, key, cfg.RetryMin)
	}
	cfg.Heartbeat = c.DurationOrZero(key+".heartbeat", r.Heartbeat, 0)
	cfg.Metrics = c.OptAbsPath(key+".metrics", r.Metrics)
	if cfg.Metrics != "" && !strings.HasSuffix(cfg.Metrics, ".prom") {
		c.Fail(key+".metrics", "%q must end in .prom (the node_exporter textfile collector reads only *.prom files)", cfg.Metrics)
	}
	cfg.LogLevel = confLogLevel(c, key+".log_level", r.LogLevel)

	switch {
	case signer.Network == "tcp" && r.TLS == nil:
		c.Fail(key+".tls", "required when %s.signer is tcp://: the relay reaches the signer over TCP only with mutual TLS 1.3", key)
	case signer.Network == "unix" && r.TLS != nil:
		c.Fail(key+".tls", "only allowed when %s.signer is tcp:// (a Unix socket is protected by its file permissions)", key)
	case r.TLS != nil:
		cfg.TLS = r.TLS.validate(c, key+".tls")
	}

	cfg.Bridge = f.Bridge.validate(c, "bridge")
	return cfg
}

// validate checks a client's [*.tls] at key: every file, the key (a file,
// or a label and the [*.tls.token] it is on) and the server's name.
func (f *confTLSClient) validate(c *conffile.Checker, key string) *TLSClientConfig {
	t := &TLSClientConfig{
		Cert:       c.AbsPath(key+".cert", f.Cert),
		CA:         c.AbsPath(key+".ca", f.CA),
		ServerName: c.StrCheck(key+".server_name", f.ServerName, conffile.CheckHost),
	}
	switch {
	case f.Key.IsSet() && f.KeyLabel.IsSet():
		c.Fail(key+".key_label", "not allowed together with %s.key: the private key is either a file or a key on a token", key)
	case f.KeyLabel.IsSet():
		t.KeyLabel = c.StrCheck(key+".key_label", f.KeyLabel, conffile.CheckKeyLabel)
		if f.Token == nil {
			c.Fail(key+".token", "required with %s.key_label: the token (module, label, PIN source) that holds the key", key)
		}
	case f.Key.IsSet():
		t.Key = c.AbsPath(key+".key", f.Key)
	default:
		c.Fail(key+".key", "required (or %s.key_label, the label of a key on a token made by 'nanokms token tls-key')", key)
	}
	if f.Token != nil {
		if !f.KeyLabel.IsSet() {
			c.Fail(key+".token", "only allowed with %s.key_label (a key on the token)", key)
		}
		t.Token = f.Token.validate(c, key+".token")
	}
	return t
}

// confEnvVarRE matches an environment variable name.
var confEnvVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validate checks a [*.tls.token] at key: the module, the token's label
// and exactly one PIN source.
func (f *confTLSToken) validate(c *conffile.Checker, key string) *TLSToken {
	t := &TLSToken{
		Module:  c.AbsPath(key+".module", f.Module),
		Label:   c.Str(key+".label", f.Label),
		PINFile: c.OptAbsPath(key+".pin_file", f.PINFile),
		PINEnv:  c.OptStr(key+".pin_env", f.PINEnv),
	}
	if len(t.Label) > 32 {
		c.Fail(key+".label", "%q is longer than the 32 bytes of a token label", t.Label)
	}
	switch {
	case c.FailedAt(key+".pin_file") || c.FailedAt(key+".pin_env"):
		// Already reported.
	case t.PINEnv != "" && !confEnvVarRE.MatchString(t.PINEnv):
		c.Fail(key+".pin_env", "%q is not an environment variable name", t.PINEnv)
	case t.PINFile != "" && t.PINEnv != "":
		c.Fail(key+".pin_env", "not allowed together with %s.pin_file: give exactly one PIN source", key)
	case t.PINFile == "" && t.PINEnv == "":
		c.Fail(key+".pin_file", "required (or %s.pin_env): give exactly one PIN source", key)
	}
	return t
}

// validate checks [bridge] at key. Keys of the other kind are refused.
func (f *confBridge) validate(c *conffile.Checker, key string) BridgeConfig {
	b := BridgeConfig{Kind: c.OneOf(key+".kind", f.Kind, "", "file", "serial")}
	// allowed reports whether the key name, of the bridges of kind, is to
	// be read; it refuses the key if it is set for another kind. Nothing is
	// said when bridge.kind is itself wrong.
	allowed := func(name string, v conffile.Value, kind string) bool {
		if v.IsSet() && b.Kind != kind && b.Kind != "" {
			c.Fail(key+"."+name, "only allowed when %s.kind = %q", key, kind)
		}
		return b.Kind == kind
	}

	if allowed("inbound", f.Inbound, "file") {
		b.Inbound = c.AbsPath(key+".inbound", f.Inbound)
	}
	if allowed("outbound", f.Outbound, "file") {
		b.Outbound = c.AbsPath(key+".outbound", f.Outbound)
		if b.Inbound != "" && b.Outbound != "" {
			in, out := filepath.Clean(b.Inbound), filepath.Clean(b.Outbound)
			switch {
			case in == out:
				c.Fail(key+".outbound", "must differ from %s.inbound (both are %q)", key, in)
			case confPathWithin(out, in):
				c.Fail(key+".outbound", "must not be inside %s.inbound (%q)", key, in)
			case confPathWithin(in, out):
				c.Fail(key+".outbound", "must not contain %s.inbound (%q)", key, in)
			}
		}
	}
	if allowed("root", f.Root, "file") {
		if b.Root = c.OptAbsPath(key+".root", f.Root); b.Root != "" {
			root := filepath.Clean(b.Root)
			for _, d := range []struct{ name, path string }{{"inbound", b.Inbound}, {"outbound", b.Outbound}} {
				if d.path != "" && !confPathWithin(filepath.Clean(d.path), root) {
					c.Fail(key+".root", "must contain %s.%s (%q)", key, d.name, d.path)
				}
			}
		}
	}
	if allowed("device", f.Device, "serial") {
		b.Device = c.AbsPath(key+".device", f.Device)
	}
	if allowed("baud", f.Baud, "serial") {
		b.Baud = DefaultBaud
		n := c.Int(key+".baud", f.Baud, DefaultBaud)
		if slices.Contains(confBauds, n) {
			b.Baud = int(n)
		} else {
			c.Fail(key+".baud", "must be a standard rate from 9600 to 4000000 (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600...), not %d", n)
		}
	}
	if allowed("pace", f.Pace, "serial") {
		b.Pace = c.Bool(key+".pace", f.Pace, false)
	}
	b.MaxAge = c.DurationOrZero(key+".max_age", f.MaxAge, confDefaultMaxAge)
	b.MaxFutureSkew = c.Duration(key+".max_future_skew", f.MaxFutureSkew, DefaultMaxFutureSkew)
	if allowed("poll_interval", f.PollInterval, "file") {
		b.PollInterval = c.Duration(key+".poll_interval", f.PollInterval, DefaultPollInterval)
	}
	return b
}

// confPathWithin reports whether path p is inside directory dir (both clean).
func confPathWithin(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// validate checks the gateway's file and builds its GatewayConfig;
// problems are recorded in c.
func (f *confGatewayFile) validate(c *conffile.Checker) *GatewayConfig {
	const key = "gateway"
	g := &f.Gateway
	cfg := &GatewayConfig{State: c.AbsPath(key+".state", g.State)}
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
	cfg.LogLevel = confLogLevel(c, key+".log_level", g.LogLevel)

	switch {
	case listen.Network == "tcp" && g.TLS == nil:
		c.Fail(key+".tls", "required when %s.listen is tcp://: the gateway serves TCP only with mutual TLS 1.3", key)
	case listen.Network == "unix" && g.TLS != nil:
		c.Fail(key+".tls", "only allowed when %s.listen is tcp:// (a Unix socket is protected by its file permissions)", key)
	case g.TLS != nil:
		cfg.TLS = g.TLS.validate(c, key+".tls")
	}

	cfg.Bridge = f.Bridge.validate(c, "bridge")
	cfg.Node = f.Node.validate(c, "node")
	return cfg
}

// validate checks a server's [*.tls] at key: every file and at least one
// identity.
func (f *confTLSServer) validate(c *conffile.Checker, key string) *TLSServerConfig {
	t := &TLSServerConfig{
		Cert:     c.AbsPath(key+".cert", f.Cert),
		Key:      c.AbsPath(key+".key", f.Key),
		ClientCA: c.AbsPath(key+".client_ca", f.ClientCA),
	}
	if !f.AllowedIdentities.IsSet() {
		c.Fail(key+".allowed_identities", "required: the client identities (certificate DNS SAN or CN) allowed to connect")
		return t
	}
	t.AllowedIdentities = c.UniqueStrings(key+".allowed_identities", f.AllowedIdentities, conffile.CheckPrintable)
	if list, isArray := f.AllowedIdentities.Raw().([]any); isArray && len(list) == 0 {
		c.Fail(key+".allowed_identities", "must list at least one identity")
	}
	return t
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
