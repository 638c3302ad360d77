package gateway

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/serial"
	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/relay"
)

const confRep = "nano_375zwei3suaam4jtaxioi7cy919pcaz9k9b6a6xxw85y676gga1dxqiqcdo5"

// The smallest valid files; the tests edit them case by case.
const (
	confMinimalRelay = `[relay]
signer = "unix:///run/nanokms/signer.sock"

[bridge]
kind = "file"
inbound = "/media/nanokms/to-cold"
outbound = "/media/nanokms/to-hot"
`
	confMinimalGateway = `[gateway]
state = "/var/lib/nanokms/gateway.db"
listen = "unix:///run/nanokms/gateway.sock"
manifests = ["/etc/nanokms/treasury.json"]

[bridge]
kind = "file"
inbound = "/media/nanokms/to-hot"
outbound = "/media/nanokms/to-cold"
`
	confSerialBridge = `[bridge]
kind = "serial"
device = "/dev/ttyUSB0"
`
	confRelayTLS = `
[relay.tls]
cert = "/etc/nanokms/relay.crt"
key = "/etc/nanokms/relay.key"
ca = "/etc/nanokms/signer-ca.crt"
server_name = "signer.cold"
`
	confRelayTLSToken = "\n[relay.tls.token]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\nlabel = \"relay\"\npin_file = \"/etc/nanokms/relay.pin\"\n"
	confGatewayTLS    = `
[gateway.tls]
cert = "/etc/nanokms/gateway.crt"
key = "/etc/nanokms/gateway.key"
client_ca = "/etc/nanokms/clients-ca.crt"
allowed_identities = ["withdrawals.hot"]
`
	confFileBridgeKeys = "kind = \"file\"\ninbound = \"/media/nanokms/to-hot\"\noutbound = \"/media/nanokms/to-cold\"\n"
)

// confEdit is a change to a configuration text.
type confEdit func(t *testing.T, src string) string

// confReplace replaces the first old with new; old must be present.
func confReplace(old, new string) confEdit {
	return func(t *testing.T, src string) string {
		t.Helper()
		if !strings.Contains(src, old) {
			t.Fatalf("test bug: %q is not in the configuration", old)
		}
		return strings.Replace(src, old, new, 1)
	}
}

// confAfter inserts text on the line after the first line equal to line.
func confAfter(line, text string) confEdit {
	return confReplace(line+"\n", line+"\n"+text+"\n")
}

// confAdd appends text at the end.
func confAdd(text string) confEdit {
	return func(t *testing.T, src string) string { return src + "\n" + text + "\n" }
}

// confPrepend puts text at the start, before any table.
func confPrepend(text string) confEdit {
	return func(t *testing.T, src string) string { return text + "\n" + src }
}

func confApply(t *testing.T, src string, edits []confEdit) string {
	t.Helper()
	for _, e := range edits {
		src = e(t, src)
	}
	return src
}

func confReadTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// confErrors checks that err is a *conffile.Error or a joined list of them,
// each naming a key (or, for a syntax error, a line), and returns them.
func confErrors(t *testing.T, err error) []*conffile.Error {
	t.Helper()
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	out := make([]*conffile.Error, 0, len(list))
	for _, e := range list {
		ce, ok := e.(*conffile.Error)
		if !ok {
			t.Fatalf("error %T (%v) is not a *conffile.Error", e, e)
		}
		if ce.Key == "" && !strings.HasPrefix(ce.Msg, "TOML syntax error at line") {
			t.Errorf("error %q names no key", ce.Error())
		}
		if !strings.Contains(ce.Error(), ce.Key) {
			t.Errorf("Error() %q does not name the key %q", ce.Error(), ce.Key)
		}
		out = append(out, ce)
	}
	return out
}

// confWantError checks that err holds an error at key with msg in its
// message.
func confWantError(t *testing.T, err error, key, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one at %q", key)
	}
	for _, e := range confErrors(t, err) {
		if e.Key == key && strings.Contains(e.Msg, msg) {
			return
		}
	}
	t.Errorf("no error at %q containing %q; got:\n%v", key, msg, err)
}

