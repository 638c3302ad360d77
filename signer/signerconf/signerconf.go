package signerconf

import (
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/internal/p11uri"
)

// Defaults and bounds of the [signer] and [token] sections.
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
)

const (
	// maxTokenLabelLen is the size of a PKCS#11 token label.
	maxTokenLabelLen = 32
)

var envVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Service is the [signer] section: how the signer serves and where it
// keeps its state.
type Service struct {
	// State is the absolute path of the bbolt state file.
	State string
	// Listen is where the gRPC API is served.
	Listen conffile.Endpoint
	// MaxIntentTTL: intents expiring further in the future are refused.
	MaxIntentTTL time.Duration
	// ShutdownGrace is how long in-flight requests get on shutdown.
	ShutdownGrace time.Duration
	// Metrics is the absolute path of the file the signer writes its
	// metrics to, for the node_exporter textfile collector (it ends in
	// .prom); "" for none.
	Metrics string
	// LogLevel is one of slog.LevelDebug, LevelInfo, LevelWarn, LevelError.
	LogLevel slog.Level
	// TLS is the mutual TLS 1.3 setup ([signer.tls]); non-nil exactly
	// when Listen is TCP. Its KeyLabel names a key on the [token] token.
	TLS *conffile.TLSServer
}

// Token is the [token] section: the PKCS#11 token holding the master
// key. Exactly one of PINFile and PINEnv is non-empty, and exactly one of
// Label and URI.
type Token struct {
	Module       string // absolute path of the PKCS#11 library
	ModuleParams string // the module's initialisation parameters (NSS: configdir=…), or ""
	Label        string // the token's label, 1 to 32 bytes
	URI          string // a PKCS#11 URI (RFC 7512) naming the token, checked by p11uri.Parse
	WalletDir    string // absolute path of the wallet directory, or "" (wallets on the token)
	PINFile      string // absolute path of a file holding the user PIN
	PINEnv       string // name of an environment variable holding the user PIN
	PoolSize     int    // number of token sessions, 1 to MaxPoolSize
	// ReloadModule lets the signer load a fresh instance of the module
	// when the one in use no longer sees a token that went away and came
	// back (hsm.Config.NoModuleReload, inverted). Default true.
	ReloadModule bool
}

// ServiceSection is the shape of [signer]; Validate makes the Service.
type ServiceSection struct {
	State         conffile.Value             `toml:"state"`
	Listen        conffile.Value             `toml:"listen"`
	MaxIntentTTL  conffile.Value             `toml:"max_intent_ttl"`
	ShutdownGrace conffile.Value             `toml:"shutdown_grace"`
	Metrics       conffile.Value             `toml:"metrics"`
	LogLevel      conffile.Value             `toml:"log_level"`
	TLS           *conffile.TLSServerSection `toml:"tls"` // nil when [signer.tls] is absent
}

// TokenSection is the shape of [token]; Validate makes the Token.
type TokenSection struct {
	Module       conffile.Value `toml:"module"`
	ModuleParams conffile.Value `toml:"module_params"`
	Label        conffile.Value `toml:"label"`
	URI          conffile.Value `toml:"uri"`
	WalletDir    conffile.Value `toml:"wallet_dir"`
	PINFile      conffile.Value `toml:"pin_file"`
	PINEnv       conffile.Value `toml:"pin_env"`
	PoolSize     conffile.Value `toml:"pool_size"`
	ReloadModule conffile.Value `toml:"reload_module"`
}

