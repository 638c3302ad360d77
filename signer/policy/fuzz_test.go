package policy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nanokms/nanokms/internal/conffile/conftest"
	"github.com/nanokms/nanokms/nano"
	nanokmsv1 "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// FuzzParse checks that decoding the policy sections never panics, that it
// returns either a Config or only *conffile.Error values, and that a
// Config it accepts can be evaluated. (signerconf's FuzzParse decodes the
// whole file.)
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
		"a.b.c = 1\n\"a\".\"b\" = 2",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parse(string(data))
		if err != nil {
			if cfg != nil {
				t.Fatal("parse returned a Config and an error")
			}
			conftest.Errors(t, err)
			return
		}
		if cfg == nil {
			t.Fatal("parse returned neither a Config nor an error")
		}
		for _, g := range cfg.Groups {
			if len(g.Tiers) == 0 || g.Tiers[len(g.Tiers)-1].UpTo != nil {
				t.Fatalf("group %q: tiers %+v", g.Name, g.Tiers)
			}
			var account nano.PublicKey
			if len(g.Accounts) > 0 {
				account = g.Accounts[0]
			}
			for _, kind := range []nanokmsv1.IntentKind{nanokmsv1.IntentKind_INTENT_KIND_SEND, nanokmsv1.IntentKind_INTENT_KIND_RECEIVE, nanokmsv1.IntentKind_INTENT_KIND_CHANGE} {
				for _, amount := range []nano.Amount{{}, nano.AmountFromUint64(1), nano.MaxAmount} {
					err := cfg.Evaluate(Request{Account: account, Wallet: "treasury", Kind: kind, Amount: amount, Sent24h: amount, RepresentativeChanges: true})
					if _, isViolation := err.(*Violation); err != nil && !isViolation {
						t.Fatalf("Evaluate error %T", err)
					}
				}
			}
		}
	})
}
