package policy

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/signer/signerconf"
)

// Keys and addresses used in the test files.
const (
	aliceKey    = "91e9366eb1fd5277f3c1d18d942a2bdcf4b8b13fbf7e385776181f777fafba05"
	bobKey      = "af6015aa15424d288dcb7e652733831c72e1321c505d27c821906dcbd5b640ac"
	carolKey    = "60c134873d69c9ae11c53eecd0882d2fe8bebc2b5e19504582969455d83d58fa"
	serviceKey  = "5c97d0b93fa53c13ebe69110a853d189191627c84bc8b18f4e49e90797cb1f44"
	genesis     = "nano_3t6k35gi95xu6tergt6p69ck76ogmitsa8mnijtpxm9fkcm736xtoncuohr3"
	epochV2     = "nano_3qb6o6i1tkzr6jwr5s7eehfxwg9x6eemitdinbpi7u8bjjwsgqfj4wzser3x"
	acctCold    = "nano_35ss47xapsyhx3igozuu3shdeetf1zuy6gfafcwfraxyqxy79utrfcjazjmu"
	acctExtra   = "nano_3y149mm9hwzpywwo1yj5b7f8fwpxcsqwycy7qi9dsn9zytq3yssfrd7tckxw"
	destA       = "nano_1rx37iqf37ha6rti4ucumfdq47ehzms7o3oitrj61ewr77wsacn9aygeofc6"
	destB       = "nano_1trdic9u8hbx4yrtd6a3n19tyxon3jk4um5bxemae8x5mhwp6pcdfon8ib4d"
	rep1        = "nano_375zwei3suaam4jtaxioi7cy919pcaz9k9b6a6xxw85y676gga1dxqiqcdo5"
	rep2        = "nano_3rah7ce3fbianx3qyre8owcu3k54jixr45nsucnjmdemrbjhrtt1m5dspyht"
	identityKey = "0100000000000000000000000000000000000000000000000000000000000000" // small order
	notAPoint   = "0200000000000000000000000000000000000000000000000000000000000000"
)

// MustReadFile returns the contents of testdata/name.
func MustReadFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// MustParse parses src and fails the test on any error.
func MustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

// MustAccount parses an address.
func MustAccount(t *testing.T, s string) nano.PublicKey {
	t.Helper()
	k, err := nano.ParseAccount(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// MustAmount parses an amount with its unit.
func MustAmount(t *testing.T, s string) nano.Amount {
	t.Helper()
	a, err := nano.ParseAmountUnit(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// configErrors checks that err is a *ConfigError or a joined list of them
// and returns them.
func configErrors(t testing.TB, err error) []*ConfigError {
	t.Helper()
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]*ConfigError, 0, len(list))
	for _, e := range list {
		ce, ok := e.(*ConfigError)
		if !ok {
			t.Fatalf("error %T (%v) is not a *ConfigError", e, e)
		}
		out = append(out, ce)
	}
	return out
}

// wantError parses src and checks that one of its errors is at key and
// has msg in its message.
func wantError(t *testing.T, src, key, msg string) {
	t.Helper()
	cfg, err := Parse([]byte(src))
	if err == nil {
		t.Fatalf("Parse succeeded, want an error at %q", key)
	}
	if cfg != nil {
		t.Errorf("Parse returned a Config with an error")
	}
	errs := configErrors(t, err)
	for _, e := range errs {
		if e.Key == key && strings.Contains(e.Msg, msg) {
			if !strings.Contains(e.Error(), key) {
				t.Errorf("Error() %q does not name the key %q", e.Error(), key)
			}
			return
		}
	}
	t.Errorf("no error at %q containing %q; got:\n%v", key, msg, err)
}

// edit is a change to a configuration text.
type edit func(t *testing.T, src string) string

// replace replaces the first old with new; old must be present.
func replace(old, new string) edit {
	return func(t *testing.T, src string) string {
		t.Helper()
		if !strings.Contains(src, old) {
			t.Fatalf("test bug: %q is not in the configuration", old)
		}
		return strings.Replace(src, old, new, 1)
	}
}

// insertAfter inserts text on the line after the first line equal to line.
func insertAfter(line, text string) edit {
	return replace(line+"\n", line+"\n"+text+"\n")
}

// add appends text at the end.
func add(text string) edit {
	return func(t *testing.T, src string) string { return src + "\n" + text + "\n" }
}

const tcpListen = `listen = "tcp://10.0.7.2:7070"`

const tlsSection = `
[signer.tls]
cert = "/etc/nanokms/signer.crt"
key = "/etc/nanokms/signer.key"
client_ca = "/etc/nanokms/relay-ca.crt"
allowed_identities = ["relay.cold"]
`

// withTLS turns the minimal configuration's listener into TCP with TLS.
var withTLS = []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, tcpListen+"\n"+tlsSection)}

const secondGroup = `
[[groups]]
name = "cold"
accounts = ["` + acctCold + `"]

[[groups.tiers]]
quorum = 1
approvers = ["bob"]
`