// Validate checks [signer] at key; problems are recorded in c.
func (f *ServiceSection) Validate(c *conffile.Checker, key string) Service {
	s := Service{
		State:         c.AbsPath(key+".state", f.State),
		MaxIntentTTL:  c.Duration(key+".max_intent_ttl", f.MaxIntentTTL, DefaultMaxIntentTTL),
		ShutdownGrace: c.Duration(key+".shutdown_grace", f.ShutdownGrace, DefaultShutdownGrace),
	}

	if f.Listen.IsSet() {
		s.Listen = c.Endpoint(key+".listen", f.Listen, conffile.Listen)
	} else {
		ep, err := conffile.ParseEndpoint(DefaultListen, conffile.Listen)
		if err != nil {
			panic("signerconf: DefaultListen: " + err.Error())
		}
		s.Listen = ep
	}

	s.Metrics = c.OptAbsPath(key+".metrics", f.Metrics)
	if s.Metrics != "" && !strings.HasSuffix(s.Metrics, ".prom") {
		c.Fail(key+".metrics", "%q must end in .prom (the node_exporter textfile collector reads only *.prom files)", s.Metrics)
	}

	levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	s.LogLevel = levels[c.OneOf(key+".log_level", f.LogLevel, "info", "debug", "info", "warn", "error")]

	if c.NeedsTLS(key+".tls", key+".listen", s.Listen, f.TLS != nil, "the signer serves TCP") {
		s.TLS = f.TLS.Validate(c, key+".tls", "token")
	}
	return s
}

// Validate checks [token] at key; problems are recorded in c.
func (f *TokenSection) Validate(c *conffile.Checker, key string) Token {
	t := Token{
		Module:       c.AbsPath(key+".module", f.Module),
		ModuleParams: c.OptStr(key+".module_params", f.ModuleParams),
		Label:        c.OptStr(key+".label", f.Label),
		URI:          c.OptStr(key+".uri", f.URI),
		WalletDir:    c.OptAbsPath(key+".wallet_dir", f.WalletDir),
		PINFile:      c.OptAbsPath(key+".pin_file", f.PINFile),
		PINEnv:       c.OptStr(key+".pin_env", f.PINEnv),
	}
	switch {
	case c.FailedAt(key+".label") || c.FailedAt(key+".uri"):
	case t.Label != "" && t.URI != "":
		c.Fail(key+".uri", "not allowed together with %s.label: name the token one way", key)
	case t.Label == "" && t.URI == "":
		c.Fail(key+".label", "required (or %s.uri)", key)
	case len(t.Label) > maxTokenLabelLen:
		c.Fail(key+".label", "%q is longer than the %d bytes of a token label", t.Label, maxTokenLabelLen)
	case t.URI != "":
		if u, err := p11uri.Parse(t.URI); err != nil {
			var se *p11uri.SyntaxError
			if errors.As(err, &se) {
				c.Fail(key+".uri", "%s", se.Describe())
			} else {
				c.Fail(key+".uri", "%v", err)
			}
		} else if !u.HasTokenAttrs() {
			c.Fail(key+".uri", "names no token (give token=, serial=, or slot-id=)")
		} else if _, ok := u.GetQuery(p11uri.PINSource); ok {
			c.Fail(key+".uri", "pin-source is not used: the PIN comes from %s.pin_file or %s.pin_env", key, key)
		} else if mp, ok := u.GetQuery(p11uri.ModulePath); ok && mp != t.Module {
			c.Fail(key+".uri", "module-path %q disagrees with %s.module", mp, key)
		}
	}
	if len(t.ModuleParams) > 4096 {
		c.Fail(key+".module_params", "longer than 4096 bytes")
	}
	switch {
	case c.FailedAt(key+".pin_file") || c.FailedAt(key+".pin_env"):
		// Already reported.
	case t.PINEnv != "" && !envVarRE.MatchString(t.PINEnv):
		c.Fail(key+".pin_env", "%q is not an environment variable name", t.PINEnv)
	case t.PINFile != "" && t.PINEnv != "":
		c.Fail(key+".pin_env", "not allowed together with %s.pin_file: give exactly one PIN source", key)
	case t.PINFile == "" && t.PINEnv == "":
		c.Fail(key+".pin_file", "required (or %s.pin_env): give exactly one PIN source", key)
	}
	t.PoolSize = int(c.IntIn(key+".pool_size", f.PoolSize, DefaultPoolSize, 1, MaxPoolSize))
	t.ReloadModule = c.Bool(key+".reload_module", f.ReloadModule, true)
	return t
}
