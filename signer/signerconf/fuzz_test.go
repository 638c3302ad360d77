package signerconf_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nanokms/nanokms/internal/conffile/conftest"
	"github.com/nanokms/nanokms/nano"
	nanokmsv1 "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/policy"
	"github.com/nanokms/nanokms/signer/signerconf"
)

// FuzzParse checks that Parse never panics, that it returns either a
// Config or only *conffile.Error values, and that the policy of a Config
// it accepts can be evaluated.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.toml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"signer = 5",
		"[[signer]]",
		"[signer]\nState = 1\n[signer.tls]\nx = {a = [1, {b = 2}]}",
		"[signer]\nlisten = \"tcp://h:1\"\n[signer.tls]\ncert = \"/c\"\nkey = \"/k\"\nkey_label = \" x\"\nclient_ca = \"/a\"\nallowed_identities = [\"r\"]",
		"[[groups]]\nwallets = [{a = 1}]\ntiers = [1, {quorum = 1}]\n[[groups.tiers]]\nup_to = \"1 XNO\"",
		"[token]\npool_size = 9223372036854775807\npin_env = \"\"\npin_file = 1.5",
		"[token]\nuri = \"pkcs11:token=a?pin-source=/p\"\nlabel = \"\"\nmodule = \"/m.so\"\npin_env = \"P\"",
		"a.b.c = 1\n\"a\".\"b\" = 2",
		"[signer]\nlisten = \"unix:///r/s\"\nhealth_listen = \"unix:///r//s\"",
		"[signer]\nlisten = \"tcp://0.0.0.0:1\"\nhealth_listen = \"localhost:1\"",
		"[signer]\nhealth_listen = \"unix://\"",
		"[signer]\nstate = \"/s\"\npostgres = {dsn_env = \"D\", max_conns = 0, op_timeout = 5}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := signerconf.Parse(data)
		if err != nil {
			if cfg != nil {
				t.Fatal("Parse returned a Config and an error")
			}
			conftest.Errors(t, err)
			return
		}
		if cfg == nil || (cfg.Signer.State == "") == (cfg.Signer.Postgres == nil) || cfg.Signer.Listen == "" || cfg.Token.Module == "" || (cfg.Token.PINFile == "") == (cfg.Token.PINEnv == "") {
			t.Fatalf("config %+v", cfg)
		}
		if p := cfg.Signer.Postgres; p != nil && ((p.DSNFile == "") == (p.DSNEnv == "") || p.OpTimeout <= 0 || p.MaxConns < 1 || p.MaxConns > signerconf.MaxPGMaxConns) {
			t.Fatalf("postgres %+v", p)
		}
		for _, g := range cfg.Policy.Groups {
			if len(g.Tiers) == 0 || g.Tiers[len(g.Tiers)-1].UpTo != nil {
				t.Fatalf("group %q: tiers %+v", g.Name, g.Tiers)
			}
			var account nano.PublicKey
			if len(g.Accounts) > 0 {
				account = g.Accounts[0]
			}
			for _, kind := range []nanokmsv1.IntentKind{nanokmsv1.IntentKind_INTENT_KIND_SEND, nanokmsv1.IntentKind_INTENT_KIND_RECEIVE, nanokmsv1.IntentKind_INTENT_KIND_CHANGE} {
				err := cfg.Policy.Evaluate(policy.Request{Account: account, Wallet: "treasury", Kind: kind, Amount: nano.MaxAmount, Sent24h: nano.MaxAmount, RepresentativeChanges: true})
				if _, isViolation := err.(*policy.Violation); err != nil && !isViolation {
					t.Fatalf("Evaluate error %T", err)
				}
			}
		}
	})
}
