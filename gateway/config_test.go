package gateway

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/internal/conffile/conftest"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/node"
)

const confRep = "nano_375zwei3suaam4jtaxioi7cy919pcaz9k9b6a6xxw85y676gga1dxqiqcdo5"

// The smallest valid files; the tests edit them case by case.
const (
	confMinimalGateway = `[gateway]
state = "/var/lib/nanokms/gateway.db"
listen = "unix:///run/nanokms/gateway.sock"
manifests = ["/etc/nanokms/treasury.json"]

[bridge]
kind = "file"
inbound = "/media/nanokms/to-hot"
outbound = "/media/nanokms/to-cold"
`
	confGatewayTLS = `
[gateway.tls]
cert = "/etc/nanokms/gateway.crt"
key = "/etc/nanokms/gateway.key"
client_ca = "/etc/nanokms/clients-ca.crt"
allowed_identities = ["withdrawals.hot"]
`
	confFileBridgeKeys = "kind = \"file\"\ninbound = \"/media/nanokms/to-hot\"\noutbound = \"/media/nanokms/to-cold\"\n"
)

// confEdit is a change to a configuration text.
type confEdit = conftest.Edit

var (
	confReplace   = conftest.Replace
	confAfter     = conftest.After
	confAdd       = conftest.Add
	confPrepend   = conftest.Prepend
	confErrors    = conftest.Errors
	confWantError = conftest.WantError
)

func confApply(t *testing.T, src string, edits []confEdit) string {
	t.Helper()
	return conftest.Apply(t, src, edits...)
}

