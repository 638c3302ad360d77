package signerconf_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/internal/conffile/conftest"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/signer/signerconf"
)

// The whole signer's file. The policy sections' own rules are package
// policy's tests.

// Keys and addresses used in the test files.
const (
	aliceKey   = "91e9366eb1fd5277f3c1d18d942a2bdcf4b8b13fbf7e385776181f777fafba05"
	bobKey     = "af6015aa15424d288dcb7e652733831c72e1321c505d27c821906dcbd5b640ac"
	carolKey   = "60c134873d69c9ae11c53eecd0882d2fe8bebc2b5e19504582969455d83d58fa"
	serviceKey = "5c97d0b93fa53c13ebe69110a853d189191627c84bc8b18f4e49e90797cb1f44"
	genesis    = "nano_3t6k35gi95xu6tergt6p69ck76ogmitsa8mnijtpxm9fkcm736xtoncuohr3"
	epochV2    = "nano_3qb6o6i1tkzr6jwr5s7eehfxwg9x6eemitdinbpi7u8bjjwsgqfj4wzser3x"
	acctCold   = "nano_35ss47xapsyhx3igozuu3shdeetf1zuy6gfafcwfraxyqxy79utrfcjazjmu"
)

// MustReadFile returns the contents of testdata/name.
func MustReadFile(t *testing.T, name string) string {
	t.Helper()
	return conftest.MustReadFile(t, filepath.Join("testdata", name))
}

// MustParse parses src and fails the test on any error.
func MustParse(t *testing.T, src string) *signerconf.Config {
	t.Helper()
	cfg, err := signerconf.Parse([]byte(src))
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

// wantError parses src and checks that one of its errors is at key and
// has msg in its message.
func wantError(t *testing.T, src, key, msg string) {
	t.Helper()
	cfg, err := signerconf.Parse([]byte(src))
	if cfg != nil {
		t.Errorf("Parse returned a Config with an error")
	}
	conftest.WantError(t, err, key, msg)
}

// edit is a change to a configuration text.
type edit = conftest.Edit

var (
	replace     = conftest.Replace
	insertAfter = conftest.After
	add         = conftest.Add
)

const tcpListen = `listen = "tcp://10.0.7.2:7070"`

const tlsSection = `
[signer.tls]
cert = "/etc/nanokms/signer.crt"
key = "/etc/nanokms/signer.key"
client_ca = "/etc/nanokms/relay-ca.crt"
allowed_identities = ["relay.cold"]
`

// withPG replaces the minimal configuration's state file with a
// [signer.postgres] section holding keys.
func withPG(keys string) []edit {
	return []edit{replace(`state = "/var/lib/nanokms/signer.db"`, "\n[signer.postgres]\n"+keys)}
}

// withTLS turns the minimal configuration's listener into TCP with TLS.
var withTLS = []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, tcpListen+"\n"+tlsSection)}