func TestExample(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Signer
	if s.State != "/var/lib/nanokms/signer.db" || s.Listen != (conffile.Endpoint{Network: "tcp", Address: "10.0.7.2:7070"}) ||
		s.MaxIntentTTL != 24*time.Hour || s.ShutdownGrace != 10*time.Second || s.LogLevel != slog.LevelInfo ||
		s.Metrics != "/var/lib/node_exporter/textfile/nanokms_signer.prom" {
		t.Errorf("signer = %+v", s)
	}
	if s.Listen.String() != "tcp://10.0.7.2:7070" {
		t.Errorf("listen = %s", s.Listen)
	}
	if s.TLS == nil || s.TLS.Cert != "/etc/nanokms/signer.crt" || s.TLS.Key != "/etc/nanokms/signer.key" ||
		s.TLS.ClientCA != "/etc/nanokms/relay-ca.crt" || len(s.TLS.AllowedIdentities) != 1 || s.TLS.AllowedIdentities[0] != "relay.cold" {
		t.Errorf("tls = %+v", s.TLS)
	}
	if cfg.Token != (signerconf.Token{Module: "/usr/lib/softhsm/libsofthsm2.so", Label: "signer", PINFile: "/etc/nanokms/pin", PoolSize: 4, ReloadModule: true}) {
		t.Errorf("token = %+v", cfg.Token)
	}
	if !cfg.IsEpochSigner(MustAccount(t, genesis)) || !cfg.IsEpochSigner(MustAccount(t, epochV2)) || cfg.IsEpochSigner(MustAccount(t, acctCold)) {
		t.Errorf("epoch signers = %v", cfg.Epoch.Signers)
	}
	if len(cfg.Approvers) != 4 {
		t.Fatalf("%d approvers", len(cfg.Approvers))
	}
	for _, want := range []struct{ name, key string }{{"service", serviceKey}, {"alice", aliceKey}, {"bob", bobKey}, {"carol", carolKey}} {
		pub, _ := hex.DecodeString(want.key)
		if name, ok := cfg.ApproverByKey(ed25519.PublicKey(pub)); !ok || name != want.name {
			t.Errorf("ApproverByKey(%s) = %q, %v", want.name, name, ok)
		}
	}
	if _, ok := cfg.ApproverByKey(make(ed25519.PublicKey, 32)); ok {
		t.Error("ApproverByKey found an unknown key")
	}
	if len(cfg.Groups) != 2 {
		t.Fatalf("%d groups", len(cfg.Groups))
	}
	hot := cfg.Groups[0]
	if hot.Name != "hot" || len(hot.Wallets) != 1 || hot.Wallets[0] != "treasury" || len(hot.Accounts) != 1 ||
		hot.MaxSend == nil || hot.MaxSend.Cmp(MustAmount(t, "100 XNO")) != 0 ||
		hot.Velocity24h == nil || hot.Velocity24h.Cmp(MustAmount(t, "1000 XNO")) != 0 ||
		len(hot.Destinations) != 0 || len(hot.Representatives) != 2 || !hot.ReceiveAutomatic || len(hot.Tiers) != 2 {
		t.Errorf("hot = %+v", hot)
	}
	if tr := hot.Tiers[0]; tr.UpTo == nil || tr.UpTo.Cmp(MustAmount(t, "10 XNO")) != 0 || tr.Quorum != 1 || len(tr.Approvers) != 1 {
		t.Errorf("hot tier 0 = %+v", tr)
	}
	if tr := hot.Tiers[1]; tr.UpTo != nil || tr.Quorum != 2 || len(tr.Approvers) != 3 {
		t.Errorf("hot tier 1 = %+v", tr)
	}
	cold := cfg.Groups[1]
	if cold.Name != "cold" || len(cold.Wallets) != 0 || cold.MaxSend != nil || cold.Velocity24h != nil ||
		len(cold.Destinations) != 2 || cold.ReceiveAutomatic || len(cold.Tiers) != 1 {
		t.Errorf("cold = %+v", cold)
	}
}

// TestExampleInDocs checks that docs/CONFIG.md shows testdata/example.toml
// verbatim in a ```toml block.
func TestExampleInDocs(t *testing.T) {
	example := MustReadFile(t, "example.toml")
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "CONFIG.md"))
	if err != nil {
		t.Fatal(err)
	}
	rest := string(doc)
	for {
		_, block, found := strings.Cut(rest, "```toml\n")
		if !found {
			t.Fatal("docs/CONFIG.md has no ```toml block equal to signer/policy/testdata/example.toml")
		}
		body, after, _ := strings.Cut(block, "```\n")
		if body == example {
			return
		}
		rest = after
	}
}

func TestDefaults(t *testing.T) {
	cfg := MustParse(t, MustReadFile(t, "minimal.toml"))
	s := cfg.Signer
	if s.Listen != (conffile.Endpoint{Network: "unix", Address: "/run/nanokms/signer.sock"}) || s.Listen.String() != signerconf.DefaultListen {
		t.Errorf("listen = %+v", s.Listen)
	}
	if s.MaxIntentTTL != signerconf.DefaultMaxIntentTTL || s.ShutdownGrace != signerconf.DefaultShutdownGrace || s.LogLevel != slog.LevelInfo || s.TLS != nil || s.Metrics != "" {
		t.Errorf("signer = %+v", s)
	}
	if cfg.Token.PoolSize != signerconf.DefaultPoolSize || cfg.Token.PINEnv != "" {
		t.Errorf("token = %+v", cfg.Token)
	}
	if len(cfg.Epoch.Signers) != 0 {
		t.Errorf("epoch = %+v", cfg.Epoch)
	}
	g := cfg.Groups[0]
	if g.MaxSend != nil || g.Velocity24h != nil || g.ReceiveAutomatic || g.Destinations != nil || g.Representatives != nil || g.Accounts != nil {
		t.Errorf("group = %+v", g)
	}
}