func mustConfAccount(t *testing.T, s string) nano.PublicKey {
	t.Helper()
	k, err := nano.ParseAccount(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRelayConfigExample(t *testing.T) {
	cfg, err := relay.LoadConfig(filepath.Join("testdata", "relay.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &relay.Config{
		Signer: "tcp://10.0.7.2:7070",
		TLS: &conffile.TLSClient{
			Cert: "/etc/nanokms/relay.crt", Key: "/etc/nanokms/relay.key",
			CA: "/etc/nanokms/signer-ca.crt", ServerName: "signer.cold",
		},
		RetryMin:  200 * time.Millisecond,
		RetryMax:  10 * time.Second,
		Heartbeat: 0,
		Metrics:   "/var/lib/node_exporter/textfile/nanokms_relay.prom",
		LogLevel:  "info",
		Bridge: bridge.Config{
			Kind:    "file",
			Inbound: "/media/nanokms/to-cold", Outbound: "/media/nanokms/to-hot",
			MaxAge: 24 * time.Hour, MaxFutureSkew: 5 * time.Minute, PollInterval: 200 * time.Millisecond,
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestGatewayConfigExample(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "gateway.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		State:  "/var/lib/nanokms/gateway.db",
		Listen: "tcp://0.0.0.0:7443",
		TLS: &conffile.TLSServer{
			Cert: "/etc/nanokms/gateway.crt", Key: "/etc/nanokms/gateway.key",
			ClientCA: "/etc/nanokms/clients-ca.crt", AllowedIdentities: []string{"withdrawals.hot"},
		},
		Manifests:      []string{"/etc/nanokms/treasury.json"},
		ResendInterval: 30 * time.Second,
		MetricsListen:  "127.0.0.1:9464",
		LogLevel:       "info",
		Bridge: bridge.Config{
			Kind:    "file",
			Inbound: "/media/nanokms/to-hot", Outbound: "/media/nanokms/to-cold",
			MaxAge: 24 * time.Hour, MaxFutureSkew: 5 * time.Minute, PollInterval: 200 * time.Millisecond,
		},
		Node: NodeConfig{
			RPC: "http://[::1]:7076", WebSocket: "ws://[::1]:7078", Timeout: 10 * time.Second,
			Work: "server", WorkServers: []string{"http://[::1]:7000"},
			AutoReceive: true, Representative: mustConfAccount(t, confRep),
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

// TestConfigExamplesInDocs checks that docs/CONFIG.md shows
// testdata/relay.toml verbatim in a ```toml block of its "# Relay"
// section, and testdata/gateway.toml in its "# Gateway" section.
func TestConfigExamplesInDocs(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "CONFIG.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	var name string
	fenced := false // inside a ``` block, where "# " starts a comment
	for _, line := range strings.SplitAfter(string(doc), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if h, ok := strings.CutPrefix(line, "# "); ok && !fenced {
			name = strings.TrimSpace(h)
		}
		sections[name] += line
	}
	for _, tt := range []struct{ section, file string }{{"Relay", "relay.toml"}, {"Gateway", "gateway.toml"}} {
		example := confReadTestdata(t, tt.file)
		rest, found := sections[tt.section], false
		for !found {
			var block string
			var ok bool
			_, block, ok = strings.Cut(rest, "```toml\n")
			if !ok {
				break
			}
			var body string
			body, rest, _ = strings.Cut(block, "```\n")
			found = body == example
		}
		if !found {
			t.Errorf("the %q section of docs/CONFIG.md has no ```toml block equal to gateway/testdata/%s", tt.section, tt.file)
		}
	}
}

func TestRelayConfigDefaults(t *testing.T) {
	cfg, err := relay.ParseConfig([]byte(confMinimalRelay))
	if err != nil {
		t.Fatal(err)
	}
	want := &relay.Config{
		Signer:   "unix:///run/nanokms/signer.sock",
		RetryMin: 200 * time.Millisecond, RetryMax: 10 * time.Second,
		LogLevel: "info",
		Bridge: bridge.Config{
			Kind:    "file",
			Inbound: "/media/nanokms/to-cold", Outbound: "/media/nanokms/to-hot",
			MaxAge: 24 * time.Hour, MaxFutureSkew: filemedium.DefaultMaxFutureSkew, PollInterval: filemedium.DefaultPollInterval,
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestGatewayConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(confMinimalGateway))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		State:          "/var/lib/nanokms/gateway.db",
		Listen:         "unix:///run/nanokms/gateway.sock",
		Manifests:      []string{"/etc/nanokms/treasury.json"},
		ResendInterval: 30 * time.Second,
		LogLevel:       "info",
		Bridge: bridge.Config{
			Kind:    "file",
			Inbound: "/media/nanokms/to-hot", Outbound: "/media/nanokms/to-cold",
			MaxAge: 24 * time.Hour, MaxFutureSkew: 5 * time.Minute, PollInterval: 200 * time.Millisecond,
		},
		Node: NodeConfig{Timeout: 10 * time.Second, Work: "cpu"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestRelayConfigValid(t *testing.T) {
	const signer = `signer = "unix:///run/nanokms/signer.sock"`
	tests := []struct {
		name  string
		edits []confEdit
		check func(t *testing.T, c *relay.Config)
	}{
		{"serial", []confEdit{confReplace(confMinimalRelay[strings.Index(confMinimalRelay, "[bridge]"):], confSerialBridge+"baud = 921600\npace = true\nmax_age = \"0s\"\n")}, func(t *testing.T, c *relay.Config) {
			b := c.Bridge
			if b.Kind != "serial" || b.Device != "/dev/ttyUSB0" || b.Baud != 921600 || !b.Pace || b.MaxAge != 0 || b.PollInterval != 0 || b.Inbound != "" {
				t.Errorf("bridge = %+v", b)
			}
		}},
		{"serial defaults", []confEdit{confReplace(confMinimalRelay[strings.Index(confMinimalRelay, "[bridge]"):], confSerialBridge)}, func(t *testing.T, c *relay.Config) {
			if b := c.Bridge; b.Baud != serial.DefaultBaud || b.Pace || b.MaxAge != 24*time.Hour || b.MaxFutureSkew != filemedium.DefaultMaxFutureSkew {
				t.Errorf("bridge = %+v", b)
			}
		}},
		{"tcp ipv6 with tls", []confEdit{confReplace(signer, `signer = "tcp://[fd00::7]:7070"`), confReplace("\n[bridge]", confRelayTLS+"\n[bridge]")}, func(t *testing.T, c *relay.Config) {
			if c.Signer != "tcp://[fd00::7]:7070" || c.TLS == nil || c.TLS.ServerName != "signer.cold" {
				t.Errorf("relay = %+v", c)
			}
		}},
		{"tls key on a token", []confEdit{confReplace(signer, `signer = "tcp://10.0.7.2:7070"`), confReplace("\n[bridge]", confRelayTLS+"\n[bridge]"),
			confReplace(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls"`), confAfter(`server_name = "signer.cold"`, confRelayTLSToken)}, func(t *testing.T, c *relay.Config) {
			want := &conffile.TLSClient{Cert: "/etc/nanokms/relay.crt", KeyLabel: "relay-tls", CA: "/etc/nanokms/signer-ca.crt", ServerName: "signer.cold",
				Token: &conffile.TLSToken{Module: "/usr/lib/softhsm/libsofthsm2.so", Label: "relay", PINFile: "/etc/nanokms/relay.pin"}}
			if !reflect.DeepEqual(c.TLS, want) {
				t.Errorf("relay.tls = %+v, token %+v", c.TLS, c.TLS.Token)
			}
		}},
		{"tls token pin_env", []confEdit{confReplace(signer, `signer = "tcp://10.0.7.2:7070"`), confReplace("\n[bridge]", confRelayTLS+"\n[bridge]"),
			confReplace(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls"`), confAfter(`server_name = "signer.cold"`, strings.Replace(confRelayTLSToken, `pin_file = "/etc/nanokms/relay.pin"`, `pin_env = "RELAY_PIN"`, 1))}, func(t *testing.T, c *relay.Config) {
			if c.TLS.Token.PINEnv != "RELAY_PIN" || c.TLS.Token.PINFile != "" {
				t.Errorf("relay.tls.token = %+v", c.TLS.Token)
			}
		}},
		{"server name an address", []confEdit{confReplace(signer, `signer = "tcp://signer.cold:7070"`), confReplace("\n[bridge]", strings.Replace(confRelayTLS, `"signer.cold"`, `"10.0.7.2"`, 1)+"\n[bridge]")}, nil},
		{"timings", []confEdit{confAfter(signer, "retry_min = \"1s\"\nretry_max = \"1s\"\nheartbeat = \"1m\"\nlog_level = \"debug\"")}, func(t *testing.T, c *relay.Config) {
			if c.RetryMin != time.Second || c.RetryMax != time.Second || c.Heartbeat != time.Minute || c.LogLevel != "debug" {
				t.Errorf("relay = %+v", c)
			}
		}},
		{"bridge durations", []confEdit{confAdd("max_age = \"1h\"\nmax_future_skew = \"30s\"\npoll_interval = \"1s\"")}, func(t *testing.T, c *relay.Config) {
			if b := c.Bridge; b.MaxAge != time.Hour || b.MaxFutureSkew != 30*time.Second || b.PollInterval != time.Second {
				t.Errorf("bridge = %+v", b)
			}
		}},
		{"sibling directories with a common prefix", []confEdit{confReplace(`"/media/nanokms/to-hot"`, `"/media/nanokms/to-cold2"`)}, nil},
		{"medium root", []confEdit{confAdd(`root = "/media"`)}, func(t *testing.T, c *relay.Config) {
			if b := c.Bridge; b.Root != "/media" || b.Inbound != "/media/nanokms/to-cold" {
				t.Errorf("bridge = %+v", b)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := relay.ParseConfig([]byte(confApply(t, confMinimalRelay, tt.edits)))
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, cfg)
			}
		})
	}
}

func TestGatewayConfigValid(t *testing.T) {
	tests := []struct {
		name  string
		edits []confEdit
		check func(t *testing.T, c *Config)
	}{
		{"node over ipc+tcp", []confEdit{confAdd("[node]\nrpc = \"ipc+tcp://[::1]:7077\"\nwork = \"node\"")}, func(t *testing.T, c *Config) {
			if c.Node.RPC != "ipc+tcp://[::1]:7077" || c.Node.Work != "node" || c.Node.WorkServers != nil {
				t.Errorf("node = %+v", c.Node)
			}
		}},
		{"node over ipc+unix", []confEdit{confAdd("[node]\nrpc = \"ipc+unix:///run/nano/node.ipc\"")}, nil},
		{"node over https with wss", []confEdit{confAdd("[node]\nrpc = \"https://node.example:7076/rpc\"\nwebsocket = \"wss://node.example\"\ntimeout = \"2s\"")}, func(t *testing.T, c *Config) {
			if c.Node.WebSocket != "wss://node.example" || c.Node.Timeout != 2*time.Second {
				t.Errorf("node = %+v", c.Node)
			}
		}},
		{"work without a node", []confEdit{confAdd("[node]\nwork = \"server\"\nwork_servers = [\"http://10.0.0.9:7000\", \"https://work.example\"]")}, func(t *testing.T, c *Config) {
			if c.Node.RPC != "" || len(c.Node.WorkServers) != 2 {
				t.Errorf("node = %+v", c.Node)
			}
		}},
		{"representative without auto_receive", []confEdit{confAdd("[node]\nrpc = \"http://[::1]:7076\"\nrepresentative = \"" + confRep + "\"")}, func(t *testing.T, c *Config) {
			if c.Node.AutoReceive || c.Node.Representative != mustConfAccount(t, confRep) {
				t.Errorf("node = %+v", c.Node)
			}
		}},
		{"tcp with tls", []confEdit{confReplace(`"unix:///run/nanokms/gateway.sock"`, `"tcp://[::]:7443"`), confReplace("\n[bridge]", confGatewayTLS+"\n[bridge]")}, func(t *testing.T, c *Config) {
			if c.Listen != "tcp://[::]:7443" || c.TLS == nil || len(c.TLS.AllowedIdentities) != 1 {
				t.Errorf("gateway = %+v", c)
			}
		}},
		{"several manifests, metrics", []confEdit{confReplace(`manifests = ["/etc/nanokms/treasury.json"]`, "manifests = [\"/etc/a.json\", \"/etc/b.json\"]\nmetrics_listen = \"[::1]:9464\"\nresend_interval = \"5m\"")}, func(t *testing.T, c *Config) {
			if len(c.Manifests) != 2 || c.MetricsListen != "[::1]:9464" || c.ResendInterval != 5*time.Minute {
				t.Errorf("gateway = %+v", c)
			}
		}},
		{"serial", []confEdit{confReplace(confFileBridgeKeys, "kind = \"serial\"\ndevice = \"/dev/ttyAMA0\"\nbaud = 9600\n")}, func(t *testing.T, c *Config) {
			if c.Bridge.Kind != "serial" || c.Bridge.Baud != 9600 {
				t.Errorf("bridge = %+v", c.Bridge)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(confApply(t, confMinimalGateway, tt.edits)))
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, cfg)
			}
		})
	}
}

// confBridgeErrors are the [bridge] cases, shared by the relay and the
// gateway (whose minimal files have the same [bridge] but for the
// directions).
func confBridgeErrors(in, out string) []struct {
	name     string
	edits    []confEdit
	key, msg string
} {
	inbound, outbound := `inbound = "`+in+`"`, `outbound = "`+out+`"`
	serial := confReplace(`kind = "file"`+"\n"+inbound+"\n"+outbound+"\n", "kind = \"serial\"\ndevice = \"/dev/ttyUSB0\"\n")
	return []struct {
		name     string
		edits    []confEdit
		key, msg string
	}{
		{"no bridge", []confEdit{confReplace("[bridge]\nkind = \"file\"\n"+inbound+"\n"+outbound+"\n", "")}, "bridge.kind", `required: "file" or "serial"`},
		{"kind other", []confEdit{confReplace(`kind = "file"`, `kind = "usb"`)}, "bridge.kind", `must be "file" or "serial", not "usb"`},
		{"kind not a string", []confEdit{confReplace(`kind = "file"`, `kind = 1`)}, "bridge.kind", "must be a string, not an integer"},
		{"inbound missing", []confEdit{confReplace(inbound, "")}, "bridge.inbound", "required"},
		{"inbound relative", []confEdit{confReplace(inbound, `inbound = "to-cold"`)}, "bridge.inbound", "absolute path"},
		{"outbound missing", []confEdit{confReplace(outbound, "")}, "bridge.outbound", "required"},
		{"outbound empty", []confEdit{confReplace(outbound, `outbound = ""`)}, "bridge.outbound", "must not be empty"},
		{"outbound same", []confEdit{confReplace(outbound, `outbound = "`+in+`/"`)}, "bridge.outbound", "must differ from bridge.inbound"},
		{"outbound inside", []confEdit{confReplace(outbound, `outbound = "`+in+`/done"`)}, "bridge.outbound", "must not be inside bridge.inbound"},
		{"outbound around", []confEdit{confReplace(outbound, `outbound = "/media"`)}, "bridge.outbound", "must not contain bridge.inbound"},
		{"root relative", []confEdit{confAfter(outbound, `root = "media"`)}, "bridge.root", "absolute path"},
		{"root beside the directories", []confEdit{confAfter(outbound, `root = "/mnt"`)}, "bridge.root", "must contain bridge.inbound"},
		{"root the inbound directory", []confEdit{confAfter(outbound, `root = "`+in+`"`)}, "bridge.root", "must contain bridge.inbound"},
		{"root with serial", []confEdit{serial, confAfter(`device = "/dev/ttyUSB0"`, `root = "/media"`)}, "bridge.root", `only allowed when bridge.kind = "file"`},
		{"device with file", []confEdit{confAfter(outbound, `device = "/dev/ttyUSB0"`)}, "bridge.device", `only allowed when bridge.kind = "serial"`},
		{"baud with file", []confEdit{confAfter(outbound, `baud = 9600`)}, "bridge.baud", `only allowed when bridge.kind = "serial"`},
		{"pace with file", []confEdit{confAfter(outbound, `pace = false`)}, "bridge.pace", `only allowed when bridge.kind = "serial"`},
		{"device missing", []confEdit{serial, confReplace(`device = "/dev/ttyUSB0"`, "")}, "bridge.device", "required"},
		{"device relative", []confEdit{serial, confReplace(`device = "/dev/ttyUSB0"`, `device = "ttyUSB0"`)}, "bridge.device", "absolute path"},
		{"baud odd", []confEdit{serial, confAfter(`device = "/dev/ttyUSB0"`, `baud = 115201`)}, "bridge.baud", "must be a standard rate from 9600 to 4000000"},
		{"baud slow", []confEdit{serial, confAfter(`device = "/dev/ttyUSB0"`, `baud = 4800`)}, "bridge.baud", "not 4800"},
		{"baud string", []confEdit{serial, confAfter(`device = "/dev/ttyUSB0"`, `baud = "9600"`)}, "bridge.baud", "must be an integer, not a string"},
		{"pace string", []confEdit{serial, confAfter(`device = "/dev/ttyUSB0"`, `pace = "yes"`)}, "bridge.pace", "must be true or false"},
		{"inbound with serial", []confEdit{serial, confAfter(`device = "/dev/ttyUSB0"`, inbound)}, "bridge.inbound", `only allowed when bridge.kind = "file"`},
		{"poll_interval with serial", []confEdit{serial, confAfter(`device = "/dev/ttyUSB0"`, `poll_interval = "1s"`)}, "bridge.poll_interval", `only allowed when bridge.kind = "file"`},
		{"max_age negative", []confEdit{confAfter(outbound, `max_age = "-1h"`)}, "bridge.max_age", "must not be negative"},
		{"max_age no unit", []confEdit{confAfter(outbound, `max_age = "24"`)}, "bridge.max_age", "must be a duration"},
		{"max_future_skew zero", []confEdit{confAfter(outbound, `max_future_skew = "0s"`)}, "bridge.max_future_skew", "must be positive"},
		{"poll_interval zero", []confEdit{confAfter(outbound, `poll_interval = "0s"`)}, "bridge.poll_interval", "must be positive"},
		{"poll_interval integer", []confEdit{confAfter(outbound, `poll_interval = 200`)}, "bridge.poll_interval", "must be a string, not an integer"},
	}
}

func TestRelayConfigErrors(t *testing.T) {
	const signer = `signer = "unix:///run/nanokms/signer.sock"`
	tcp := []confEdit{confReplace(signer, `signer = "tcp://10.0.7.2:7070"`), confReplace("\n[bridge]", confRelayTLS+"\n[bridge]")}
	tls := func(e confEdit) []confEdit { return append(append([]confEdit{}, tcp...), e) }
	tests := []struct {
		name     string
		edits    []confEdit
		key, msg string
	}{
		{"no relay section", []confEdit{confReplace("[relay]\n"+signer+"\n", "")}, "relay.signer", "required"},
		{"signer empty", []confEdit{confReplace(signer, `signer = ""`)}, "relay.signer", "must not be empty"},
		{"signer scheme", []confEdit{confReplace(signer, `signer = "grpc://signer:7070"`)}, "relay.signer", "must be unix:///absolute/path or tcp://host:port"},
		{"signer two slashes", []confEdit{confReplace(signer, `signer = "unix://run/signer.sock"`)}, "relay.signer", "three slashes"},
		{"signer no host", []confEdit{confReplace(signer, `signer = "tcp://:7070"`)}, "relay.signer", `"tcp://:7070" has no host`},
		{"signer port", []confEdit{confReplace(signer, `signer = "tcp://signer:0"`)}, "relay.signer", "port"},
		{"signer not a string", []confEdit{confReplace(signer, `signer = ["unix:///x"]`)}, "relay.signer", "must be a string, not an array"},
		{"retry_min zero", []confEdit{confAfter(signer, `retry_min = "0s"`)}, "relay.retry_min", "must be positive"},
		{"retry_max bad", []confEdit{confAfter(signer, `retry_max = "10"`)}, "relay.retry_max", "must be a duration"},
		{"retry_max below retry_min", []confEdit{confAfter(signer, "retry_min = \"1s\"\nretry_max = \"500ms\"")}, "relay.retry_max", "500ms is less than relay.retry_min (1s)"},
		{"retry_max below the default retry_min", []confEdit{confAfter(signer, `retry_max = "100ms"`)}, "relay.retry_max", "is less than relay.retry_min (200ms)"},
		{"heartbeat negative", []confEdit{confAfter(signer, `heartbeat = "-1s"`)}, "relay.heartbeat", "must not be negative"},
		{"heartbeat integer", []confEdit{confAfter(signer, `heartbeat = 0`)}, "relay.heartbeat", "must be a string, not an integer"},
		{"metrics relative", []confEdit{confAfter(signer, `metrics = "relay.prom"`)}, "relay.metrics", "absolute path"},
		{"metrics suffix", []confEdit{confAfter(signer, `metrics = "/var/lib/node_exporter/relay.txt"`)}, "relay.metrics", "must end in .prom"},
		{"log_level", []confEdit{confAfter(signer, `log_level = "trace"`)}, "relay.log_level", `must be "debug", "info", "warn" or "error", not "trace"`},
		{"tcp without tls", []confEdit{confReplace(signer, `signer = "tcp://10.0.7.2:7070"`)}, "relay.tls", "required when relay.signer is tcp://"},
		{"unix with tls", []confEdit{confReplace("\n[bridge]", confRelayTLS+"\n[bridge]")}, "relay.tls", "only allowed when relay.signer is tcp://"},
		{"tls a string", []confEdit{confAfter(signer, `tls = "on"`)}, "relay.tls", "must be a table ([relay.tls]), not a string"},
		{"tls empty", []confEdit{confReplace(signer, `signer = "tcp://10.0.7.2:7070"`), confReplace("\n[bridge]", "\n[relay.tls]\n\n[bridge]")}, "relay.tls.cert", "required"},
		{"tls cert relative", tls(confReplace(`cert = "/etc/nanokms/relay.crt"`, `cert = "relay.crt"`)), "relay.tls.cert", "absolute path"},
		{"tls key missing", tls(confReplace(`key = "/etc/nanokms/relay.key"`, "")), "relay.tls.key", "required (or relay.tls.key_label"},
		{"tls key and key_label", tls(confAfter(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls"`)), "relay.tls.key_label", "not allowed together with relay.tls.key"},
		{"tls key_label without token", tls(confReplace(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls"`)), "relay.tls.token", "required with relay.tls.key_label"},
		{"tls key_label bad", append(tls(confReplace(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls "`)), confAfter(`server_name = "signer.cold"`, confRelayTLSToken)), "relay.tls.key_label", "must not start or end with a space"},
		{"tls token with a key file", tls(confAfter(`server_name = "signer.cold"`, confRelayTLSToken)), "relay.tls.token", "only allowed with relay.tls.key_label"},
		{"tls token no module", append(tls(confReplace(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls"`)), confAfter(`server_name = "signer.cold"`, strings.Replace(confRelayTLSToken, "module = \"/usr/lib/softhsm/libsofthsm2.so\"\n", "", 1))), "relay.tls.token.module", "required"},
		{"tls token label too long", append(tls(confReplace(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls"`)), confAfter(`server_name = "signer.cold"`, strings.Replace(confRelayTLSToken, `label = "relay"`, `label = "`+strings.Repeat("r", 33)+`"`, 1))), "relay.tls.token.label", "longer than the 32 bytes"},
		{"tls token no pin", append(tls(confReplace(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls"`)), confAfter(`server_name = "signer.cold"`, strings.Replace(confRelayTLSToken, `pin_file = "/etc/nanokms/relay.pin"`, "", 1))), "relay.tls.token.pin_file", "exactly one PIN source"},
		{"tls token two pins", append(tls(confReplace(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls"`)), confAfter(`server_name = "signer.cold"`, confRelayTLSToken+`pin_env = "RELAY_PIN"`)), "relay.tls.token.pin_env", "exactly one PIN source"},
		{"tls token bad env", append(tls(confReplace(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls"`)), confAfter(`server_name = "signer.cold"`, strings.Replace(confRelayTLSToken, `pin_file = "/etc/nanokms/relay.pin"`, `pin_env = "RELAY-PIN"`, 1))), "relay.tls.token.pin_env", "not an environment variable name"},
		{"tls token unknown key", append(tls(confReplace(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls"`)), confAfter(`server_name = "signer.cold"`, confRelayTLSToken+`slot = 1`)), "relay.tls.token.slot", "unknown key"},
		{"tls ca missing", tls(confReplace(`ca = "/etc/nanokms/signer-ca.crt"`, "")), "relay.tls.ca", "required"},
		{"tls server_name missing", tls(confReplace(`server_name = "signer.cold"`, "")), "relay.tls.server_name", "required"},
		{"tls server_name bad", tls(confReplace(`server_name = "signer.cold"`, `server_name = "signer cold"`)), "relay.tls.server_name", "not an IP address or host name"},
	}
	tests = append(tests, confBridgeErrors("/media/nanokms/to-cold", "/media/nanokms/to-hot")...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := confApply(t, confMinimalRelay, tt.edits)
			cfg, err := relay.ParseConfig([]byte(src))
			if cfg != nil {
				t.Error("ParseRelayConfig returned a config with an error")
			}
			confWantError(t, err, tt.key, tt.msg)
		})
	}
}

func TestGatewayConfigErrors(t *testing.T) {
	const listen = `listen = "unix:///run/nanokms/gateway.sock"`
	const manifests = `manifests = ["/etc/nanokms/treasury.json"]`
	tcp := []confEdit{confReplace(listen, `listen = "tcp://0.0.0.0:7443"`), confReplace("\n[bridge]", confGatewayTLS+"\n[bridge]")}
	tls := func(e confEdit) []confEdit { return append(append([]confEdit{}, tcp...), e) }
	node := func(text string) []confEdit { return []confEdit{confAdd("[node]\n" + text)} }
	const rpc = "rpc = \"http://[::1]:7076\"\n"
	tests := []struct {
		name     string
		edits    []confEdit
		key, msg string
	}{
		{"state missing", []confEdit{confReplace(`state = "/var/lib/nanokms/gateway.db"`, "")}, "gateway.state", "required"},
		{"state relative", []confEdit{confReplace(`state = "/var/lib/nanokms/gateway.db"`, `state = "gateway.db"`)}, "gateway.state", "absolute path"},
		{"listen missing", []confEdit{confReplace(listen, "")}, "gateway.listen", "required"},
		{"listen no host", []confEdit{confReplace(listen, `listen = "tcp://:7443"`)}, "gateway.listen", "write 0.0.0.0 or [::] to listen on every interface"},
		{"listen scheme", []confEdit{confReplace(listen, `listen = "0.0.0.0:7443"`)}, "gateway.listen", "must be unix:///absolute/path or tcp://host:port"},
		{"manifests missing", []confEdit{confReplace(manifests, "")}, "gateway.manifests", "required"},
		{"manifests empty", []confEdit{confReplace(manifests, "manifests = []")}, "gateway.manifests", "at least one"},
		{"manifests a string", []confEdit{confReplace(manifests, `manifests = "/etc/nanokms/treasury.json"`)}, "gateway.manifests", "must be an array of strings"},
		{"manifest relative", []confEdit{confReplace(manifests, `manifests = ["/a.json", "b.json"]`)}, "gateway.manifests[1]", "absolute path"},
		{"manifest twice", []confEdit{confReplace(manifests, `manifests = ["/a.json", "/a.json"]`)}, "gateway.manifests[1]", "listed twice"},
		{"manifest not a string", []confEdit{confReplace(manifests, `manifests = ["/a.json", 2]`)}, "gateway.manifests[1]", "must be a string"},
		{"resend_interval zero", []confEdit{confAfter(manifests, `resend_interval = "0s"`)}, "gateway.resend_interval", "must be positive"},
		{"metrics_listen no port", []confEdit{confAfter(manifests, `metrics_listen = "127.0.0.1"`)}, "gateway.metrics_listen", "must be host:port"},
		{"metrics_listen no host", []confEdit{confAfter(manifests, `metrics_listen = ":9464"`)}, "gateway.metrics_listen", "no host"},
		{"metrics_listen empty", []confEdit{confAfter(manifests, `metrics_listen = ""`)}, "gateway.metrics_listen", "must not be empty"},
		{"log_level", []confEdit{confAfter(manifests, `log_level = "INFO"`)}, "gateway.log_level", `not "INFO"`},
		{"tcp without tls", []confEdit{confReplace(listen, `listen = "tcp://0.0.0.0:7443"`)}, "gateway.tls", "required when gateway.listen is tcp://"},
		{"unix with tls", []confEdit{confReplace("\n[bridge]", confGatewayTLS+"\n[bridge]")}, "gateway.tls", "only allowed when gateway.listen is tcp://"},
		{"tls client_ca missing", tls(confReplace(`client_ca = "/etc/nanokms/clients-ca.crt"`, "")), "gateway.tls.client_ca", "required"},
		{"tls key missing", tls(confReplace(`key = "/etc/nanokms/gateway.key"`, "")), "gateway.tls.key", "required"},
		{"tls key_label", tls(confAfter(`key = "/etc/nanokms/gateway.key"`, `key_label = "gateway-tls"`)), "gateway.tls.key_label", "not supported here: this role has no token"},
		{"tls identities missing", tls(confReplace(`allowed_identities = ["withdrawals.hot"]`, "")), "gateway.tls.allowed_identities", "required"},
		{"tls identities empty", tls(confReplace(`allowed_identities = ["withdrawals.hot"]`, "allowed_identities = []")), "gateway.tls.allowed_identities", "at least one"},
		{"tls identity twice", tls(confReplace(`allowed_identities = ["withdrawals.hot"]`, `allowed_identities = ["a", "a"]`)), "gateway.tls.allowed_identities[1]", "listed twice"},
		{"tls identity control", tls(confReplace(`allowed_identities = ["withdrawals.hot"]`, `allowed_identities = ["a\nb"]`)), "gateway.tls.allowed_identities[0]", "printable"},

		{"node a string", []confEdit{confPrepend(`node = "http://[::1]:7076"`)}, "node", "must be a table ([node]), not a string"},
		{"rpc scheme", node(`rpc = "ftp://node:7076"`), "node.rpc", "must be http://host:port, https://host:port, ipc+tcp://host:port or ipc+unix:///absolute/path"},
		{"rpc no host", node(`rpc = "http://:7076"`), "node.rpc", "has no host"},
		{"rpc port", node(`rpc = "http://node:70766"`), "node.rpc", `port "70766" is not a number from 1 to 65535`},
		{"rpc credentials", node(`rpc = "http://user:pw@node:7076"`), "node.rpc", "user name or password"},
		{"rpc ipc scheme", node(`rpc = "ipc+http://node:7077"`), "node.rpc", "must be http://host:port"},
		{"rpc ipc+unix relative", node(`rpc = "ipc+unix://node.ipc"`), "node.rpc", "three slashes"},
		{"rpc ipc+tcp port", node(`rpc = "ipc+tcp://node"`), "node.rpc", "no host:port"},
		{"rpc empty", node(`rpc = ""`), "node.rpc", "must not be empty"},
		{"websocket scheme", node(rpc + `websocket = "http://[::1]:7078"`), "node.websocket", `must be a URL starting with ws:// or wss://, not "http://[::1]:7078"`},
		{"websocket without rpc", node(`websocket = "ws://[::1]:7078"`), "node.websocket", "only allowed with node.rpc"},
		{"timeout bad", node(`timeout = "soon"`), "node.timeout", "must be a duration"},
		{"work other", node(`work = "gpu"`), "node.work", `must be "cpu", "node" or "server", not "gpu"`},
		{"work node without rpc", node(`work = "node"`), "node.work", `"node" requires node.rpc`},
		{"work_servers missing", node(`work = "server"`), "node.work_servers", `required when node.work = "server"`},
		{"work_servers empty", node("work = \"server\"\nwork_servers = []"), "node.work_servers", `required when node.work = "server"`},
		{"work_servers with cpu", node(`work_servers = ["http://[::1]:7000"]`), "node.work_servers", `only allowed when node.work = "server"`},
		{"work_servers with node", node(rpc + "work = \"node\"\nwork_servers = []"), "node.work_servers", `only allowed when node.work = "server"`},
		{"work_server bad", node("work = \"server\"\nwork_servers = [\"http://[::1]:7000\", \"tcp://w:7000\"]"), "node.work_servers[1]", "must be a URL starting with http:// or https://"},
		{"work_server twice", node("work = \"server\"\nwork_servers = [\"http://w:7000\", \"http://w:7000\"]"), "node.work_servers[1]", "listed twice"},
		{"work_servers a string", node("work = \"server\"\nwork_servers = \"http://w:7000\""), "node.work_servers", "must be an array of strings"},
		{"auto_receive string", node(`auto_receive = "true"`), "node.auto_receive", "must be true or false"},
		{"auto_receive without rpc", node("auto_receive = true\nrepresentative = \"" + confRep + "\""), "node.auto_receive", "requires node.rpc"},
		{"representative missing", node(rpc + "auto_receive = true"), "node.representative", "required when node.auto_receive = true"},
		{"representative bad", node(rpc + "auto_receive = true\nrepresentative = \"" + confRep[:len(confRep)-1] + "1\""), "node.representative", "is not a nano_ address"},
		{"representative not a string", node(rpc + "auto_receive = true\nrepresentative = 1"), "node.representative", "must be a string"},
	}
	tests = append(tests, confBridgeErrors("/media/nanokms/to-hot", "/media/nanokms/to-cold")...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := confApply(t, confMinimalGateway, tt.edits)
			cfg, err := ParseConfig([]byte(src))
			if cfg != nil {
				t.Error("ParseConfig returned a config with an error")
			}
			confWantError(t, err, tt.key, tt.msg)
		})
	}
}

func TestConfigUnknownKeys(t *testing.T) {
	tests := []struct {
		name, base string
		edits      []confEdit
		key, msg   string
	}{
		{"relay top level", confMinimalRelay, []confEdit{confAdd("[gateway]\nstate = \"/x\"")}, "gateway", "unknown key"},
		{"relay section", confMinimalRelay, []confEdit{confAfter("[relay]", `retry = "1s"`)}, "relay.retry", "unknown key"},
		{"relay case", confMinimalRelay, []confEdit{confAfter("[relay]", `Log_Level = "info"`)}, "relay.Log_Level", `did you mean "log_level"`},
		{"relay.tls", confMinimalRelay, []confEdit{confReplace(`"unix:///run/nanokms/signer.sock"`, `"tcp://s:1"`), confReplace("\n[bridge]", confRelayTLS+"client_ca = \"/x\"\n\n[bridge]")}, "relay.tls.client_ca", "unknown key"},
		{"relay.tls dotted", confMinimalRelay, []confEdit{confAfter("[relay]", `tls.min_version = "1.3"`)}, "relay.tls.min_version", "unknown key"},
		{"bridge", confMinimalRelay, []confEdit{confAdd(`dir = "/x"`)}, "bridge.dir", "unknown key"},
		{"bridge quoted", confMinimalRelay, []confEdit{confAdd(`"max age" = "1h"`)}, `bridge."max age"`, "unknown key"},
		{"bridge case", confMinimalRelay, []confEdit{confAdd(`Kind = "serial"`)}, "bridge.Kind", `did you mean "kind"`},
		{"relay has no node", confMinimalRelay, []confEdit{confAdd("[node]\nrpc = \"http://[::1]:7076\"")}, "node", "unknown key"},
		{"gateway section", confMinimalGateway, []confEdit{confAfter("[gateway]", `metrics = "/x.prom"`)}, "gateway.metrics", "unknown key"},
		{"gateway.tls", confMinimalGateway, []confEdit{confReplace("\n[bridge]", confGatewayTLS+"ca = \"/x\"\n\n[bridge]")}, "gateway.tls.ca", "unknown key"},
		{"gateway.tls case", confMinimalGateway, []confEdit{confReplace("\n[bridge]", "\n[gateway.TLS]\ncert = \"/x\"\n\n[bridge]")}, "gateway.TLS", `did you mean "tls"`},
		{"node", confMinimalGateway, []confEdit{confAdd("[node]\nrpc = \"http://[::1]:7076\"\nworkers = 4")}, "node.workers", "unknown key"},
		{"node inline", confMinimalGateway, []confEdit{confPrepend(`node = {rpc = "http://[::1]:7076", ws = "ws://[::1]:7078"}`)}, "node.ws", "unknown key"},
		{"node nested table", confMinimalGateway, []confEdit{confAdd("[node.work]\nkind = \"cpu\"")}, "node.work", "must be a string, not a table"},
		{"node array of tables", confMinimalGateway, []confEdit{confAdd("[[node.servers]]\nurl = \"http://w\"")}, "node.servers", "unknown key"},
		{"gateway has no relay", confMinimalGateway, []confEdit{confAdd("[relay]\nsigner = \"unix:///x\"")}, "relay", "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := confApply(t, tt.base, tt.edits)
			var err error
			if tt.base == confMinimalRelay {
				_, err = relay.ParseConfig([]byte(src))
			} else {
				_, err = ParseConfig([]byte(src))
			}
			confWantError(t, err, tt.key, tt.msg)
		})
	}
}

func TestConfigShapeAndSyntaxErrors(t *testing.T) {
	for _, tt := range []struct{ src, key, msg string }{
		{`relay = "unix:///x"`, "relay", "must be a table ([relay]), not a string"},
		{"[[bridge]]\nkind = \"file\"", "bridge", "must be a table ([bridge]), not an array"},
		{"[relay\nsigner = 1", "", "TOML syntax error at line 2"},
		{"[relay]\nsigner = 1\nsigner = 2", "", "TOML syntax error at line 3"},
	} {
		_, err := relay.ParseConfig([]byte(tt.src))
		confWantError(t, err, tt.key, tt.msg)
		if errs := confErrors(t, err); len(errs) != 1 {
			t.Errorf("%q: want one error, got:\n%v", tt.src, err)
		}
	}
	_, err := ParseConfig([]byte("[gateway]\n[[gateway.tls]]"))
	confWantError(t, err, "gateway.tls", "must be a table ([gateway.tls]), not an array")
}

// TestConfigAllErrorsReported checks that problems in every section are
// all returned, each naming its key, in a stable order.
func TestConfigAllErrorsReported(t *testing.T) {
	src := confApply(t, confMinimalGateway, []confEdit{
		confReplace(`state = "/var/lib/nanokms/gateway.db"`, `state = "gateway.db"`+"\nbogus = 1"),
		confReplace(`listen = "unix:///run/nanokms/gateway.sock"`, `listen = "tcp://0.0.0.0:7443"`),
		confReplace(`outbound = "/media/nanokms/to-cold"`, `outbound = "/media/nanokms/to-hot"`),
		confAdd("[node]\nwork = \"server\"\nauto_receive = true"),
	})
	_, err := ParseConfig([]byte(src))
	var keys []string
	for _, e := range confErrors(t, err) {
		keys = append(keys, e.Key)
	}
	want := []string{"gateway.bogus", "gateway.state", "gateway.tls", "bridge.outbound", "node.work_servers", "node.auto_receive", "node.representative"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("keys = %q, want %q; errors:\n%v", keys, want, err)
	}
	_, err2 := ParseConfig([]byte(src))
	if err.Error() != err2.Error() {
		t.Errorf("errors differ between runs:\n%v\n--\n%v", err, err2)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := relay.LoadConfig(filepath.Join(dir, "absent.toml")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "absent.toml") {
		t.Errorf("LoadRelayConfig = %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "absent.toml")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "absent.toml") {
		t.Errorf("LoadConfig = %v", err)
	}
	path := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(path, []byte("[relay]\nsigner = \"x\"\n[bridge]\nkind = \"tape\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, load := range []func(string) error{
		func(p string) error { _, err := relay.LoadConfig(p); return err },
		func(p string) error { _, err := LoadConfig(p); return err },
	} {
		err := load(path)
		errs := confErrors(t, err)
		if len(errs) < 2 {
			t.Fatalf("want several errors, got %v", err)
		}
		for _, e := range errs {
			if e.File != path || !strings.HasPrefix(e.Error(), path+":") {
				t.Errorf("error %q does not name %s", e.Error(), path)
			}
		}
		// Each key in the file is placed: its line, and its value's column.
		for _, e := range errs {
			want := map[string]string{"relay.signer": ":2:11: ", "bridge.kind": ":4:9: ", "relay": ":1:1: "}[e.Key]
			if !strings.HasPrefix(e.Error(), path+want) {
				t.Errorf("error %q is not placed at %s", e.Error(), want)
			}
		}
	}
}

// FuzzParseConfigFiles checks that the parsers never panic and return
// either a config or only *conffile.Error values naming their keys.
func FuzzParseConfigFiles(f *testing.F) {
	for _, s := range []string{confMinimalRelay, confMinimalGateway, confSerialBridge,
		"[node]\nwork = \"server\"\nwork_servers = [1, \"http://w\"]\nrpc = \"ipc+unix://x\"",
		"[relay]\nsigner = \"tcp://h:1\"\n[relay.tls]\nserver_name = \"\"\n[bridge]\nkind = \"file\"\ninbound = \"/a\"\noutbound = \"/a/b\"",
		"[relay]\nsigner = \"tcp://h:1\"\n[relay.tls]\ncert = \"/c\"\nkey_label = \"k\"\nca = \"/a\"\nserver_name = \"h\"\n[relay.tls.token]\nmodule = \"/m.so\"\nlabel = \"t\"\npin_env = \"P\"\n[bridge]\nkind = \"file\"\ninbound = \"/a\"\noutbound = \"/b\"",
		"[relay]\nsigner = \"tcp://h:1\"\n[relay.tls]\nkey = \"/k\"\nkey_label = 5\n[relay.tls.token]\nlabel = [1]\npin_file = \"rel\"\npin_env = \"\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if cfg, err := relay.ParseConfig(data); err != nil {
			if cfg != nil {
				t.Fatal("ParseRelayConfig returned a config and an error")
			}
			confErrors(t, err)
		} else if cfg == nil || cfg.Signer == "" || cfg.Bridge.Kind == "" {
			t.Fatalf("relay config %+v", cfg)
		}
		if cfg, err := ParseConfig(data); err != nil {
			if cfg != nil {
				t.Fatal("ParseConfig returned a config and an error")
			}
			confErrors(t, err)
		} else if cfg == nil || cfg.Listen == "" || len(cfg.Manifests) == 0 || cfg.Node.Work == "" {
			t.Fatalf("gateway config %+v", cfg)
		}
	})
}
