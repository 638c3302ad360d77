package signerconf

import (
	"errors"
	"time"

	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/internal/p11uri"
	"github.com/nanokms/nanokms/signer/policy"
)

// Defaults and bounds of the [signer] and [token] sections (the conf tags
// below say the same; the tests check that they agree).
const (
	// DefaultListen is where the signer serves when signer.listen is absent.
	DefaultListen = "unix:///run/nanokms/signer.sock"
	// DefaultMaxIntentTTL is signer.max_intent_ttl when absent.
	DefaultMaxIntentTTL = 24 * time.Hour
	// DefaultShutdownGrace is signer.shutdown_grace when absent.
	DefaultShutdownGrace = 10 * time.Second
	// DefaultPoolSize is token.pool_size when absent.
	DefaultPoolSize = 4
	// MaxPoolSize is the largest token.pool_size accepted.
	MaxPoolSize = 64
	// maxModuleParamsLen bounds token.module_params.
	maxModuleParamsLen = 4096
	// DefaultPGOpTimeout is signer.postgres.op_timeout when absent.
	DefaultPGOpTimeout = conffile.DefaultPGOpTimeout
	// DefaultPGMaxConns is signer.postgres.max_conns when absent.
	DefaultPGMaxConns = conffile.DefaultPGMaxConns
	// MaxPGMaxConns is the largest signer.postgres.max_conns accepted.
	MaxPGMaxConns = conffile.MaxPGMaxConns
)

// Config is the signer's configuration file, in TOML, documented key by
// key in docs/CONFIG.md: the service settings ([signer], [token]) and the
// signing policy ([epoch], [[approvers]], [[groups]], declared and checked
// by package policy). Its toml tags declare the file's keys; it is read
// strictly (see package conffile). A Config is not modified once loaded.
type Config struct {
	Signer Service       `toml:"signer"`
	Token  Token         `toml:"token"`
	Policy policy.Config `toml:",inline"`
}

// Service is the [signer] section: how the signer serves and where it
// keeps its state: exactly one of State (one signer, a bbolt file) and
// Postgres (any number of signers sharing one database).
type Service struct {
	// State is the absolute path of the bbolt state file; "" when the
	// state is on PostgreSQL.
	State string `toml:"state" conf:"abspath"`
	// Listen is where the gRPC API is served: "unix:///path", or
	// "tcp://host:port" (which needs TLS).
	Listen string `toml:"listen" conf:"default=unix:///run/nanokms/signer.sock"`
	// MaxIntentTTL: intents expiring further in the future are refused.
	MaxIntentTTL time.Duration `toml:"max_intent_ttl" conf:"default=24h"`
	// ShutdownGrace is how long in-flight requests get on shutdown.
	ShutdownGrace time.Duration `toml:"shutdown_grace" conf:"default=10s"`
	// Metrics is the absolute path of the file the signer writes its
	// metrics to, for the node_exporter textfile collector (it ends in
	// .prom); "" for none.
	Metrics string `toml:"metrics" conf:"abspath"`
	// LogLevel is "debug", "info", "warn" or "error".
	LogLevel string `toml:"log_level" conf:"default=info,oneof=debug|info|warn|error"`
	// HealthListen, when set, is where /healthz and /readyz are served
	// over HTTP (package health): "host:port" or "unix:///path"; "" for
	// none. It serves nothing else.
	HealthListen string `toml:"health_listen"`
	// TLS is the mutual TLS 1.3 setup ([signer.tls]); non-nil exactly
	// when Listen is TCP. Its KeyLabel names a key on the [token] token.
	TLS *conffile.TLSServer `toml:"tls"`
	// Postgres is the signers' shared PostgreSQL database
	// ([signer.postgres]); nil when the state is the bbolt file State.
	Postgres *Postgres `toml:"postgres"`
}

// Postgres is the [signer.postgres] section: the PostgreSQL database that
// holds the state of every signer configured with it (signer.PGStore),
// declared and checked as every role's [*.postgres] (conffile.Postgres).
// Past op_timeout a request fails with STATE_STORE_UNAVAILABLE, and
// nothing signed is released.
type Postgres = conffile.Postgres