func TestExample(t *testing.T) {
	cfg, err := signerconf.Load(filepath.Join("testdata", "example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Signer
	if s.State != "/var/lib/nanokms/signer.db" || s.Listen != "tcp://10.0.7.2:7070" ||
		s.MaxIntentTTL != 24*time.Hour || s.ShutdownGrace != 10*time.Second || s.LogLevel != "info" ||
		s.Metrics != "/var/lib/node_exporter/textfile/nanokms_signer.prom" {
		t.Errorf("signer = %+v", s)
	}
	if s.TLS == nil || s.TLS.Cert != "/etc/nanokms/signer.crt" || s.TLS.Key != "/etc/nanokms/signer.key" ||
		s.TLS.ClientCA != "/etc/nanokms/relay-ca.crt" || len(s.TLS.AllowedIdentities) != 1 || s.TLS.AllowedIdentities[0] != "relay.cold" {
		t.Errorf("tls = %+v", s.TLS)
	}
	if cfg.Token != (signerconf.Token{Module: "/usr/lib/softhsm/libsofthsm2.so", Label: "signer", PINFile: "/etc/nanokms/pin", PoolSize: 4, ReloadModule: true}) {
		t.Errorf("token = %+v", cfg.Token)
	}
	p := &cfg.Policy
	if !p.IsEpochSigner(MustAccount(t, genesis)) || !p.IsEpochSigner(MustAccount(t, epochV2)) || p.IsEpochSigner(MustAccount(t, acctCold)) {
		t.Errorf("epoch signers = %v", p.Epoch.Signers)
	}
	if len(p.Approvers) != 4 {
		t.Fatalf("%d approvers", len(p.Approvers))
	}
	for _, want := range []struct{ name, key string }{{"service", serviceKey}, {"alice", aliceKey}, {"bob", bobKey}, {"carol", carolKey}} {
		pub, _ := hex.DecodeString(want.key)
		if name, ok := p.ApproverByKey(ed25519.PublicKey(pub)); !ok || name != want.name {
			t.Errorf("ApproverByKey(%s) = %q, %v", want.name, name, ok)
		}
	}
	if _, ok := p.ApproverByKey(make(ed25519.PublicKey, 32)); ok {
		t.Error("ApproverByKey found an unknown key")
	}
	if len(p.Groups) != 2 {
		t.Fatalf("%d groups", len(p.Groups))
	}
	hot := p.Groups[0]
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
	cold := p.Groups[1]
	if cold.Name != "cold" || len(cold.Wallets) != 0 || cold.MaxSend != nil || cold.Velocity24h != nil ||
		len(cold.Destinations) != 2 || cold.ReceiveAutomatic || len(cold.Tiers) != 1 {
		t.Errorf("cold = %+v", cold)
	}
}

// TestExampleInDocs checks that docs/CONFIG.md shows testdata/example.toml
// verbatim in a ```toml block.
func TestExampleInDocs(t *testing.T) {
	conftest.InDocs(t, filepath.Join("..", "..", "docs", "CONFIG.md"), "The signer's configuration file", MustReadFile(t, "example.toml"))
}

// TestPostgresExample checks testdata/postgres.toml, the configuration of
// one of several signers sharing a database, and that docs/CONFIG.md
// shows it verbatim.
func TestPostgresExample(t *testing.T) {
	cfg, err := signerconf.Load(filepath.Join("testdata", "postgres.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Signer; s.State != "" || s.Postgres == nil ||
		*s.Postgres != (signerconf.Postgres{DSNFile: "/etc/nanokms/signers.dsn", OpTimeout: 10 * time.Second, MaxConns: 8}) ||
		s.TLS == nil || s.TLS.KeyLabel != "signer-tls" {
		t.Errorf("signer = %+v, postgres = %+v", s, s.Postgres)
	}
	conftest.InDocs(t, filepath.Join("..", "..", "docs", "CONFIG.md"), "The signer's configuration file", MustReadFile(t, "postgres.toml"))
}

func TestDefaults(t *testing.T) {
	cfg := MustParse(t, MustReadFile(t, "minimal.toml"))
	s := cfg.Signer
	if s.Listen != signerconf.DefaultListen {
		t.Errorf("listen = %q", s.Listen)
	}
	if s.MaxIntentTTL != signerconf.DefaultMaxIntentTTL || s.ShutdownGrace != signerconf.DefaultShutdownGrace || s.LogLevel != "info" || s.TLS != nil || s.Metrics != "" {
		t.Errorf("signer = %+v", s)
	}
	if cfg.Token != (signerconf.Token{Module: "/usr/lib/softhsm/libsofthsm2.so", Label: "signer", PINFile: "/etc/nanokms/pin", PoolSize: signerconf.DefaultPoolSize, ReloadModule: true}) {
		t.Errorf("token = %+v", cfg.Token)
	}
	if len(cfg.Policy.Groups) != 1 || len(cfg.Policy.Approvers) != 2 {
		t.Errorf("policy = %+v", cfg.Policy)
	}
	// The service sections alone make a file: a signer with no group signs
	// for no account.
	src := MustReadFile(t, "minimal.toml")
	if cfg := MustParse(t, src[:strings.Index(src, "[[approvers]]")]); cfg.Policy.Groups != nil || cfg.Signer.State == "" || cfg.Signer.Postgres != nil {
		t.Errorf("service only = %+v", cfg)
	}
}

// TestValid covers accepted variants of the minimal configuration.
func TestValid(t *testing.T) {
	tests := []struct {
		name  string
		edits []edit
		check func(t *testing.T, c *signerconf.Config)
	}{
		{"pin_env", []edit{replace(`pin_file = "/etc/nanokms/pin"`, `pin_env = "NANOKMS_PIN"`)}, func(t *testing.T, c *signerconf.Config) {
			if c.Token.PINEnv != "NANOKMS_PIN" || c.Token.PINFile != "" {
				t.Errorf("token = %+v", c.Token)
			}
		}},
		{"empty pin_env beside pin_file", []edit{insertAfter(`pin_file = "/etc/nanokms/pin"`, `pin_env = ""`)}, nil},
		{"tcp with tls", withTLS, func(t *testing.T, c *signerconf.Config) {
			if c.Signer.TLS == nil || !strings.HasPrefix(c.Signer.Listen, "tcp://") {
				t.Errorf("signer = %+v", c.Signer)
			}
		}},
		{"tls key on the token", append(append([]edit{}, withTLS...), replace(`key = "/etc/nanokms/signer.key"`, `key_label = "signer-tls"`)), func(t *testing.T, c *signerconf.Config) {
			if c.Signer.TLS == nil || c.Signer.TLS.KeyLabel != "signer-tls" || c.Signer.TLS.Key != "" {
				t.Errorf("signer.tls = %+v", c.Signer.TLS)
			}
		}},
		{"tls key file", withTLS, func(t *testing.T, c *signerconf.Config) {
			if c.Signer.TLS.Key != "/etc/nanokms/signer.key" || c.Signer.TLS.KeyLabel != "" {
				t.Errorf("signer.tls = %+v", c.Signer.TLS)
			}
		}},
		{"tcp ipv6", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, `listen = "tcp://[::1]:7070"`+"\n"+tlsSection)}, func(t *testing.T, c *signerconf.Config) {
			if c.Signer.Listen != "tcp://[::1]:7070" {
				t.Errorf("listen = %+v", c.Signer.Listen)
			}
		}},
		{"tcp host name", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, `listen = "tcp://signer.cold:7070"`+"\n"+tlsSection)}, nil},
		{"unix path", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, `listen = "unix:///tmp/s.sock"`)}, func(t *testing.T, c *signerconf.Config) {
			if c.Signer.Listen != "unix:///tmp/s.sock" {
				t.Errorf("listen = %+v", c.Signer.Listen)
			}
		}},
		{"durations and level", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, "max_intent_ttl = \"1h30m\"\nshutdown_grace = \"250ms\"\nlog_level = \"debug\"")}, func(t *testing.T, c *signerconf.Config) {
			if c.Signer.MaxIntentTTL != 90*time.Minute || c.Signer.ShutdownGrace != 250*time.Millisecond || c.Signer.LogLevel != "debug" {
				t.Errorf("signer = %+v", c.Signer)
			}
		}},
		{"metrics", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, `metrics = "/var/lib/node_exporter/textfile/signer.prom"`)}, func(t *testing.T, c *signerconf.Config) {
			if c.Signer.Metrics != "/var/lib/node_exporter/textfile/signer.prom" {
				t.Errorf("metrics = %q", c.Signer.Metrics)
			}
		}},
		{"health_listen unix", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, `health_listen = "unix:///run/nanokms/signer-health.sock"`)}, func(t *testing.T, c *signerconf.Config) {
			if c.Signer.HealthListen != "unix:///run/nanokms/signer-health.sock" {
				t.Errorf("health_listen = %q", c.Signer.HealthListen)
			}
		}},
		{"health_listen localhost", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, `health_listen = "127.0.0.1:9465"`)}, func(t *testing.T, c *signerconf.Config) {
			if c.Signer.HealthListen != "127.0.0.1:9465" {
				t.Errorf("health_listen = %q", c.Signer.HealthListen)
			}
		}},
		{"health_listen absent", nil, func(t *testing.T, c *signerconf.Config) {
			if c.Signer.HealthListen != "" {
				t.Errorf("health_listen = %q, want none by default", c.Signer.HealthListen)
			}
		}},
		{"metrics empty", []edit{insertAfter(`state = "/var/lib/nanokms/signer.db"`, `metrics = ""`)}, func(t *testing.T, c *signerconf.Config) {
			if c.Signer.Metrics != "" {
				t.Errorf("metrics = %q", c.Signer.Metrics)
			}
		}},
		{"uri, module_params, wallet_dir", []edit{replace(`label = "signer"`, "uri = \"pkcs11:token=NSS%20Certificate%20DB?module-path=/usr/lib/softhsm/libsofthsm2.so\"\nmodule_params = \"configdir='sql:/var/lib/nanokms/nss' certPrefix='' keyPrefix='' secmod='secmod.db' flags=\"\nwallet_dir = \"/var/lib/nanokms/wallets\"")}, func(t *testing.T, c *signerconf.Config) {
			if c.Token.Label != "" || c.Token.URI != "pkcs11:token=NSS%20Certificate%20DB?module-path=/usr/lib/softhsm/libsofthsm2.so" ||
				c.Token.ModuleParams != "configdir='sql:/var/lib/nanokms/nss' certPrefix='' keyPrefix='' secmod='secmod.db' flags=" || c.Token.WalletDir != "/var/lib/nanokms/wallets" {
				t.Errorf("token = %+v", c.Token)
			}
		}},
		{"reload_module off", []edit{insertAfter(`pin_file = "/etc/nanokms/pin"`, `reload_module = false`)}, func(t *testing.T, c *signerconf.Config) {
			if c.Token.ReloadModule {
				t.Error("reload_module = false was not read")
			}
		}},
		{"postgres, dsn_file", withPG(`dsn_file = "/etc/nanokms/signers.dsn"`), func(t *testing.T, c *signerconf.Config) {
			p := c.Signer.Postgres
			if c.Signer.State != "" || p == nil || *p != (signerconf.Postgres{DSNFile: "/etc/nanokms/signers.dsn", OpTimeout: signerconf.DefaultPGOpTimeout, MaxConns: signerconf.DefaultPGMaxConns}) {
				t.Errorf("signer = %+v, postgres = %+v", c.Signer, p)
			}
		}},
		{"postgres, dsn_env and tuning", withPG("dsn_env = \"NANOKMS_SIGNERS_DSN\"\nop_timeout = \"2500ms\"\nmax_conns = 256"), func(t *testing.T, c *signerconf.Config) {
			if p := c.Signer.Postgres; p == nil || *p != (signerconf.Postgres{DSNEnv: "NANOKMS_SIGNERS_DSN", OpTimeout: 2500 * time.Millisecond, MaxConns: 256}) {
				t.Errorf("postgres = %+v", p)
			}
		}},
		{"postgres, empty dsn_env beside dsn_file", withPG("dsn_file = \"/etc/nanokms/signers.dsn\"\ndsn_env = \"\""), nil},
		{"postgres and tcp", append(withPG(`dsn_file = "/etc/nanokms/signers.dsn"`), insertAfter("[signer]", tcpListen), insertAfter(`dsn_file = "/etc/nanokms/signers.dsn"`, tlsSection)), func(t *testing.T, c *signerconf.Config) {
			if c.Signer.TLS == nil || c.Signer.Postgres == nil || c.Signer.Postgres.DSNFile != "/etc/nanokms/signers.dsn" {
				t.Errorf("signer = %+v", c.Signer)
			}
		}},
		{"pool size bounds", []edit{insertAfter(`pin_file = "/etc/nanokms/pin"`, `pool_size = 64`)}, func(t *testing.T, c *signerconf.Config) {
			if c.Token.PoolSize != 64 {
				t.Errorf("pool_size = %d", c.Token.PoolSize)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := MustParse(t, conftest.Apply(t, MustReadFile(t, "minimal.toml"), tt.edits...))
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestValidationErrors(t *testing.T) {
	const state = `state = "/var/lib/nanokms/signer.db"`
	const pinFile = `pin_file = "/etc/nanokms/pin"`
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
		{"health_listen tcp://", []edit{insertAfter(state, `health_listen = "tcp://127.0.0.1:9465"`)}, "signer.health_listen", "must be host:port or unix:///absolute/path"},
		{"health_listen relative socket", []edit{insertAfter(state, `health_listen = "unix://health.sock"`)}, "signer.health_listen", "three slashes"},
		{"health_listen empty", []edit{insertAfter(state, `health_listen = ""`)}, "signer.health_listen", "must not be empty"},
		{"health_listen the gRPC socket", []edit{insertAfter(state, "listen = \"unix:///run/nanokms/s.sock\"\nhealth_listen = \"unix:///run/nanokms/s.sock\"")}, "signer.health_listen", "must differ from signer.listen"},
		{"health_listen the gRPC port", tcp(insertAfter(state, `health_listen = "10.0.7.2:7070"`)), "signer.health_listen", "must differ from signer.listen"},
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

		// The state store: exactly one.
		{"state and postgres", []edit{insertAfter(state, "[signer.postgres]\ndsn_file = \"/etc/nanokms/signers.dsn\"")}, "signer.postgres", "not allowed together with signer.state: the state is either a bbolt file or the signers' PostgreSQL database"},
		{"neither state nor postgres", []edit{replace(state, `listen = "unix:///run/s.sock"`)}, "signer.state", "required (or [signer.postgres], the signers' PostgreSQL database)"},
		{"postgres empty", withPG(""), "signer.postgres.dsn_file", "required (or signer.postgres.dsn_env): give exactly one connection string source"},
		{"postgres dsn both", withPG("dsn_file = \"/etc/nanokms/signers.dsn\"\ndsn_env = \"DSN\""), "signer.postgres.dsn_env", "not allowed together with signer.postgres.dsn_file: give exactly one connection string source"},
		{"postgres dsn_file relative", withPG(`dsn_file = "signers.dsn"`), "signer.postgres.dsn_file", "absolute path"},
		{"postgres dsn_file not a string", withPG(`dsn_file = 1`), "signer.postgres.dsn_file", "must be a string, not an integer"},
		{"postgres dsn_env bad name", withPG(`dsn_env = "host=/run/postgresql"`), "signer.postgres.dsn_env", `"host=/run/postgresql" is not an environment variable name`},
		{"postgres op_timeout zero", withPG("dsn_env = \"DSN\"\nop_timeout = \"0s\""), "signer.postgres.op_timeout", "must be positive"},
		{"postgres op_timeout no unit", withPG("dsn_env = \"DSN\"\nop_timeout = \"10\""), "signer.postgres.op_timeout", "must be a duration"},
		{"postgres max_conns 0", withPG("dsn_env = \"DSN\"\nmax_conns = 0"), "signer.postgres.max_conns", "must be from 1 to 256, not 0"},
		{"postgres max_conns 257", withPG("dsn_env = \"DSN\"\nmax_conns = 257"), "signer.postgres.max_conns", "must be from 1 to 256, not 257"},
		{"postgres a string", []edit{replace(state, `postgres = "host=/run/postgresql"`)}, "signer.postgres", "must be a table"},

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

		{"a policy section", []edit{replace(`name = "hot"`, `name = "hot wallet"`)}, "groups[0].name", "lowercase letters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, conftest.Apply(t, MustReadFile(t, "minimal.toml"), tt.edits...), tt.key, tt.msg)
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
		{"signer.postgres", withPG("dsn_env = \"DSN\"\ndsn = \"host=/run/postgresql\""), "signer.postgres.dsn", "unknown key"},
		{"token", []edit{insertAfter(`label = "signer"`, `pin = "1234"`)}, "token.pin", "unknown key"},
		{"approvers", []edit{insertAfter(`name = "bob"`, `email = "bob@example.com"`)}, "approvers[1].email", "unknown key"},
		{"groups.tiers", []edit{replace("quorum = 2\n", "quorom = 2\n")}, "groups[0].tiers[1].quorom", "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, conftest.Apply(t, MustReadFile(t, "minimal.toml"), tt.edits...), tt.key, tt.msg)
		})
	}
}

func TestShapeErrors(t *testing.T) {
	tests := []struct {
		name, src, key, msg string
	}{
		{"signer a string", `signer = "x"`, "signer", "must be a table ([signer]), not a string"},
		{"signer an array of tables", "[[signer]]\nstate = \"/x\"", "signer", "must be a table ([signer]), not an array"},
		{"tls a string", "[signer]\ntls = \"on\"", "signer.tls", "must be a table"},
		{"token an array", "token = [1]", "token", "must be a table ([token]), not an array"},
		{"groups a number", `groups = 5`, "groups", "must be an array of tables ([[groups]]), not an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, tt.src, tt.key, tt.msg)
		})
	}
}

func TestSyntaxError(t *testing.T) {
	for _, src := range []string{"[signer\nstate = 1", "a = \"unterminated", "a = 1\na = 2", "\x00"} {
		_, err := signerconf.Parse([]byte(src))
		if err == nil {
			t.Fatalf("Parse(%q) succeeded", src)
		}
		errs := conftest.Errors(t, err)
		if len(errs) != 1 || errs[0].Key != "" || !strings.Contains(errs[0].Msg, "TOML syntax error at line") {
			t.Errorf("Parse(%q) = %v", src, err)
		}
	}
}

// TestAllErrorsReported checks that problems in several sections are all
// returned, joined, each a *conffile.Error.
func TestAllErrorsReported(t *testing.T) {
	src := MustReadFile(t, "minimal.toml")
	src = replace(`state = "/var/lib/nanokms/signer.db"`, `state = "rel"`+"\nbogus = 1")(t, src)
	src = replace(`label = "signer"`, "")(t, src)
	src = replace("quorum = 2", "quorum = 0")(t, src)
	_, err := signerconf.Parse([]byte(src))
	keys := map[string]bool{}
	for _, e := range conftest.Errors(t, err) {
		keys[e.Key] = true
	}
	for _, k := range []string{"signer.bogus", "signer.state", "token.label", "groups[0].tiers[1].quorum"} {
		if !keys[k] {
			t.Errorf("no error at %s in:\n%v", k, err)
		}
	}
	// The order is stable.
	_, err2 := signerconf.Parse([]byte(src))
	if err.Error() != err2.Error() {
		t.Errorf("errors differ between runs:\n%v\n--\n%v", err, err2)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	t.Run("missing file", func(t *testing.T) {
		_, err := signerconf.Load(filepath.Join(dir, "absent.toml"))
		if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "signerconf: reading the signer configuration: open ") || !strings.Contains(err.Error(), "absent.toml") {
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
		_, err := signerconf.Load(path)
		errs := conftest.Errors(t, err)
		if len(errs) != 2 {
			t.Fatalf("want 2 errors, got %v", err)
		}
		for _, e := range errs {
			if e.File != path || !strings.HasPrefix(e.Error(), path+":") {
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
	_, err := signerconf.Parse([]byte(src))
	want := map[string][2]int{"signer.state": {0, 0}, "token.pool_size": {9, 14}, "token.colour": {10, 10}}
	errs := conftest.Errors(t, err)
	if len(errs) != len(want) {
		t.Fatalf("errors: %v", err)
	}
	for _, e := range errs {
		if w, ok := want[e.Key]; !ok || e.Line != w[0] || e.Col != w[1] {
			t.Errorf("%s at %d:%d, want %v", e.Key, e.Line, e.Col, w)
		}
	}
}

// TestErrors checks that every problem of the two service sections is
// reported at once, each at its key and, where the key is in the file,
// its line; and that none says "policy:", as they did when package policy
// read the file.
func TestErrors(t *testing.T) {
	src := conftest.Apply(t, MustReadFile(t, "minimal.toml"),
		replace(`label = "signer"`, "label = \"signer\"\nuri = \"pkcs11:token=signer\"\npool_size = 0\npin_env = \"PIN\""),
		replace(`state = "/var/lib/nanokms/signer.db"`, "state = \"signer.db\"\nlisten = \"tcp://10.0.7.2:7070\"\nlog_level = \"loud\""))
	_, err := signerconf.Parse([]byte(src))
	want := map[string]struct {
		line int
		msg  string
	}{
		"signer.state":     {3, "absolute path"},
		"signer.log_level": {5, `not "loud"`},
		"signer.tls":       {0, "required when signer.listen is tcp://"},
		"token.uri":        {10, "not allowed together with token.label"},
		"token.pin_env":    {12, "exactly one PIN source"},
		"token.pool_size":  {11, "must be from 1 to 64"},
	}
	errs := conftest.Errors(t, err)
	if len(errs) != len(want) {
		t.Fatalf("errors: %v", err)
	}
	for _, e := range errs {
		w, ok := want[e.Key]
		if !ok || e.Line != w.line || !strings.Contains(e.Msg, w.msg) || strings.Contains(e.Error(), "policy") {
			t.Errorf("%s (line %d): %s; want line %d, %q", e.Key, e.Line, e.Error(), w.line, w.msg)
		}
	}
}