// TestValid covers accepted variants of the minimal configuration.
func TestValid(t *testing.T) {
	tests := []struct {
		name  string
		edits []edit
		check func(t *testing.T, c *Config)
	}{
		{"pin_env", []edit{replace(`pin_file = "/etc/nanokms/pin"`, `pin_env = "NANOKMS_PIN"`)}, func(t *testing.T, c *Config) {
			if c.Token.PINEnv != "NANOKMS_PIN" || c.Token.PINFile != "" {
				t.Errorf("token = %+v", c.Token)
			}
		}},
		{"empty pin_env beside pin_file", []edit{insertAfter(`pin_file = "/etc/nanokms/pin"`, `pin_env = ""`)}, nil},
		{"tcp with tls", withTLS, func(t *testing.T, c *Config) {
			if c.Signer.TLS == nil || c.Signer.Listen.Network != "tcp" {
				t.Errorf("signer = %+v", c.Signer)
			}
		}},
		{"tls key on the token", append(append([]edit{}, withTLS...), replace(`key = "/etc/nanokms/signer.key"`, `key_label = "signer-tls"`)), func(t *testing.T, c *Config) {
			if c.Signer.TLS == nil || c.Signer.TLS.KeyLabel != "signer-tls" || c.Signer.TLS.Key != "" {
				t.Errorf("signer.tls = %+v", c.Signer.TLS)
			}
		}},
		{"tls key file", withTLS, func(t *testing.T, c *Config) {
			if c.Signer.TLS.Key != "/etc/nanokms/signer.key" || c.Signer.TLS.KeyLabel != "" {
				t.Errorf("signer.tls = %+v", c.Signer.TLS)
			}
		}},
		{"tcp ipv6", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, `listen = "tcp://[::1]:7070"`+"\n"+tlsSection)}, func(t *testing.T, c *Config) {
			if c.Signer.Listen.Address != "[::1]:7070" {
				t.Errorf("listen = %+v", c.Signer.Listen)
			}
		}},
		{"tcp host name", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, `listen = "tcp://signer.cold:7070"`+"\n"+tlsSection)}, nil},
		{"unix path", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, `listen = "unix:///tmp/s.sock"`)}, func(t *testing.T, c *Config) {
			if c.Signer.Listen != (conffile.Endpoint{Network: "unix", Address: "/tmp/s.sock"}) {
				t.Errorf("listen = %+v", c.Signer.Listen)
			}
		}},
		{"durations and level", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, "max_intent_ttl = \"1h30m\"\nshutdown_grace = \"250ms\"\nlog_level = \"debug\"")}, func(t *testing.T, c *Config) {
			if c.Signer.MaxIntentTTL != 90*time.Minute || c.Signer.ShutdownGrace != 250*time.Millisecond || c.Signer.LogLevel != slog.LevelDebug {
				t.Errorf("signer = %+v", c.Signer)
			}
		}},
		{"metrics", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, `metrics = "/var/lib/node_exporter/textfile/signer.prom"`)}, func(t *testing.T, c *Config) {
			if c.Signer.Metrics != "/var/lib/node_exporter/textfile/signer.prom" {
				t.Errorf("metrics = %q", c.Signer.Metrics)
			}
		}},
		{"metrics empty", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, `metrics = ""`)}, func(t *testing.T, c *Config) {
			if c.Signer.Metrics != "" {
				t.Errorf("metrics = %q", c.Signer.Metrics)
			}
		}},
		{"uri, module_params, wallet_dir", []edit{replace(`label = "signer"`, "uri = \"pkcs11:token=NSS%20Certificate%20DB?module-path=/usr/lib/softhsm/libsofthsm2.so\"\nmodule_params = \"configdir='sql:/var/lib/nanokms/nss' certPrefix='' keyPrefix='' secmod='secmod.db' flags=\"\nwallet_dir = \"/var/lib/nanokms/wallets\"")}, func(t *testing.T, c *Config) {
			if c.Token.Label != "" || c.Token.URI != "pkcs11:token=NSS%20Certificate%20DB?module-path=/usr/lib/softhsm/libsofthsm2.so" ||
				c.Token.ModuleParams != "configdir='sql:/var/lib/nanokms/nss' certPrefix='' keyPrefix='' secmod='secmod.db' flags=" || c.Token.WalletDir != "/var/lib/nanokms/wallets" {
				t.Errorf("token = %+v", c.Token)
			}
		}},
		{"reload_module off", []edit{insertAfter(`pin_file = "/etc/nanokms/pin"`, `reload_module = false`)}, func(t *testing.T, c *Config) {
			if c.Token.ReloadModule {
				t.Error("reload_module = false was not read")
			}
		}},
		{"pool size bounds", []edit{insertAfter(`pin_file = "/etc/nanokms/pin"`, `pool_size = 64`)}, func(t *testing.T, c *Config) {
			if c.Token.PoolSize != 64 {
				t.Errorf("pool_size = %d", c.Token.PoolSize)
			}
		}},
		{"amount units", []edit{insertAfter(`wallets = ["treasury"]`, "max_send = \"1000000000000000000000000000000000 raw\"\nvelocity_24h = \"10000xno\"")}, func(t *testing.T, c *Config) {
			g := c.Groups[0]
			if g.MaxSend.Cmp(MustAmount(t, "1000 XNO")) != 0 || g.Velocity24h.Cmp(MustAmount(t, "10000 XNO")) != 0 {
				t.Errorf("max_send %v velocity %v", g.MaxSend, g.Velocity24h)
			}
		}},
		{"max_send equal to velocity, zero", []edit{insertAfter(`wallets = ["treasury"]`, "max_send = \"0\"\nvelocity_24h = \"0 XNO\"")}, nil},
		{"hex account and xrb address", []edit{insertAfter(`wallets = ["treasury"]`, `accounts = ["`+strings.ToLower(MustAccount(t, acctCold).String())+`", "xrb_`+strings.TrimPrefix(acctExtra, "nano_")+`"]`)}, func(t *testing.T, c *Config) {
			if g, ok := c.GroupFor(MustAccount(t, acctExtra), ""); !ok || g.Name != "hot" {
				t.Errorf("GroupFor = %v, %v", g, ok)
			}
		}},
		{"accounts only", []edit{replace(`wallets = ["treasury"]`, `accounts = ["`+acctCold+`"]`)}, nil},
		{"one unbounded tier", []edit{replace("up_to = \"10 XNO\"\nquorum = 1\napprovers = [\"alice\"]\n\n[[groups.tiers]]\n", "")}, func(t *testing.T, c *Config) {
			if len(c.Groups[0].Tiers) != 1 {
				t.Errorf("tiers = %+v", c.Groups[0].Tiers)
			}
		}},
		{"inline tiers", []edit{replace("[[groups.tiers]]\nup_to = \"10 XNO\"\nquorum = 1\napprovers = [\"alice\"]\n\n[[groups.tiers]]\nquorum = 2\napprovers = [\"alice\", \"bob\"]\n",
			"tiers = [{up_to = \"10 XNO\", quorum = 1, approvers = [\"alice\"]}, {quorum = 2, approvers = [\"alice\", \"bob\"]}]\n")}, func(t *testing.T, c *Config) {
			if len(c.Groups[0].Tiers) != 2 {
				t.Errorf("tiers = %+v", c.Groups[0].Tiers)
			}
		}},
		{"explicit account in a wallet of another group", []edit{add(secondGroup)}, func(t *testing.T, c *Config) {
			if g, ok := c.GroupFor(MustAccount(t, acctCold), "treasury"); !ok || g.Name != "cold" {
				t.Errorf("GroupFor = %v, %v", g, ok)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := MustReadFile(t, "minimal.toml")
			for _, e := range tt.edits {
				src = e(t, src)
			}
			c := MustParse(t, src)
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestValidationErrors(t *testing.T) {
	const state = `state = "/var/lib/nanokms/signer.db"`
	const pinFile = `pin_file = "/etc/nanokms/pin"`
	const wallets = `wallets = ["treasury"]`
	tierAlice := "up_to = \"10 XNO\"\nquorum = 1\napprovers = [\"alice\"]"
	tierBoth := "quorum = 2\napprovers = [\"alice\", \"bob\"]"
	tcp := func(edits ...edit) []edit { return append(append([]edit{}, withTLS...), edits...) }

	tests := []struct {
		name     string
		edits    []edit
		key, msg string
	}{
		// Required keys.
		{"no signer section", []edit{replace("[signer]\n"+state+"\n", "")}, "signer.state", "required"},
		{"state missing", []edit{replace(state, "")}, "signer.state", "required"},
		{"state empty", []edit{replace(state, `state = ""`)}, "signer.state", "must not be empty"},
		{"state relative", []edit{replace(state, `state = "signer.db"`)}, "signer.state", "absolute path"},
		{"metrics relative", []edit{insertAfter(state, `metrics = "signer.prom"`)}, "signer.metrics", "absolute path"},
		{"metrics not .prom", []edit{insertAfter(state, `metrics = "/var/lib/node_exporter/textfile/signer.txt"`)}, "signer.metrics", "must end in .prom"},
		{"metrics integer", []edit{insertAfter(state, `metrics = 1`)}, "signer.metrics", "must be a string"},
		{"state not a string", []edit{replace(state, `state = 1`)}, "signer.state", "must be a string, not an integer"},
		{"state a table", []edit{replace(state, `state = {path = "/x"}`)}, "signer.state", "must be a string, not a table"},
		{"module missing", []edit{replace(`module = "/usr/lib/softhsm/libsofthsm2.so"`, "")}, "token.module", "required"},
		{"module relative", []edit{replace(`module = "/usr/lib/softhsm/libsofthsm2.so"`, `module = "libsofthsm2.so"`)}, "token.module", "absolute path"},
		{"label missing", []edit{replace(`label = "signer"`, "")}, "token.label", "required"},
		{"label too long", []edit{replace(`label = "signer"`, `label = "`+strings.Repeat("x", 33)+`"`)}, "token.label", "32 bytes"},
		{"label and uri", []edit{insertAfter(`label = "signer"`, `uri = "pkcs11:token=signer"`)}, "token.uri", "not allowed together with token.label"},
		{"uri invalid", []edit{replace(`label = "signer"`, `uri = "pkcs11:token=a b"`)}, "token.uri", "must be percent-encoded"},
		{"uri with a PIN", []edit{replace(`label = "signer"`, `uri = "pkcs11:token=signer?pin-value=1234"`)}, "token.uri", "a PIN is never taken from a URI"},
		{"uri with pin-source", []edit{replace(`label = "signer"`, `uri = "pkcs11:token=signer?pin-source=/etc/pin"`)}, "token.uri", "pin-source is not used"},
		{"uri naming no token", []edit{replace(`label = "signer"`, `uri = "pkcs11:object=k"`)}, "token.uri", "names no token"},
		{"uri module-path", []edit{replace(`label = "signer"`, `uri = "pkcs11:token=signer?module-path=/other.so"`)}, "token.uri", "disagrees with token.module"},
		{"wallet_dir relative", []edit{insertAfter(`label = "signer"`, `wallet_dir = "wallets"`)}, "token.wallet_dir", "absolute path"},
		{"module_params too long", []edit{insertAfter(`label = "signer"`, `module_params = "`+strings.Repeat("x", 4097)+`"`)}, "token.module_params", "4096"},

		// Listen.
		{"listen scheme", []edit{insertAfter(state, `listen = "http://10.0.0.1:80"`)}, "signer.listen", "must be unix:///absolute/path or tcp://host:port"},
		{"listen unix relative", []edit{insertAfter(state, `listen = "unix://run/signer.sock"`)}, "signer.listen", "three slashes"},
		{"listen unix too long", []edit{insertAfter(state, `listen = "unix:///`+strings.Repeat("s", 107)+`"`)}, "signer.listen", "longer than 107"},
		{"listen tcp no port", []edit{insertAfter(state, `listen = "tcp://10.0.0.1"`)}, "signer.listen", "no host:port"},
		{"listen tcp no host", []edit{insertAfter(state, `listen = "tcp://:7070"`)}, "signer.listen", "no host"},
		{"listen tcp port 0", []edit{insertAfter(state, `listen = "tcp://10.0.0.1:0"`)}, "signer.listen", "port"},
		{"listen tcp port too big", []edit{insertAfter(state, `listen = "tcp://10.0.0.1:65536"`)}, "signer.listen", "port"},
		{"listen tcp port name", []edit{insertAfter(state, `listen = "tcp://10.0.0.1:https"`)}, "signer.listen", "port"},
		{"listen tcp bad host", []edit{insertAfter(state, `listen = "tcp://a/b:7070"`)}, "signer.listen", "not an IP address or host name"},
		{"listen empty", []edit{insertAfter(state, `listen = ""`)}, "signer.listen", "must not be empty"},
		{"listen not a string", []edit{insertAfter(state, `listen = 7070`)}, "signer.listen", "must be a string"},

		// TLS.
		{"tcp without tls", []edit{insertAfter(state, tcpListen)}, "signer.tls", "required when signer.listen is tcp://"},
		{"unix with tls", []edit{insertAfter(state, tlsSection)}, "signer.tls", "only allowed when signer.listen is tcp://"},
		{"tls empty", []edit{insertAfter(state, tcpListen+"\n[signer.tls]")}, "signer.tls.cert", "required"},
		{"tls cert missing", tcp(replace(`cert = "/etc/nanokms/signer.crt"`, "")), "signer.tls.cert", "required"},
		{"tls key missing", tcp(replace(`key = "/etc/nanokms/signer.key"`, "")), "signer.tls.key", "required (or signer.tls.key_label"},
		{"tls key and key_label", tcp(insertAfter(`key = "/etc/nanokms/signer.key"`, `key_label = "signer-tls"`)), "signer.tls.key_label", "not allowed together with signer.tls.key"},
		{"tls key_label empty", tcp(replace(`key = "/etc/nanokms/signer.key"`, `key_label = ""`)), "signer.tls.key_label", "must not be empty"},
		{"tls key_label too long", tcp(replace(`key = "/etc/nanokms/signer.key"`, `key_label = "`+strings.Repeat("k", 65)+`"`)), "signer.tls.key_label", "longer than 64 bytes"},
		{"tls key_label spaces", tcp(replace(`key = "/etc/nanokms/signer.key"`, `key_label = " tls"`)), "signer.tls.key_label", "must not start or end with a space"},
		{"tls key_label not a string", tcp(replace(`key = "/etc/nanokms/signer.key"`, `key_label = 7`)), "signer.tls.key_label", "must be a string"},
		{"tls client_ca missing", tcp(replace(`client_ca = "/etc/nanokms/relay-ca.crt"`, "")), "signer.tls.client_ca", "required"},
		{"tls cert relative", tcp(replace(`cert = "/etc/nanokms/signer.crt"`, `cert = "signer.crt"`)), "signer.tls.cert", "absolute path"},
		{"tls identities missing", tcp(replace(`allowed_identities = ["relay.cold"]`, "")), "signer.tls.allowed_identities", "required"},
		{"tls identities empty", tcp(replace(`allowed_identities = ["relay.cold"]`, `allowed_identities = []`)), "signer.tls.allowed_identities", "at least one"},
		{"tls identity empty", tcp(replace(`allowed_identities = ["relay.cold"]`, `allowed_identities = ["relay.cold", ""]`)), "signer.tls.allowed_identities[1]", "must not be empty"},
		{"tls identity twice", tcp(replace(`allowed_identities = ["relay.cold"]`, `allowed_identities = ["relay.cold", "relay.cold"]`)), "signer.tls.allowed_identities[1]", "listed twice"},
		{"tls identities not strings", tcp(replace(`allowed_identities = ["relay.cold"]`, `allowed_identities = ["relay.cold", 5]`)), "signer.tls.allowed_identities[1]", "must be a string"},

		// PIN source.
		{"pin both", []edit{insertAfter(pinFile, `pin_env = "NANOKMS_PIN"`)}, "token.pin_env", "exactly one PIN source"},
		{"pin neither", []edit{replace(pinFile, "")}, "token.pin_file", "exactly one PIN source"},
		{"pin both empty", []edit{replace(pinFile, "pin_file = \"\"\npin_env = \"\"")}, "token.pin_file", "exactly one PIN source"},
		{"pin_env bad name", []edit{replace(pinFile, `pin_env = "1PIN"`)}, "token.pin_env", "not an environment variable name"},
		{"pin_file relative", []edit{replace(pinFile, `pin_file = "pin"`)}, "token.pin_file", "absolute path"},

		// Pool size.
		{"pool_size 0", []edit{insertAfter(pinFile, `pool_size = 0`)}, "token.pool_size", "from 1 to 64"},
		{"pool_size negative", []edit{insertAfter(pinFile, `pool_size = -1`)}, "token.pool_size", "from 1 to 64"},
		{"pool_size 65", []edit{insertAfter(pinFile, `pool_size = 65`)}, "token.pool_size", "from 1 to 64"},
		{"pool_size string", []edit{insertAfter(pinFile, `pool_size = "4"`)}, "token.pool_size", "must be an integer, not a string"},
		{"pool_size float", []edit{insertAfter(pinFile, `pool_size = 4.0`)}, "token.pool_size", "must be an integer, not a float"},

		// Durations and log level.
		{"ttl zero", []edit{insertAfter(state, `max_intent_ttl = "0s"`)}, "signer.max_intent_ttl", "must be positive"},
		{"ttl negative", []edit{insertAfter(state, `max_intent_ttl = "-1h"`)}, "signer.max_intent_ttl", "must be positive"},
		{"ttl no unit", []edit{insertAfter(state, `max_intent_ttl = "24"`)}, "signer.max_intent_ttl", "must be a duration"},
		{"ttl integer", []edit{insertAfter(state, `max_intent_ttl = 24`)}, "signer.max_intent_ttl", "must be a string"},
		{"grace bad", []edit{insertAfter(state, `shutdown_grace = "soon"`)}, "signer.shutdown_grace", "must be a duration"},
		{"grace zero", []edit{insertAfter(state, `shutdown_grace = "0"`)}, "signer.shutdown_grace", "must be positive"},
		{"log level", []edit{insertAfter(state, `log_level = "verbose"`)}, "signer.log_level", `"debug", "info", "warn" or "error"`},
		{"log level case", []edit{insertAfter(state, `log_level = "INFO"`)}, "signer.log_level", `not "INFO"`},

		// Epoch signers.
		{"epoch bad checksum", []edit{add("[epoch]\nsigners = [\"" + genesis[:len(genesis)-1] + "4\"]")}, "epoch.signers[0]", "checksum"},
		{"epoch small order", []edit{add("[epoch]\nsigners = [\"" + genesis + "\", \"" + identityKey + "\"]")}, "epoch.signers[1]", "small-order"},
		{"epoch not a point", []edit{add("[epoch]\nsigners = [\"" + notAPoint + "\"]")}, "epoch.signers[0]", "not a point"},
		{"epoch twice", []edit{add("[epoch]\nsigners = [\"" + genesis + "\", \"" + genesis + "\"]")}, "epoch.signers[1]", "listed twice"},
		{"epoch not a list", []edit{add("[epoch]\nsigners = \"" + genesis + "\"")}, "epoch.signers", "must be an array of strings"},

		// Approvers.
		{"approver name missing", []edit{replace(`name = "alice"`, "")}, "approvers[0].name", "required"},
		{"approver name bad", []edit{replace(`name = "alice"`, `name = "Alice"`)}, "approvers[0].name", "lowercase letters"},
		{"approver name long", []edit{replace(`name = "alice"`, `name = "`+strings.Repeat("a", 65)+`"`)}, "approvers[0].name", "longer than 64"},
		{"approver name twice", []edit{replace(`name = "bob"`, `name = "alice"`)}, "approvers[1].name", `"alice" is also the name of approvers[0]`},
		{"approver key missing", []edit{replace(`public_key = "`+bobKey+`"`, "")}, "approvers[1].public_key", "required"},
		{"approver key not hex", []edit{replace(bobKey, "zz"+bobKey[2:])}, "approvers[1].public_key", "64 hex digits"},
		{"approver key short", []edit{replace(bobKey, bobKey[2:])}, "approvers[1].public_key", "64 hex digits"},
		{"approver key not a point", []edit{replace(bobKey, notAPoint)}, "approvers[1].public_key", "not a point"},
		{"approver key small order", []edit{replace(bobKey, identityKey)}, "approvers[1].public_key", "small-order"},
		{"approver key twice", []edit{replace(bobKey, strings.ToUpper(aliceKey))}, "approvers[1].public_key", "also the key of approvers[0]"},

		// Groups.
		{"group name missing", []edit{replace(`name = "hot"`, "")}, "groups[0].name", "required"},
		{"group name bad", []edit{replace(`name = "hot"`, `name = "hot wallet"`)}, "groups[0].name", "lowercase letters"},
		{"group name twice", []edit{add(strings.Replace(secondGroup, `name = "cold"`, `name = "hot"`, 1))}, "groups[1].name", `"hot" is also the name of groups[0]`},
		{"group no members", []edit{replace(wallets, "")}, "groups[0]", "no members"},
		{"group empty members", []edit{replace(wallets, "wallets = []\naccounts = []")}, "groups[0]", "no members"},
		{"wallet empty", []edit{replace(wallets, `wallets = ["treasury", ""]`)}, "groups[0].wallets[1]", "must not be empty"},
		{"wallet long", []edit{replace(wallets, `wallets = ["`+strings.Repeat("w", 65)+`"]`)}, "groups[0].wallets[0]", "64 bytes"},
		{"wallet control", []edit{replace(wallets, `wallets = ["a\tb"]`)}, "groups[0].wallets[0]", "control character"},
		{"wallet twice in a group", []edit{replace(wallets, `wallets = ["treasury", "treasury"]`)}, "groups[0].wallets[1]", "listed twice"},
		{"wallet in two groups", []edit{add(strings.Replace(secondGroup, `accounts = ["`+acctCold+`"]`, `wallets = ["other", "treasury"]`, 1))}, "groups[1].wallets[1]", `wallet "treasury" is already in another group (groups[0].wallets[0])`},
		{"account in two groups", []edit{insertAfter(wallets, `accounts = ["`+acctCold+`"]`), add(secondGroup)}, "groups[1].accounts[0]", "already in another group (groups[0].accounts[0])"},
		{"wallet in two groups after a bad one", []edit{add(strings.Replace(secondGroup, `accounts = ["`+acctCold+`"]`, `wallets = ["", "treasury", "treasury"]`, 1))}, "groups[1].wallets[1]", `already in another group (groups[0].wallets[0])`},
		{"account in two groups after a bad one", []edit{insertAfter(wallets, `accounts = ["nano_1", "`+acctCold+`"]`), add(secondGroup)}, "groups[1].accounts[0]", "already in another group (groups[0].accounts[1])"},
		{"account twice in a group", []edit{insertAfter(wallets, `accounts = ["`+acctCold+`", "`+acctCold+`"]`)}, "groups[0].accounts[1]", "listed twice"},
		{"account bad", []edit{insertAfter(wallets, `accounts = ["nano_1234"]`)}, "groups[0].accounts[0]", "not a nano_ address"},
		{"account bad hex", []edit{insertAfter(wallets, `accounts = ["`+strings.Repeat("g", 64)+`"]`)}, "groups[0].accounts[0]", "not a nano_ address"},
		{"destination bad", []edit{insertAfter(wallets, `destinations = ["`+destA+`", "`+destB[:len(destB)-1]+`"]`)}, "groups[0].destinations[1]", "not a nano_ address"},
		{"representative bad", []edit{insertAfter(wallets, `representatives = ["`+rep1[:20]+`"]`)}, "groups[0].representatives[0]", "not a nano_ address"},
		{"representative twice", []edit{insertAfter(wallets, `representatives = ["`+rep1+`", "`+rep2+`", "`+rep1+`"]`)}, "groups[0].representatives[2]", "listed twice"},
		{"max_send unit", []edit{insertAfter(wallets, `max_send = "100 BTC"`)}, "groups[0].max_send", `"100 BTC" is not an amount`},
		{"max_send integer", []edit{insertAfter(wallets, `max_send = 100`)}, "groups[0].max_send", "must be a string"},
		{"max_send negative", []edit{insertAfter(wallets, `max_send = "-1 XNO"`)}, "groups[0].max_send", "is not an amount"},
		{"max_send too precise", []edit{insertAfter(wallets, `max_send = "0.0000000000000000000000000000001 XNO"`)}, "groups[0].max_send", "more than 30 decimal places"},
		{"max_send too large", []edit{insertAfter(wallets, `max_send = "340282366920938463463374607431768211456"`)}, "groups[0].max_send", "2^128 raw or more"},
		{"velocity raw with point", []edit{insertAfter(wallets, `velocity_24h = "1.5"`)}, "groups[0].velocity_24h", "is not an amount"},
		{"max_send above velocity", []edit{insertAfter(wallets, "max_send = \"100 XNO\"\nvelocity_24h = \"99.999999999999999999999999999999 XNO\"")}, "groups[0].max_send", "more than velocity_24h"},
		{"receive_automatic string", []edit{insertAfter(wallets, `receive_automatic = "yes"`)}, "groups[0].receive_automatic", "must be true or false"},

		// Tiers.
		{"no tiers", []edit{replace("[[groups.tiers]]\n"+tierAlice+"\n\n[[groups.tiers]]\n"+tierBoth+"\n", "")}, "groups[0].tiers", "at least one"},
		{"quorum 0", []edit{replace("quorum = 1", "quorum = 0")}, "groups[0].tiers[0].quorum", "must be at least 1"},
		{"quorum 0 second group", []edit{add(strings.Replace(secondGroup, "quorum = 1", "quorum = 0", 1))}, "groups[1].tiers[0].quorum", "must be at least 1"},
		{"quorum above approvers", []edit{replace("quorum = 2", "quorum = 3")}, "groups[0].tiers[1].quorum", "must be at most 2"},
		{"quorum missing", []edit{replace("quorum = 2\n", "")}, "groups[0].tiers[1].quorum", "required"},
		{"quorum string", []edit{replace("quorum = 2", `quorum = "2"`)}, "groups[0].tiers[1].quorum", "must be an integer"},
		{"tier approvers missing", []edit{replace("approvers = [\"alice\", \"bob\"]\n", "")}, "groups[0].tiers[1].approvers", "required"},
		{"tier approvers empty", []edit{replace(`approvers = ["alice", "bob"]`, `approvers = []`)}, "groups[0].tiers[1].approvers", "required"},
		{"tier approver unknown", []edit{replace(`approvers = ["alice", "bob"]`, `approvers = ["alice", "mallory"]`)}, "groups[0].tiers[1].approvers[1]", `"mallory" is not the name of an [[approvers]] entry`},
		{"tier approver twice", []edit{replace(`approvers = ["alice", "bob"]`, `approvers = ["alice", "alice"]`)}, "groups[0].tiers[1].approvers[1]", "listed twice"},
		{"up_to missing before last", []edit{replace("up_to = \"10 XNO\"\n", "")}, "groups[0].tiers[0].up_to", "only the last tier may omit up_to"},
		{"up_to on the last tier", []edit{replace("quorum = 2", "up_to = \"100 XNO\"\nquorum = 2")}, "groups[0].tiers[1].up_to", "must be omitted"},
		{"up_to on the only tier", []edit{replace("[[groups.tiers]]\n"+tierAlice+"\n\n", ""), replace("quorum = 2", "up_to = \"1 XNO\"\nquorum = 2")}, "groups[0].tiers[0].up_to", "must be omitted"},
		{"up_to zero", []edit{replace(`up_to = "10 XNO"`, `up_to = "0 XNO"`)}, "groups[0].tiers[0].up_to", "more than 0"},
		{"up_to bad", []edit{replace(`up_to = "10 XNO"`, `up_to = "ten"`)}, "groups[0].tiers[0].up_to", "is not an amount"},
		{"up_to equal", []edit{replace("[[groups.tiers]]\n"+tierBoth, "[[groups.tiers]]\nup_to = \"10000000000000000000000000000000 raw\"\n"+tierBoth+"\n\n[[groups.tiers]]\n"+tierBoth)}, "groups[0].tiers[1].up_to", "not more than the previous tier's up_to (10 XNO)"},
		{"up_to descending", []edit{replace("[[groups.tiers]]\n"+tierBoth, "[[groups.tiers]]\nup_to = \"9 XNO\"\n"+tierBoth+"\n\n[[groups.tiers]]\n"+tierBoth)}, "groups[0].tiers[1].up_to", "ordered by up_to ascending"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := MustReadFile(t, "minimal.toml")
			for _, e := range tt.edits {
				src = e(t, src)
			}
			wantError(t, src, tt.key, tt.msg)
		})
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name     string
		edits    []edit
		key, msg string
	}{
		{"top level", []edit{replace("[signer]\n", "foo = 1\n\n[signer]\n")}, "foo", "unknown key"},
		{"top-level table", []edit{add("[metrics]\nlisten = \"x\"")}, "metrics", "unknown key"},
		{"signer", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, `stat = "/x"`)}, "signer.stat", "unknown key"},
		{"signer case", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, `Log_Level = "info"`)}, "signer.Log_Level", `did you mean "log_level"`},
		{"signer dotted", []edit{replace("[signer]\n", "[signer]\nextra.deep = 1\n")}, "signer.extra", "unknown key"},
		{"signer quoted", []edit{replace("[signer]\n", "[signer]\n\"a.b\" = 1\n")}, `signer."a.b"`, "unknown key"},
		{"signer.tls", append(append([]edit{}, withTLS...), insertAfter(`allowed_identities = ["relay.cold"]`, `min_version = "1.3"`)), "signer.tls.min_version", "unknown key"},
		{"token", []edit{insertAfter(`label = "signer"`, `pin = "1234"`)}, "token.pin", "unknown key"},
		{"approvers", []edit{insertAfter(`name = "bob"`, `email = "bob@example.com"`)}, "approvers[1].email", "unknown key"},
		{"groups", []edit{insertAfter(`wallets = ["treasury"]`, `max_sends = "1 XNO"`)}, "groups[0].max_sends", "unknown key"},
		{"groups.tiers", []edit{replace("quorum = 2\n", "quorom = 2\n")}, "groups[0].tiers[1].quorom", "unknown key"},
		{"second group's tiers", []edit{add(strings.Replace(secondGroup, "quorum = 1", "quorum = 1\nup_too = \"1 XNO\"", 1))}, "groups[1].tiers[0].up_too", "unknown key"},
		{"inline tiers", []edit{replace("[[groups.tiers]]\nup_to = \"10 XNO\"\nquorum = 1\napprovers = [\"alice\"]\n\n[[groups.tiers]]\nquorum = 2\napprovers = [\"alice\", \"bob\"]\n",
			"tiers = [{quorum = 1, approvers = [\"alice\"], x = 1}]\n")}, "groups[0].tiers[0].x", "unknown key"},
		{"groups.tier", []edit{add("[[groups.tier]]\nquorum = 1")}, "groups[0].tier", "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := MustReadFile(t, "minimal.toml")
			for _, e := range tt.edits {
				src = e(t, src)
			}
			wantError(t, src, tt.key, tt.msg)
		})
	}
}