func mustConfAccount(t *testing.T, s string) nano.PublicKey {
	t.Helper()
	k, err := nano.ParseAccount(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGatewayConfigExample(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "gateway.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Settings: Settings{
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
		},
		Bridge: bridge.Config{
			Kind:    "file",
			Inbound: "/media/nanokms/to-hot", Outbound: "/media/nanokms/to-cold",
			MaxAge: 24 * time.Hour, MaxFutureSkew: 5 * time.Minute, PollInterval: 200 * time.Millisecond,
		},
		Node: NodeConfig{
			RPC: "http://[::1]:7076", WebSocket: "ws://[::1]:7078", Timeout: 10 * time.Second,
			Work: "server", WorkServers: []string{"http://[::1]:7000"},
			AutoReceive: true, Representative: mustConfAccount(t, confRep),
			Callback: &CallbackConfig{Listen: "[::1]:7090", Path: "/callback"},
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

// TestConfigExampleInDocs checks that docs/CONFIG.md shows
// testdata/gateway.toml verbatim in a ```toml block of its "# Gateway"
// section.
func TestConfigExampleInDocs(t *testing.T) {
	conftest.InDocs(t, filepath.Join("..", "docs", "CONFIG.md"), "Gateway", conftest.MustReadFile(t, filepath.Join("testdata", "gateway.toml")))
}

// TestPostgresExample: testdata/gateway-postgres.toml is valid, keeps the
// state in PostgreSQL, and docs/CONFIG.md shows it verbatim.
func TestPostgresExample(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "gateway-postgres.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.State != "" || cfg.Postgres == nil || *cfg.Postgres != (conffile.Postgres{DSNFile: "/etc/nanokms/gateway.dsn", OpTimeout: 10 * time.Second, MaxConns: 8}) {
		t.Errorf("state %q, postgres %+v", cfg.State, cfg.Postgres)
	}
	conftest.InDocs(t, filepath.Join("..", "docs", "CONFIG.md"), "Gateway", conftest.MustReadFile(t, filepath.Join("testdata", "gateway-postgres.toml")))
}

func TestGatewayConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(confMinimalGateway))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Settings: Settings{
			State:          "/var/lib/nanokms/gateway.db",
			Listen:         "unix:///run/nanokms/gateway.sock",
			Manifests:      []string{"/etc/nanokms/treasury.json"},
			ResendInterval: 30 * time.Second,
			LogLevel:       "info",
		},
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
		{"node over ipc+unix", []confEdit{confAdd("[node]\nrpc = \"ipc+unix:///run/nano/node.ipc\"")}, func(t *testing.T, c *Config) {
			if c.Node.IPCEncoding != 1 {
				t.Errorf("node.ipc_encoding = %d, want the default 1", c.Node.IPCEncoding)
			}
		}},
		{"ipc encoding 2", []confEdit{confAdd("[node]\nrpc = \"ipc+unix:///run/nano/node.ipc\"\nipc_encoding = 2")}, func(t *testing.T, c *Config) {
			if c.Node.IPCEncoding != 2 {
				t.Errorf("node.ipc_encoding = %d", c.Node.IPCEncoding)
			}
		}},
		{"ipc encoding 1 over tcp", []confEdit{confAdd("[node]\nrpc = \"ipc+tcp://[::1]:7077\"\nipc_encoding = 1")}, func(t *testing.T, c *Config) {
			if c.Node.IPCEncoding != 1 {
				t.Errorf("node.ipc_encoding = %d", c.Node.IPCEncoding)
			}
		}},
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
		{"callback", []confEdit{confAdd("[node]\nrpc = \"http://[::1]:7076\"\n\n[node.callback]\nlisten = \"127.0.0.1:7090\"")}, func(t *testing.T, c *Config) {
			cb := c.Node.Callback
			if cb == nil || cb.Listen != "127.0.0.1:7090" || cb.Path != "/" || cb.AllowedSources != nil {
				t.Fatalf("node.callback = %+v", cb)
			}
			if got := cb.Sources(); !reflect.DeepEqual(got, node.LoopbackSources) {
				t.Errorf("sources %v, want loopback only", got)
			}
		}},
		{"callback with path and sources", []confEdit{confAdd("[node]\nrpc = \"ipc+unix:///run/nano/node.ipc\"\n\n[node.callback]\nlisten = \"[::]:7090\"\npath = \"/nano/callback\"\nallowed_sources = [\"10.0.0.5\", \"192.168.1.0/24\", \"::1\", \"fd00::/8\"]")}, func(t *testing.T, c *Config) {
			cb := c.Node.Callback
			if cb == nil || cb.Path != "/nano/callback" {
				t.Fatalf("node.callback = %+v", cb)
			}
			want := []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32"), netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("fd00::/8")}
			if got := cb.Sources(); !reflect.DeepEqual(got, want) {
				t.Errorf("sources %v, want %v", got, want)
			}
		}},
		{"no callback", []confEdit{confAdd("[node]\nrpc = \"http://[::1]:7076\"")}, func(t *testing.T, c *Config) {
			if c.Node.Callback != nil {
				t.Errorf("node.callback = %+v", c.Node.Callback)
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
		{"postgres from a file", []confEdit{confReplace(`state = "/var/lib/nanokms/gateway.db"`, ""), confReplace("\n[bridge]", "\n[gateway.postgres]\ndsn_file = \"/etc/nanokms/gateways.dsn\"\n\n[bridge]")}, func(t *testing.T, c *Config) {
			if c.State != "" || c.Postgres == nil || *c.Postgres != (conffile.Postgres{DSNFile: "/etc/nanokms/gateways.dsn", OpTimeout: conffile.DefaultPGOpTimeout, MaxConns: conffile.DefaultPGMaxConns}) {
				t.Errorf("gateway = %+v, postgres %+v", c.Settings, c.Postgres)
			}
		}},
		{"leader", pgEdits("dsn_env = \"DSN\"\n\n[gateway.leader]\nmedium = \"bridge-1\"\nholder = \"gw-a\"\ncheck_timeout = \"3s\""), func(t *testing.T, c *Config) {
			want := LeaderSettings{Medium: "bridge-1", Holder: "gw-a", CheckInterval: time.Second, CheckTimeout: 3 * time.Second}
			if c.Leader == nil || *c.Leader != want {
				t.Errorf("leader %+v, want %+v", c.Leader, want)
			}
		}},
		{"postgres without leader", pgEdits("dsn_env = \"DSN\""), func(t *testing.T, c *Config) {
			if c.Leader != nil {
				t.Errorf("leader %+v, want none (the database's single gateway)", c.Leader)
			}
		}},
		{"postgres from the environment", []confEdit{confReplace(`state = "/var/lib/nanokms/gateway.db"`, ""), confReplace("\n[bridge]", "\n[gateway.postgres]\ndsn_env = \"NANOKMS_GATEWAYS_DSN\"\nop_timeout = \"2s\"\nmax_conns = 32\n\n[bridge]")}, func(t *testing.T, c *Config) {
			if c.Postgres == nil || *c.Postgres != (conffile.Postgres{DSNEnv: "NANOKMS_GATEWAYS_DSN", OpTimeout: 2 * time.Second, MaxConns: 32}) {
				t.Errorf("postgres %+v", c.Postgres)
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

// pgEdits replaces gateway.state with a [gateway.postgres] section of text.
func pgEdits(text string) []confEdit {
	return []confEdit{confReplace(`state = "/var/lib/nanokms/gateway.db"`, ""), confReplace("\n[bridge]", "\n[gateway.postgres]\n"+text+"\n\n[bridge]")}
}

// leaderEdits replaces gateway.state with a [gateway.postgres] section
// and adds a [gateway.leader] section of text.
func leaderEdits(text string) []confEdit {
	return pgEdits("dsn_env = \"DSN\"\n\n[gateway.leader]\n" + text)
}

func TestGatewayConfigErrors(t *testing.T) {
	const listen = `listen = "unix:///run/nanokms/gateway.sock"`
	const manifests = `manifests = ["/etc/nanokms/treasury.json"]`
	tcp := []confEdit{confReplace(listen, `listen = "tcp://0.0.0.0:7443"`), confReplace("\n[bridge]", confGatewayTLS+"\n[bridge]")}
	tls := func(e confEdit) []confEdit { return append(append([]confEdit{}, tcp...), e) }
	node := func(text string) []confEdit { return []confEdit{confAdd("[node]\n" + text)} }
	const rpc = "rpc = \"http://[::1]:7076\"\n"
	callback := func(text string) []confEdit {
		return []confEdit{confAdd("[node]\n" + rpc + "\n[node.callback]\n" + text)}
	}
	tests := []struct {
		name     string
		edits    []confEdit
		key, msg string
	}{
		{"state missing", []confEdit{confReplace(`state = "/var/lib/nanokms/gateway.db"`, "")}, "gateway.state", "required (or [gateway.postgres]"},
		{"state empty", []confEdit{confReplace(`state = "/var/lib/nanokms/gateway.db"`, `state = ""`)}, "gateway.state", "must not be empty"},
		{"state and postgres", []confEdit{confReplace("\n[bridge]", "\n[gateway.postgres]\ndsn_env = \"DSN\"\n\n[bridge]")}, "gateway.postgres", "not allowed together with gateway.state"},
		{"postgres without a dsn source", pgEdits(""), "gateway.postgres.dsn_file", "required (or gateway.postgres.dsn_env)"},
		{"postgres with both dsn sources", pgEdits("dsn_file = \"/etc/nanokms/gw.dsn\"\ndsn_env = \"DSN\""), "gateway.postgres.dsn_env", "not allowed together with gateway.postgres.dsn_file"},
		{"postgres dsn_file relative", pgEdits("dsn_file = \"gw.dsn\""), "gateway.postgres.dsn_file", "absolute path"},
		{"postgres dsn_env not a name", pgEdits("dsn_env = \"host=db password=x\""), "gateway.postgres.dsn_env", "is not an environment variable name"},
		{"postgres max_conns zero", pgEdits("dsn_env = \"DSN\"\nmax_conns = 0"), "gateway.postgres.max_conns", "must be from 1 to 256"},
		{"postgres op_timeout zero", pgEdits("dsn_env = \"DSN\"\nop_timeout = \"0s\""), "gateway.postgres.op_timeout", "must be positive"},
		{"postgres unknown key", pgEdits("dsn_env = \"DSN\"\npassword = \"x\""), "gateway.postgres.password", "unknown key"},
		{"leader without postgres", []confEdit{confReplace("\n[bridge]", "\n[gateway.leader]\nmedium = \"bridge-1\"\n\n[bridge]")}, "gateway.leader", "only allowed with [gateway.postgres]"},
		{"leader without medium", leaderEdits(""), "gateway.leader.medium", "required"},
		{"leader medium empty", leaderEdits(`medium = ""`), "gateway.leader.medium", "must not be empty"},
		{"leader check_interval zero", leaderEdits("medium = \"b\"\ncheck_interval = \"0s\""), "gateway.leader.check_interval", "must be positive"},
		{"leader check_timeout not a duration", leaderEdits("medium = \"b\"\ncheck_timeout = \"5\""), "gateway.leader.check_timeout", "must be a duration"},
		{"leader unknown key", leaderEdits("medium = \"b\"\nepoch = 3"), "gateway.leader.epoch", "unknown key"},
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
		{"ipc_encoding 3", node("rpc = \"ipc+unix:///run/nano/node.ipc\"\nipc_encoding = 3"), "node.ipc_encoding", "must be 1 (legacy RPC) or 2 (legacy RPC allowing unsafe actions), not 3"},
		{"ipc_encoding 0", node("rpc = \"ipc+tcp://[::1]:7077\"\nipc_encoding = 0"), "node.ipc_encoding", "must be 1 (legacy RPC) or 2"},
		{"ipc_encoding a string", node("rpc = \"ipc+tcp://[::1]:7077\"\nipc_encoding = \"2\""), "node.ipc_encoding", "must be an integer"},
		{"ipc_encoding over http", node(rpc + "ipc_encoding = 2"), "node.ipc_encoding", "only allowed when node.rpc is ipc+tcp:// or ipc+unix://"},
		{"ipc_encoding without rpc", node("ipc_encoding = 1"), "node.ipc_encoding", "only allowed when node.rpc is ipc+tcp:// or ipc+unix://"},
		{"work other", node(`work = "gpu"`), "node.work", `must be "cpu", "node" or "server", not "gpu"`},
		{"work node without rpc", node(`work = "node"`), "node.work", `"node" requires node.rpc`},
		{"work_servers missing", node(`work = "server"`), "node.work_servers", `required when node.work = "server"`},
		{"work_servers empty", node("work = \"server\"\nwork_servers = []"), "node.work_servers", `required when node.work = "server"`},
		{"work_servers with cpu", node(`work_servers = ["http://[::1]:7000"]`), "node.work_servers", `only allowed when node.work = "server"`},
		{"work_servers with node", node(rpc + "work = \"node\"\nwork_servers = []"), "node.work_servers", `only allowed when node.work = "server"`},
		{"work_server bad", node("work = \"server\"\nwork_servers = [\"http://[::1]:7000\", \"tcp://w:7000\"]"), "node.work_servers[1]", "must be a URL starting with http:// or https://"},
		{"work_server twice", node("work = \"server\"\nwork_servers = [\"http://w:7000\", \"http://w:7000\"]"), "node.work_servers[1]", "listed twice"},
		{"work_servers a string", node("work = \"server\"\nwork_servers = \"http://w:7000\""), "node.work_servers", "must be an array of strings"},
		{"callback without rpc", []confEdit{confAdd("[node]\n[node.callback]\nlisten = \"127.0.0.1:7090\"")}, "node.callback", "only allowed with node.rpc"},
		{"callback a string", node(rpc + `callback = "http://127.0.0.1:7090/"`), "node.callback", "must be a table ([node.callback]), not a string"},
		{"callback listen missing", callback(`path = "/"`), "node.callback.listen", "required"},
		{"callback listen no host", callback(`listen = ":7090"`), "node.callback.listen", "no host"},
		{"callback listen no port", callback(`listen = "127.0.0.1"`), "node.callback.listen", "must be host:port"},
		{"callback listen a URL", callback(`listen = "http://127.0.0.1:7090/"`), "node.callback.listen", "must be host:port"},
		{"callback path relative", callback("listen = \"127.0.0.1:7090\"\npath = \"callback\""), "node.callback.path", `must start with "/"`},
		{"callback path query", callback("listen = \"127.0.0.1:7090\"\npath = \"/cb?x=1\""), "node.callback.path", "must be a path alone"},
		{"callback path empty", callback("listen = \"127.0.0.1:7090\"\npath = \"\""), "node.callback.path", "must not be empty"},
		{"callback sources empty", callback("listen = \"127.0.0.1:7090\"\nallowed_sources = []"), "node.callback.allowed_sources", "list at least one"},
		{"callback source bad", callback("listen = \"127.0.0.1:7090\"\nallowed_sources = [\"::1\", \"10.0.0.0/33\"]"), "node.callback.allowed_sources[1]", "is not an IP address or a CIDR prefix"},
		{"callback source a name", callback("listen = \"127.0.0.1:7090\"\nallowed_sources = [\"localhost\"]"), "node.callback.allowed_sources[0]", "is not an IP address or a CIDR prefix"},
		{"callback source host bits", callback("listen = \"127.0.0.1:7090\"\nallowed_sources = [\"10.1.2.3/8\"]"), "node.callback.allowed_sources[0]", `write "10.0.0.0/8"`},
		{"callback source zone", callback("listen = \"127.0.0.1:7090\"\nallowed_sources = [\"fe80::1%eth0\"]"), "node.callback.allowed_sources[0]", "zone"},
		{"callback source twice", callback("listen = \"127.0.0.1:7090\"\nallowed_sources = [\"::1\", \"::1\"]"), "node.callback.allowed_sources[1]", "listed twice"},
		{"auto_receive string", node(`auto_receive = "true"`), "node.auto_receive", "must be true or false"},
		{"auto_receive without rpc", node("auto_receive = true\nrepresentative = \"" + confRep + "\""), "node.auto_receive", "requires node.rpc"},
		{"representative missing", node(rpc + "auto_receive = true"), "node.representative", "required when node.auto_receive = true"},
		{"representative bad", node(rpc + "auto_receive = true\nrepresentative = \"" + confRep[:len(confRep)-1] + "1\""), "node.representative", "is not a nano_ address"},
		{"representative not a string", node(rpc + "auto_receive = true\nrepresentative = 1"), "node.representative", "must be a string"},
	}
	// The [bridge] cases are package bridge's; one shows the section is read.
	tests = append(tests, struct {
		name     string
		edits    []confEdit
		key, msg string
	}{"bridge", []confEdit{confReplace(`outbound = "/media/nanokms/to-cold"`, `outbound = "/media/nanokms/to-hot"`)}, "bridge.outbound", "must differ from bridge.inbound"})
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
		name     string
		edits    []confEdit
		key, msg string
	}{
		{"gateway section", []confEdit{confAfter("[gateway]", `metrics = "/x.prom"`)}, "gateway.metrics", "unknown key"},
		{"gateway.tls", []confEdit{confReplace("\n[bridge]", confGatewayTLS+"ca = \"/x\"\n\n[bridge]")}, "gateway.tls.ca", "unknown key"},
		{"gateway.tls case", []confEdit{confReplace("\n[bridge]", "\n[gateway.TLS]\ncert = \"/x\"\n\n[bridge]")}, "gateway.TLS", `did you mean "tls"`},
		{"bridge", []confEdit{confAdd(`dir = "/x"`)}, "bridge.dir", "unknown key"},
		{"node", []confEdit{confAdd("[node]\nrpc = \"http://[::1]:7076\"\nworkers = 4")}, "node.workers", "unknown key"},
		{"node inline", []confEdit{confPrepend(`node = {rpc = "http://[::1]:7076", ws = "ws://[::1]:7078"}`)}, "node.ws", "unknown key"},
		{"node nested table", []confEdit{confAdd("[node.work]\nkind = \"cpu\"")}, "node.work", "must be a string, not a table"},
		{"node array of tables", []confEdit{confAdd("[[node.servers]]\nurl = \"http://w\"")}, "node.servers", "unknown key"},
		{"node.callback", []confEdit{confAdd("[node]\nrpc = \"http://[::1]:7076\"\n[node.callback]\nlisten = \"127.0.0.1:7090\"\nport = 7090")}, "node.callback.port", "unknown key"},
		{"gateway has no relay", []confEdit{confAdd("[relay]\nsigner = \"unix:///x\"")}, "relay", "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(confApply(t, confMinimalGateway, tt.edits)))
			confWantError(t, err, tt.key, tt.msg)
		})
	}
}

func TestConfigShapeAndSyntaxErrors(t *testing.T) {
	for _, tt := range []struct{ src, key, msg string }{
		{`gateway = "unix:///x"`, "gateway", "must be a table ([gateway]), not a string"},
		{"[gateway]\n[[gateway.tls]]", "gateway.tls", "must be a table ([gateway.tls]), not an array"},
		{"[gateway\nstate = 1", "", "TOML syntax error at line 2"},
	} {
		_, err := ParseConfig([]byte(tt.src))
		confWantError(t, err, tt.key, tt.msg)
		if errs := confErrors(t, err); len(errs) != 1 {
			t.Errorf("%q: want one error, got:\n%v", tt.src, err)
		}
	}
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
	if _, err := LoadConfig(filepath.Join(dir, "absent.toml")); !errors.Is(err, fs.ErrNotExist) ||
		!strings.HasPrefix(err.Error(), "gateway: reading the gateway configuration: ") || !strings.Contains(err.Error(), "absent.toml") {
		t.Errorf("LoadConfig = %v", err)
	}
	path := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(path, []byte("[relay]\nsigner = \"x\"\n[bridge]\nkind = \"tape\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	errs := confErrors(t, err)
	if len(errs) < 2 {
		t.Fatalf("want several errors, got %v", err)
	}
	// Each key in the file is placed: its line, and its value's column
	// (for a table, that of its name).
	for _, e := range errs {
		want, placed := map[string]string{"bridge.kind": ":4:9: ", "relay": ":1:1: "}[e.Key]
		if !placed {
			want = ": " // absent keys have no place
		}
		if e.File != path || !strings.HasPrefix(e.Error(), path+want) {
			t.Errorf("error %q is not placed at %s%s", e.Error(), path, want)
		}
	}
}

// FuzzParseConfigFiles checks that ParseConfig never panics and returns
// either a config or only *conffile.Error values naming their keys.
func FuzzParseConfigFiles(f *testing.F) {
	for _, s := range []string{confMinimalGateway,
		"[node]\nwork = \"server\"\nwork_servers = [1, \"http://w\"]\nrpc = \"ipc+unix://x\"",
		"[gateway]\nlisten = \"tcp://h:1\"\n[gateway.tls]\nkey_label = \"k\"\nallowed_identities = []\n[bridge]\nkind = \"file\"\ninbound = \"/a\"\noutbound = \"/a/b\"",
		"[gateway]\nmanifests = [\"/a\", \"/a\", 1]\nmetrics_listen = \":1\"\n[node]\nauto_receive = true\nrepresentative = \"nano_1\"\nwork_threshold = \"xyz\"",
		"[node]\nrpc = \"ipc+tcp://h:1\"\nipc_encoding = 3\n[node.callback]\nlisten = \"h\"\npath = \"x\"\nallowed_sources = [\"10.0.0.1/8\", \"::1\", \"::1\", 5]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
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
