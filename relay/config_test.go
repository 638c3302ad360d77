package relay_test

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
	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/internal/conffile/conftest"
	"github.com/nanokms/nanokms/relay"
)

// The smallest valid file; the tests edit it case by case. The [bridge]
// cases are package bridge's.
const (
	confMinimal = `[relay]
signer = "unix:///run/nanokms/signer.sock"

[bridge]
kind = "file"
inbound = "/media/nanokms/to-cold"
outbound = "/media/nanokms/to-hot"
`
	confSigner = `signer = "unix:///run/nanokms/signer.sock"`
	confTLS    = `
[relay.tls]
cert = "/etc/nanokms/relay.crt"
key = "/etc/nanokms/relay.key"
ca = "/etc/nanokms/signer-ca.crt"
server_name = "signer.cold"
`
	confTLSToken = "\n[relay.tls.token]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\nlabel = \"relay\"\npin_file = \"/etc/nanokms/relay.pin\"\n"
)

var (
	replace = conftest.Replace
	after   = conftest.After
)

func TestConfigExample(t *testing.T) {
	cfg, err := relay.LoadConfig(filepath.Join("testdata", "relay.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &relay.Config{
		Settings: relay.Settings{
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
		},
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

// TestConfigExampleInDocs checks that docs/CONFIG.md shows
// testdata/relay.toml verbatim in a ```toml block of its "# Relay"
// section.
func TestConfigExampleInDocs(t *testing.T) {
	conftest.InDocs(t, filepath.Join("..", "docs", "CONFIG.md"), "Relay", conftest.MustReadFile(t, filepath.Join("testdata", "relay.toml")))
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := relay.ParseConfig([]byte(confMinimal))
	if err != nil {
		t.Fatal(err)
	}
	want := &relay.Config{
		Settings: relay.Settings{
			Signer:   "unix:///run/nanokms/signer.sock",
			RetryMin: 200 * time.Millisecond, RetryMax: 10 * time.Second,
			LogLevel: "info",
		},
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

func TestConfigValid(t *testing.T) {
	tests := []struct {
		name  string
		edits []conftest.Edit
		check func(t *testing.T, c *relay.Config)
	}{
		{"tcp ipv6 with tls", []conftest.Edit{replace(confSigner, `signer = "tcp://[fd00::7]:7070"`), replace("\n[bridge]", confTLS+"\n[bridge]")}, func(t *testing.T, c *relay.Config) {
			if c.Signer != "tcp://[fd00::7]:7070" || c.TLS == nil || c.TLS.ServerName != "signer.cold" {
				t.Errorf("relay = %+v", c)
			}
		}},
		{"tls key on a token", []conftest.Edit{replace(confSigner, `signer = "tcp://10.0.7.2:7070"`), replace("\n[bridge]", confTLS+"\n[bridge]"),
			replace(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls"`), after(`server_name = "signer.cold"`, confTLSToken)}, func(t *testing.T, c *relay.Config) {
			want := &conffile.TLSClient{Cert: "/etc/nanokms/relay.crt", KeyLabel: "relay-tls", CA: "/etc/nanokms/signer-ca.crt", ServerName: "signer.cold",
				Token: &conffile.TLSToken{Module: "/usr/lib/softhsm/libsofthsm2.so", Label: "relay", PINFile: "/etc/nanokms/relay.pin"}}
			if !reflect.DeepEqual(c.TLS, want) {
				t.Errorf("relay.tls = %+v, token %+v", c.TLS, c.TLS.Token)
			}
		}},
		{"tls token pin_env", []conftest.Edit{replace(confSigner, `signer = "tcp://10.0.7.2:7070"`), replace("\n[bridge]", confTLS+"\n[bridge]"),
			replace(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls"`), after(`server_name = "signer.cold"`, strings.Replace(confTLSToken, `pin_file = "/etc/nanokms/relay.pin"`, `pin_env = "RELAY_PIN"`, 1))}, func(t *testing.T, c *relay.Config) {
			if c.TLS.Token.PINEnv != "RELAY_PIN" || c.TLS.Token.PINFile != "" {
				t.Errorf("relay.tls.token = %+v", c.TLS.Token)
			}
		}},
		{"server name an address", []conftest.Edit{replace(confSigner, `signer = "tcp://signer.cold:7070"`), replace("\n[bridge]", strings.Replace(confTLS, `"signer.cold"`, `"10.0.7.2"`, 1)+"\n[bridge]")}, nil},
		{"signers", []conftest.Edit{replace(confSigner, `signers = ["unix:///run/nanokms/a.sock", "unix:///run/nanokms/b.sock"]`)}, func(t *testing.T, c *relay.Config) {
			if c.Signer != "" || !reflect.DeepEqual(c.Signers, []string{"unix:///run/nanokms/a.sock", "unix:///run/nanokms/b.sock"}) ||
				!reflect.DeepEqual(c.Endpoints(), c.Signers) || c.TLS != nil {
				t.Errorf("relay = %+v", c.Settings)
			}
		}},
		{"signers over tcp", []conftest.Edit{replace(confSigner, `signers = ["tcp://10.0.7.2:7070", "tcp://10.0.7.3:7070", "unix:///run/nanokms/signer.sock"]`), replace("\n[bridge]", confTLS+"\n[bridge]")}, func(t *testing.T, c *relay.Config) {
			if len(c.Endpoints()) != 3 || c.TLS == nil {
				t.Errorf("relay = %+v", c.Settings)
			}
		}},
		{"one signer listed", []conftest.Edit{replace(confSigner, `signers = ["unix:///run/nanokms/signer.sock"]`)}, func(t *testing.T, c *relay.Config) {
			if !reflect.DeepEqual(c.Endpoints(), []string{"unix:///run/nanokms/signer.sock"}) {
				t.Errorf("endpoints = %q", c.Endpoints())
			}
		}},
		{"one signer", nil, func(t *testing.T, c *relay.Config) {
			if !reflect.DeepEqual(c.Endpoints(), []string{"unix:///run/nanokms/signer.sock"}) || c.Signers != nil {
				t.Errorf("endpoints = %q", c.Endpoints())
			}
		}},
		{"timings", []conftest.Edit{after(confSigner, "retry_min = \"1s\"\nretry_max = \"1s\"\nheartbeat = \"1m\"\nlog_level = \"debug\"")}, func(t *testing.T, c *relay.Config) {
			if c.RetryMin != time.Second || c.RetryMax != time.Second || c.Heartbeat != time.Minute || c.LogLevel != "debug" {
				t.Errorf("relay = %+v", c)
			}
		}},
		{"health_listen", []conftest.Edit{after(confSigner, `health_listen = "unix:///run/nanokms/relay-health.sock"`)}, func(t *testing.T, c *relay.Config) {
			if c.HealthListen != "unix:///run/nanokms/relay-health.sock" {
				t.Errorf("health_listen = %q", c.HealthListen)
			}
		}},
		{"health_listen tcp", []conftest.Edit{after(confSigner, `health_listen = "[::1]:9466"`)}, func(t *testing.T, c *relay.Config) {
			if c.HealthListen != "[::1]:9466" {
				t.Errorf("health_listen = %q", c.HealthListen)
			}
		}},
		{"serial bridge", []conftest.Edit{replace("kind = \"file\"\ninbound = \"/media/nanokms/to-cold\"\noutbound = \"/media/nanokms/to-hot\"\n", "kind = \"serial\"\ndevice = \"/dev/ttyUSB0\"\n")}, func(t *testing.T, c *relay.Config) {
			if c.Bridge.Kind != "serial" || c.Bridge.Device != "/dev/ttyUSB0" {
				t.Errorf("bridge = %+v", c.Bridge)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := relay.ParseConfig([]byte(conftest.Apply(t, confMinimal, tt.edits...)))
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, cfg)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tcp := []conftest.Edit{replace(confSigner, `signer = "tcp://10.0.7.2:7070"`), replace("\n[bridge]", confTLS+"\n[bridge]")}
	tls := func(e ...conftest.Edit) []conftest.Edit { return append(append([]conftest.Edit{}, tcp...), e...) }
	keyLabel := replace(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls"`)
	token := func(tok string) conftest.Edit { return after(`server_name = "signer.cold"`, tok) }
	tests := []struct {
		name     string
		edits    []conftest.Edit
		key, msg string
	}{
		{"no relay section", []conftest.Edit{replace("[relay]\n"+confSigner+"\n", "")}, "relay.signer", "required"},
		{"signer empty", []conftest.Edit{replace(confSigner, `signer = ""`)}, "relay.signer", "must not be empty"},
		{"signer scheme", []conftest.Edit{replace(confSigner, `signer = "grpc://signer:7070"`)}, "relay.signer", "must be unix:///absolute/path or tcp://host:port"},
		{"signer two slashes", []conftest.Edit{replace(confSigner, `signer = "unix://run/signer.sock"`)}, "relay.signer", "three slashes"},
		{"signer no host", []conftest.Edit{replace(confSigner, `signer = "tcp://:7070"`)}, "relay.signer", `"tcp://:7070" has no host`},
		{"signer port", []conftest.Edit{replace(confSigner, `signer = "tcp://signer:0"`)}, "relay.signer", "port"},
		{"signer not a string", []conftest.Edit{replace(confSigner, `signer = ["unix:///x"]`)}, "relay.signer", "must be a string, not an array"},
		{"signer and signers", []conftest.Edit{after(confSigner, `signers = ["unix:///run/nanokms/b.sock"]`)}, "relay.signers", "not allowed together with relay.signer: give one signer's address, or the list of the signers sharing one database"},
		{"signers empty", []conftest.Edit{replace(confSigner, `signers = []`)}, "relay.signers", "must list at least one signer"},
		{"neither signer nor signers", []conftest.Edit{replace(confSigner, `retry_min = "1s"`)}, "relay.signer", "required (or relay.signers, the signers sharing one database)"},
		{"signers twice", []conftest.Edit{replace(confSigner, `signers = ["unix:///a.sock", "unix:///a.sock"]`)}, "relay.signers[1]", "listed twice"},
		{"signers element bad", []conftest.Edit{replace(confSigner, `signers = ["unix:///a.sock", "unix://b.sock"]`)}, "relay.signers[1]", "three slashes"},
		{"signers element empty", []conftest.Edit{replace(confSigner, `signers = ["", "unix:///a.sock"]`)}, "relay.signers[0]", "must not be empty"},
		{"signers element not a string", []conftest.Edit{replace(confSigner, `signers = ["unix:///a.sock", 7]`)}, "relay.signers[1]", "must be a string"},
		{"signers a string", []conftest.Edit{replace(confSigner, `signers = "unix:///a.sock"`)}, "relay.signers", "must be an array"},
		{"signers tcp without tls", []conftest.Edit{replace(confSigner, `signers = ["unix:///a.sock", "tcp://10.0.7.3:7070"]`)}, "relay.tls", "required when relay.signers[1] is tcp://"},
		{"signers unix with tls", []conftest.Edit{replace(confSigner, `signers = ["unix:///a.sock", "unix:///b.sock"]`), replace("\n[bridge]", confTLS+"\n[bridge]")}, "relay.tls", "only allowed when relay.signers[0] is tcp://"},
		{"retry_min zero", []conftest.Edit{after(confSigner, `retry_min = "0s"`)}, "relay.retry_min", "must be positive"},
		{"retry_max bad", []conftest.Edit{after(confSigner, `retry_max = "10"`)}, "relay.retry_max", "must be a duration"},
		{"retry_max below retry_min", []conftest.Edit{after(confSigner, "retry_min = \"1s\"\nretry_max = \"500ms\"")}, "relay.retry_max", "500ms is less than relay.retry_min (1s)"},
		{"retry_max below the default retry_min", []conftest.Edit{after(confSigner, `retry_max = "100ms"`)}, "relay.retry_max", "is less than relay.retry_min (200ms)"},
		{"heartbeat negative", []conftest.Edit{after(confSigner, `heartbeat = "-1s"`)}, "relay.heartbeat", "must not be negative"},
		{"heartbeat integer", []conftest.Edit{after(confSigner, `heartbeat = 0`)}, "relay.heartbeat", "must be a string, not an integer"},
		{"metrics relative", []conftest.Edit{after(confSigner, `metrics = "relay.prom"`)}, "relay.metrics", "absolute path"},
		{"metrics suffix", []conftest.Edit{after(confSigner, `metrics = "/var/lib/node_exporter/relay.txt"`)}, "relay.metrics", "must end in .prom"},
		{"health_listen scheme", []conftest.Edit{after(confSigner, `health_listen = "http://127.0.0.1:9466"`)}, "relay.health_listen", `must be host:port or unix:///absolute/path, not "http://127.0.0.1:9466"`},
		{"health_listen no host", []conftest.Edit{after(confSigner, `health_listen = ":9466"`)}, "relay.health_listen", "no host"},
		{"health_listen the signer's socket", []conftest.Edit{after(confSigner, `health_listen = "unix:///run/nanokms/signer.sock"`)}, "relay.health_listen", "must differ from relay.signer (unix:///run/nanokms/signer.sock)"},
		{"health_listen one of the signers' sockets", []conftest.Edit{replace(confSigner, "signers = [\"unix:///a.sock\", \"unix:///b.sock\"]\nhealth_listen = \"unix:///b.sock\"")}, "relay.health_listen", "must differ from relay.signers[1] (unix:///b.sock)"},
		{"log_level", []conftest.Edit{after(confSigner, `log_level = "trace"`)}, "relay.log_level", `must be "debug", "info", "warn" or "error", not "trace"`},
		{"tcp without tls", []conftest.Edit{replace(confSigner, `signer = "tcp://10.0.7.2:7070"`)}, "relay.tls", "required when relay.signer is tcp://"},
		{"unix with tls", []conftest.Edit{replace("\n[bridge]", confTLS+"\n[bridge]")}, "relay.tls", "only allowed when relay.signer is tcp://"},
		{"tls a string", []conftest.Edit{after(confSigner, `tls = "on"`)}, "relay.tls", "must be a table ([relay.tls]), not a string"},
		{"tls empty", []conftest.Edit{replace(confSigner, `signer = "tcp://10.0.7.2:7070"`), replace("\n[bridge]", "\n[relay.tls]\n\n[bridge]")}, "relay.tls.cert", "required"},
		{"tls cert relative", tls(replace(`cert = "/etc/nanokms/relay.crt"`, `cert = "relay.crt"`)), "relay.tls.cert", "absolute path"},
		{"tls key missing", tls(replace(`key = "/etc/nanokms/relay.key"`, "")), "relay.tls.key", "required (or relay.tls.key_label"},
		{"tls key empty", tls(replace(`key = "/etc/nanokms/relay.key"`, `key = ""`)), "relay.tls.key", "must not be empty"},
		{"tls key and key_label", tls(after(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls"`)), "relay.tls.key_label", "not allowed together with relay.tls.key"},
		{"tls key_label without token", tls(keyLabel), "relay.tls.token", "required with relay.tls.key_label"},
		{"tls key_label bad", tls(replace(`key = "/etc/nanokms/relay.key"`, `key_label = "relay-tls "`), token(confTLSToken)), "relay.tls.key_label", "must not start or end with a space"},
		{"tls token with a key file", tls(token(confTLSToken)), "relay.tls.token", "only allowed with relay.tls.key_label"},
		{"tls token no module", tls(keyLabel, token(strings.Replace(confTLSToken, "module = \"/usr/lib/softhsm/libsofthsm2.so\"\n", "", 1))), "relay.tls.token.module", "required"},
		{"tls token label too long", tls(keyLabel, token(strings.Replace(confTLSToken, `label = "relay"`, `label = "`+strings.Repeat("r", 33)+`"`, 1))), "relay.tls.token.label", "longer than the 32 bytes"},
		{"tls token no pin", tls(keyLabel, token(strings.Replace(confTLSToken, `pin_file = "/etc/nanokms/relay.pin"`, "", 1))), "relay.tls.token.pin_file", "exactly one PIN source"},
		{"tls token two pins", tls(keyLabel, token(confTLSToken+`pin_env = "RELAY_PIN"`)), "relay.tls.token.pin_env", "exactly one PIN source"},
		{"tls token bad env", tls(keyLabel, token(strings.Replace(confTLSToken, `pin_file = "/etc/nanokms/relay.pin"`, `pin_env = "RELAY-PIN"`, 1))), "relay.tls.token.pin_env", "not an environment variable name"},
		{"tls token unknown key", tls(keyLabel, token(confTLSToken+`slot = 1`)), "relay.tls.token.slot", "unknown key"},
		{"tls ca missing", tls(replace(`ca = "/etc/nanokms/signer-ca.crt"`, "")), "relay.tls.ca", "required"},
		{"tls server_name missing", tls(replace(`server_name = "signer.cold"`, "")), "relay.tls.server_name", "required"},
		{"tls server_name bad", tls(replace(`server_name = "signer.cold"`, `server_name = "signer cold"`)), "relay.tls.server_name", "not an IP address or host name"},
		{"bridge", []conftest.Edit{replace(`kind = "file"`, `kind = "usb"`)}, "bridge.kind", `must be "file" or "serial", not "usb"`},

		{"unknown top-level table", []conftest.Edit{conftest.Add("[gateway]\nstate = \"/x\"")}, "gateway", "unknown key"},
		{"unknown key", []conftest.Edit{after("[relay]", `retry = "1s"`)}, "relay.retry", "unknown key"},
		{"key case", []conftest.Edit{after("[relay]", `Log_Level = "info"`)}, "relay.Log_Level", `did you mean "log_level"`},
		{"unknown tls key", []conftest.Edit{replace(`"unix:///run/nanokms/signer.sock"`, `"tcp://s:1"`), replace("\n[bridge]", confTLS+"client_ca = \"/x\"\n\n[bridge]")}, "relay.tls.client_ca", "unknown key"},
		{"unknown dotted tls key", []conftest.Edit{after("[relay]", `tls.min_version = "1.3"`)}, "relay.tls.min_version", "unknown key"},
		{"no node", []conftest.Edit{conftest.Add("[node]\nrpc = \"http://[::1]:7076\"")}, "node", "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := relay.ParseConfig([]byte(conftest.Apply(t, confMinimal, tt.edits...)))
			if cfg != nil {
				t.Error("ParseConfig returned a config with an error")
			}
			conftest.WantError(t, err, tt.key, tt.msg)
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
		conftest.WantError(t, err, tt.key, tt.msg)
		if errs := conftest.Errors(t, err); len(errs) != 1 {
			t.Errorf("%q: want one error, got:\n%v", tt.src, err)
		}
	}
}

// TestConfigAllErrorsReported checks that problems in every section are
// all returned, each once, in a stable order: unknown keys first, then
// section by section.
func TestConfigAllErrorsReported(t *testing.T) {
	src := conftest.Apply(t, confMinimal,
		replace(confSigner, `signer = "tcp://10.0.7.2:7070"`+"\nretry_max = \"1ms\"\nbogus = 1\nmetrics = \"/m.txt\""),
		replace(`outbound = "/media/nanokms/to-hot"`, `outbound = "/media/nanokms/to-cold"`),
		conftest.Add("pace = true"))
	_, err := relay.ParseConfig([]byte(src))
	var keys []string
	for _, e := range conftest.Errors(t, err) {
		keys = append(keys, e.Key)
	}
	want := []string{"relay.bogus", "relay.retry_max", "relay.metrics", "relay.tls", "bridge.pace", "bridge.outbound"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("keys = %q, want %q; errors:\n%v", keys, want, err)
	}
	if _, err2 := relay.ParseConfig([]byte(src)); err.Error() != err2.Error() {
		t.Errorf("errors differ between runs:\n%v\n--\n%v", err, err2)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := relay.LoadConfig(filepath.Join(dir, "absent.toml")); !errors.Is(err, fs.ErrNotExist) ||
		!strings.HasPrefix(err.Error(), "relay: reading the relay configuration: ") || !strings.Contains(err.Error(), "absent.toml") {
		t.Errorf("LoadConfig = %v", err)
	}
	path := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(path, []byte("[relay]\nsigner = \"x\"\n[bridge]\nkind = \"tape\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := relay.LoadConfig(path)
	errs := conftest.Errors(t, err)
	if len(errs) != 2 {
		t.Fatalf("want two errors, got %v", err)
	}
	// Each key in the file is placed: its line, and its value's column.
	for _, e := range errs {
		want := map[string]string{"relay.signer": ":2:11: ", "bridge.kind": ":4:9: "}[e.Key]
		if e.File != path || want == "" || !strings.HasPrefix(e.Error(), path+want) {
			t.Errorf("error %q is not placed at %s%s", e.Error(), path, want)
		}
	}
}

// FuzzParseConfig checks that ParseConfig never panics and returns either
// a config or only *conffile.Error values naming their keys.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{confMinimal,
		"[relay]\nsigner = \"tcp://h:1\"\n[relay.tls]\nserver_name = \"\"\n[bridge]\nkind = \"file\"\ninbound = \"/a\"\noutbound = \"/a/b\"",
		"[relay]\nsigner = \"tcp://h:1\"\n[relay.tls]\ncert = \"/c\"\nkey_label = \"k\"\nca = \"/a\"\nserver_name = \"h\"\n[relay.tls.token]\nmodule = \"/m.so\"\nlabel = \"t\"\npin_env = \"P\"\n[bridge]\nkind = \"file\"\ninbound = \"/a\"\noutbound = \"/b\"",
		"[relay]\nsigner = \"tcp://h:1\"\n[relay.tls]\nkey = \"/k\"\nkey_label = 5\n[relay.tls.token]\nlabel = [1]\npin_file = \"rel\"\npin_env = \"\"",
		"[bridge]\nkind = \"serial\"\ndevice = \"/dev/ttyUSB0\"\nbaud = 1\ninbound = 2",
		"[relay]\nsigner = \"unix:///s\"\nhealth_listen = \"unix:///s\"\n[bridge]\nkind = \"file\"\ninbound = \"/a\"\noutbound = \"/b\"",
		"[relay]\nsigner = \"tcp://[::1]:1\"\nhealth_listen = \"[::]:1\"",
		"[relay]\nsigners = [\"unix:///a\", \"tcp://h:1\", \"\", 5]\nsigner = \"unix:///a\"\n[bridge]\nkind = \"file\"\ninbound = \"/a\"\noutbound = \"/b\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if cfg, err := relay.ParseConfig(data); err != nil {
			if cfg != nil {
				t.Fatal("ParseConfig returned a config and an error")
			}
			conftest.Errors(t, err)
		} else if cfg == nil || len(cfg.Endpoints()) == 0 || (cfg.Signer == "") == (cfg.Signers == nil) || cfg.Bridge.Kind == "" {
			t.Fatalf("relay config %+v", cfg)
		}
	})
}