// TestNoUnknownKeyInsideValue checks that a table given where a string is
// expected is one type error, not also unknown keys.
func TestNoUnknownKeyInsideValue(t *testing.T) {
	src := replace(`wallets = ["treasury"]`, `wallets = [{name = "treasury"}]`)(t, MustReadFile(t, "minimal.toml"))
	_, err := Parse([]byte(src))
	errs := configErrors(t, err)
	for _, e := range errs {
		if strings.Contains(e.Msg, "unknown key") || strings.Contains(e.Msg, "not decoded") {
			t.Errorf("unexpected %v", e)
		}
	}
	wantError(t, src, "groups[0].wallets[0]", "must be a string, not a table")
}

func TestShapeErrors(t *testing.T) {
	tests := []struct {
		name, src, key, msg string
	}{
		{"signer a string", `signer = "x"`, "signer", "must be a table ([signer]), not a string"},
		{"signer an array of tables", "[[signer]]\nstate = \"/x\"", "signer", "must be a table ([signer]), not an array"},
		{"tls a string", "[signer]\ntls = \"on\"", "signer.tls", "must be a table"},
		{"groups a number", `groups = 5`, "groups", "must be an array of tables ([[groups]]), not an integer"},
		{"groups a table", "[groups]\nname = \"x\"", "groups", "must be an array of tables"},
		{"approvers of numbers", `approvers = [1, 2]`, "approvers", "must be an array of tables"},
		{"tiers a table", "[[groups]]\n[groups.tiers]\nquorum = 1", "groups[0].tiers", "must be an array of tables"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, tt.src, tt.key, tt.msg)
		})
	}
}

