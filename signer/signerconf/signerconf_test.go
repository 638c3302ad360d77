package signerconf_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/signer/signerconf"
)

// file is the part of the signer's file this package declares.
type file struct {
	Signer signerconf.ServiceSection `toml:"signer"`
	Token  signerconf.TokenSection   `toml:"token"`
}

const minimal = `
[signer]
state = "/var/lib/nanokms/signer.db"

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "signer"
pin_file = "/etc/nanokms/pin"
`

func parse(t *testing.T, src string) (signerconf.Service, signerconf.Token, []*conffile.Error) {
	t.Helper()
	var f file
	c, ok := conffile.Parse([]byte(src), &f)
	if !ok {
		return signerconf.Service{}, signerconf.Token{}, c.Errors()
	}
	s := f.Signer.Validate(c, "signer")
	tok := f.Token.Validate(c, "token")
	return s, tok, c.Errors()
}

func TestDefaults(t *testing.T) {
	s, tok, errs := parse(t, minimal)
	if len(errs) > 0 {
		t.Fatalf("errors: %v", conffile.Join(errs))
	}
	if s.Listen.String() != signerconf.DefaultListen || s.MaxIntentTTL != signerconf.DefaultMaxIntentTTL ||
		s.ShutdownGrace != signerconf.DefaultShutdownGrace || s.LogLevel != slog.LevelInfo || s.TLS != nil {
		t.Errorf("signer = %+v", s)
	}
	if tok != (signerconf.Token{Module: "/usr/lib/softhsm/libsofthsm2.so", Label: "signer", PINFile: "/etc/nanokms/pin", PoolSize: signerconf.DefaultPoolSize, ReloadModule: true}) {
		t.Errorf("token = %+v", tok)
	}
}

func TestTLSKeyOnTheToken(t *testing.T) {
	src := strings.Replace(minimal, `state = "/var/lib/nanokms/signer.db"`, `state = "/var/lib/nanokms/signer.db"
listen = "tcp://10.0.7.2:7070"
[signer.tls]
cert = "/etc/nanokms/signer.crt"
key_label = "signer-tls"
client_ca = "/etc/nanokms/relay-ca.crt"
allowed_identities = ["relay.cold"]`, 1)
	s, _, errs := parse(t, src)
	if len(errs) > 0 {
		t.Fatalf("errors: %v", conffile.Join(errs))
	}
	if s.TLS == nil || s.TLS.KeyLabel != "signer-tls" || s.TLS.Key != "" || s.Listen.Network != "tcp" {
		t.Errorf("signer = %+v, tls %+v", s, s.TLS)
	}
}

// TestErrors checks that every problem of the two sections is reported at
// once, each at its key and, where the key is in the file, its line.
func TestErrors(t *testing.T) {
	src := strings.Replace(minimal, `label = "signer"`, `label = "signer"
uri = "pkcs11:token=signer"
pool_size = 0
pin_env = "PIN"`, 1)
	src = strings.Replace(src, `state = "/var/lib/nanokms/signer.db"`, `state = "signer.db"
listen = "tcp://10.0.7.2:7070"
log_level = "loud"`, 1)
	_, _, errs := parse(t, src)
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
	if len(errs) != len(want) {
		t.Fatalf("errors: %v", conffile.Join(errs))
	}
	for _, e := range errs {
		w, ok := want[e.Key]
		if !ok || e.Line != w.line || !strings.Contains(e.Msg, w.msg) {
			t.Errorf("%s (line %d): %s; want line %d, %q", e.Key, e.Line, e.Msg, w.line, w.msg)
		}
	}
}