// Token is the [token] section: the PKCS#11 token holding the master
// key. Exactly one of PINFile and PINEnv is non-empty, and exactly one of
// Label and URI.
type Token struct {
	Module       string `toml:"module" conf:"required,abspath"` // the PKCS#11 library
	ModuleParams string `toml:"module_params"`                  // the module's initialisation parameters (NSS: configdir=…), or ""
	Label        string `toml:"label"`                          // the token's label, 1 to 32 bytes
	URI          string `toml:"uri"`                            // a PKCS#11 URI (RFC 7512) naming the token, checked by p11uri.Parse
	WalletDir    string `toml:"wallet_dir" conf:"abspath"`      // the wallet directory, or "" (wallets on the token)
	PINFile      string `toml:"pin_file" conf:"abspath"`        // a file holding the user PIN
	PINEnv       string `toml:"pin_env"`                        // an environment variable holding the user PIN
	PoolSize     int    `toml:"pool_size" conf:"default=4"`     // number of token sessions, 1 to MaxPoolSize
	// ReloadModule lets the signer load a fresh instance of the module
	// when the one in use no longer sees a token that went away and came
	// back (hsm.Config.NoModuleReload, inverted).
	ReloadModule bool `toml:"reload_module" conf:"default=true"`
}

// Load reads the signer's configuration file at path and parses it with
// Parse.
//
// An error reading the file is returned wrapped (it names the file;
// errors.Is(err, fs.ErrNotExist) works). A problem with its contents is
// returned as Parse returns it, with File set to path in every
// *conffile.Error.
func Load(path string) (*Config, error) {
	return conffile.Load[Config](path, "signerconf", "signer")
}

// Parse parses and validates the contents of a signer configuration file.
//
// On success it returns a Config with every default applied. Otherwise it
// returns a nil Config and every problem it found: a single
// *conffile.Error when there is one, else an error made by errors.Join
// whose Unwrap() []error returns only *conffile.Error values, in a stable
// order. A TOML syntax error or a value of the wrong structure (a table
// where a value is expected, or the reverse) stops parsing at that point;
// every other problem is collected. It never panics.
func Parse(data []byte) (*Config, error) {
	cfg, errs := conffile.Decode[Config](data)
	if len(errs) > 0 {
		return nil, conffile.Join(errs)
	}
	return cfg, nil
}

// CheckConf checks [signer]: exactly one state store, where it serves
// (with TLS exactly when over TCP, its key a file or on the [token]
// token), the metrics file and the health listener (not where the gRPC
// API is).
func (s *Service) CheckConf(c *conffile.Checker) {
	c.StateStore(&s.State, &s.Postgres, "the signers' PostgreSQL database")
	listen := c.Endpoint(&s.Listen, conffile.Listen)
	c.MetricsFile(&s.Metrics)
	if health := c.HTTPListen(&s.HealthListen); health.Overlaps(listen) {
		c.FailAt(&s.HealthListen, "must differ from %s (%s): the health endpoints have a listener of their own", c.Key(&s.Listen), s.Listen)
	}
	if c.NeedsTLS(&s.TLS, &s.Listen, "the signer serves TCP") {
		s.TLS.Check(c, "token")
	}
}

// CheckConf checks [token]: the token named one way (a label or a URI
// that agrees with the module), the module's parameters, exactly one PIN
// source and the pool's size.
func (t *Token) CheckConf(c *conffile.Checker) {
	switch {
	case c.Failed(&t.Label) || c.Failed(&t.URI):
	case t.Label != "" && t.URI != "":
		c.FailAt(&t.URI, "not allowed together with %s: name the token one way", c.Key(&t.Label))
	case t.Label == "" && t.URI == "":
		c.FailAt(&t.Label, "required (or %s)", c.Key(&t.URI))
	case t.Label != "":
		c.Check(&t.Label, conffile.CheckTokenLabel)
	default:
		t.checkURI(c)
	}
	if len(t.ModuleParams) > maxModuleParamsLen {
		c.FailAt(&t.ModuleParams, "longer than %d bytes", maxModuleParamsLen)
	}
	c.PINSource(&t.PINFile, &t.PINEnv)
	c.IntRange(&t.PoolSize, 1, MaxPoolSize)
}

// checkURI checks token.uri: it names a token, takes no PIN, and names no
// other module than token.module.
func (t *Token) checkURI(c *conffile.Checker) {
	u, err := p11uri.Parse(t.URI)
	var se *p11uri.SyntaxError
	switch {
	case errors.As(err, &se):
		c.FailAt(&t.URI, "%s", se.Describe())
	case err != nil:
		c.FailAt(&t.URI, "%v", err)
	case !u.HasTokenAttrs():
		c.FailAt(&t.URI, "names no token (give token=, serial=, or slot-id=)")
	default:
		if _, ok := u.GetQuery(p11uri.PINSource); ok {
			c.FailAt(&t.URI, "pin-source is not used: the PIN comes from %s or %s", c.Key(&t.PINFile), c.Key(&t.PINEnv))
		} else if mp, ok := u.GetQuery(p11uri.ModulePath); ok && mp != t.Module {
			c.FailAt(&t.URI, "module-path %q disagrees with %s", mp, c.Key(&t.Module))
		}
	}
}