func TestSyntaxError(t *testing.T) {
	for _, src := range []string{"[signer\nstate = 1", "a = \"unterminated", "a = 1\na = 2", "\x00"} {
		_, err := Parse([]byte(src))
		if err == nil {
			t.Fatalf("Parse(%q) succeeded", src)
		}
		errs := configErrors(t, err)
		if len(errs) != 1 || errs[0].Key != "" || !strings.Contains(errs[0].Msg, "TOML syntax error at line") {
			t.Errorf("Parse(%q) = %v", src, err)
		}
	}
}

// TestAllErrorsReported checks that problems in several sections are all
// returned, joined, each a *ConfigError.
func TestAllErrorsReported(t *testing.T) {
	src := MustReadFile(t, "minimal.toml")
	src = replace(`state = "/var/lib/nanokms/signer.db"`, `state = "rel"`+"\nbogus = 1")(t, src)
	src = replace(`label = "signer"`, "")(t, src)
	src = replace("quorum = 2", "quorum = 0")(t, src)
	_, err := Parse([]byte(src))
	keys := map[string]bool{}
	for _, e := range configErrors(t, err) {
		keys[e.Key] = true
	}
	for _, k := range []string{"signer.bogus", "signer.state", "token.label", "groups[0].tiers[1].quorum"} {
		if !keys[k] {
			t.Errorf("no error at %s in:\n%v", k, err)
		}
	}
	// The order is stable.
	_, err2 := Parse([]byte(src))
	if err.Error() != err2.Error() {
		t.Errorf("errors differ between runs:\n%v\n--\n%v", err, err2)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "absent.toml"))
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "absent.toml") {
			t.Errorf("Load = %v", err)
		}
	})
	t.Run("errors name the file", func(t *testing.T) {
		path := filepath.Join(dir, "bad.toml")
		src := replace("quorum = 2", "quorum = 0")(t, MustReadFile(t, "minimal.toml"))
		src = replace(`label = "signer"`, "")(t, src)
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		errs := configErrors(t, err)
		if len(errs) != 2 {
			t.Fatalf("want 2 errors, got %v", err)
		}
		for _, e := range errs {
			if e.File != path || !strings.HasPrefix(e.Error(), "policy: "+path+":") {
				t.Errorf("error %q does not name %s", e.Error(), path)
			}
		}
	})
}

// TestConfigErrorPlaces checks that the errors of keys in the file carry
// the line and the column of the value the decoder gives, and the errors it
// cannot place (an absent key; a key of several [[groups]]) none.
func TestConfigErrorPlaces(t *testing.T) {
	src := replace(`pin_file = "/etc/nanokms/pin"`, `pin_file = "/etc/nanokms/pin"`+"\npool_size = \"4\"\ncolour = 1")(t, MustReadFile(t, "minimal.toml"))
	src = replace(`state = "/var/lib/nanokms/signer.db"`, "")(t, src)
	_, err := Parse([]byte(src))
	want := map[string][2]int{"signer.state": {0, 0}, "token.pool_size": {9, 14}, "token.colour": {10, 10}}
	errs := configErrors(t, err)
	if len(errs) != len(want) {
		t.Fatalf("errors: %v", err)
	}
	for _, e := range errs {
		if w, ok := want[e.Key]; !ok || e.Line != w[0] || e.Col != w[1] {
			t.Errorf("%s at %d:%d, want %v", e.Key, e.Line, e.Col, w)
		}
	}
}

func TestConfigErrorString(t *testing.T) {
	for _, tt := range []struct {
		e    ConfigError
		want string
	}{
		{ConfigError{Key: "groups[1].tiers[0].quorum", Msg: "must be at least 1"}, "policy: groups[1].tiers[0].quorum: must be at least 1"},
		{ConfigError{File: "/etc/s.toml", Key: "token.label", Msg: "required"}, "policy: /etc/s.toml: token.label: required"},
		{ConfigError{Msg: "TOML syntax error at line 1, column 2: x"}, "policy: TOML syntax error at line 1, column 2: x"},
		{ConfigError{File: "/etc/s.toml", Line: 7, Col: 9, Key: "token.pool_size", Msg: "must be an integer, not a string"}, "policy: /etc/s.toml:7:9: token.pool_size: must be an integer, not a string"},
		{ConfigError{Line: 7, Col: 9, Key: "token.pool_size", Msg: "must be an integer, not a string"}, "policy: line 7, column 9: token.pool_size: must be an integer, not a string"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestGroupFor(t *testing.T) {
	cfg := MustParse(t, MustReadFile(t, "policy.toml"))
	tests := []struct {
		account, wallet string
		want            string // "" for no group
	}{
		{acctExtra, "treasury", "hot"},
		{acctCold, "", "cold"},
		{acctCold, "treasury", "cold"}, // explicit membership wins over the wallet
		{acctExtra, "", ""},
		{acctExtra, "other", ""},
		{acctExtra, "Treasury", ""}, // wallet names are exact
	}
	for _, tt := range tests {
		g, ok := cfg.GroupFor(MustAccount(t, tt.account), tt.wallet)
		switch {
		case tt.want == "" && ok:
			t.Errorf("GroupFor(%s, %q) = %s, want none", tt.account, tt.wallet, g.Name)
		case tt.want != "" && (!ok || g.Name != tt.want):
			t.Errorf("GroupFor(%s, %q) = %v, %v, want %s", tt.account, tt.wallet, g, ok, tt.want)
		}
	}
}
