package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/internal/conffile/conftest"
	"github.com/nanokms/nanokms/nano"
)

// The policy sections are read by package signerconf as part of the
// signer's file; these tests decode them alone (a Config is a
// configuration package conffile reads), and signerconf's test the file.

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

// parse decodes the policy sections src.
func parse(src string) (*Config, error) {
	cfg, errs := conffile.Decode[Config]([]byte(src))
	if len(errs) > 0 {
		return nil, conffile.Join(errs)
	}
	return cfg, nil
}

// MustParse parses src and fails the test on any error.
func MustParse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, err := parse(src)
	if err != nil {
		t.Fatalf("parse: %v", err)
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
	cfg, err := parse(src)
	if cfg != nil {
		t.Errorf("parse returned a Config with an error")
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

const secondGroup = `
[[groups]]
name = "cold"
accounts = ["` + acctCold + `"]

[[groups.tiers]]
quorum = 1
approvers = ["bob"]
`

func TestDefaults(t *testing.T) {
	cfg := MustParse(t, MustReadFile(t, "minimal.toml"))
	if len(cfg.Epoch.Signers) != 0 || cfg.Epoch.Signers != nil {
		t.Errorf("epoch = %+v", cfg.Epoch)
	}
	g := cfg.Groups[0]
	if g.MaxSend != nil || g.Velocity24h != nil || g.ReceiveAutomatic || g.Destinations != nil || g.Representatives != nil || g.Accounts != nil {
		t.Errorf("group = %+v", g)
	}
	if cfg := MustParse(t, ""); cfg.Groups != nil || cfg.Approvers != nil {
		t.Errorf("an empty policy: %+v", cfg)
	}
}

// TestValid covers accepted variants of the minimal policy.
func TestValid(t *testing.T) {
	tests := []struct {
		name  string
		edits []edit
		check func(t *testing.T, c *Config)
	}{
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
	const wallets = `wallets = ["treasury"]`
	tierAlice := "up_to = \"10 XNO\"\nquorum = 1\napprovers = [\"alice\"]"
	tierBoth := "quorum = 2\napprovers = [\"alice\", \"bob\"]"

	tests := []struct {
		name     string
		edits    []edit
		key, msg string
	}{
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
		{"top level", []edit{conftest.Prepend("foo = 1")}, "foo", "unknown key"},
		{"top-level table", []edit{add("[metrics]\nlisten = \"x\"")}, "metrics", "unknown key"},
		{"approvers", []edit{insertAfter(`name = "bob"`, `email = "bob@example.com"`)}, "approvers[1].email", "unknown key"},
		{"groups", []edit{insertAfter(`wallets = ["treasury"]`, `max_sends = "1 XNO"`)}, "groups[0].max_sends", "unknown key"},
		{"groups.tiers", []edit{replace("quorum = 2\n", "quorom = 2\n")}, "groups[0].tiers[1].quorom", "unknown key"},
		{"second group's tiers", []edit{add(strings.Replace(secondGroup, "quorum = 1", "quorum = 1\nup_too = \"1 XNO\"", 1))}, "groups[1].tiers[0].up_too", "unknown key"},
		{"inline tiers", []edit{replace("[[groups.tiers]]\nup_to = \"10 XNO\"\nquorum = 1\napprovers = [\"alice\"]\n\n[[groups.tiers]]\nquorum = 2\napprovers = [\"alice\", \"bob\"]\n",
			"tiers = [{quorum = 1, approvers = [\"alice\"], x = 1}]\n")}, "groups[0].tiers[0].x", "unknown key"},
		{"groups.tier", []edit{add("[[groups.tier]]\nquorum = 1")}, "groups[0].tier", "unknown key"},
		{"the signer's sections", []edit{conftest.Prepend("[signer]\nstate = \"/x\"")}, "signer", "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, conftest.Apply(t, MustReadFile(t, "minimal.toml"), tt.edits...), tt.key, tt.msg)
		})
	}
}

// TestNoUnknownKeyInsideValue checks that a table given where a string is
// expected is one type error, not also unknown keys.
func TestNoUnknownKeyInsideValue(t *testing.T) {
	src := replace(`wallets = ["treasury"]`, `wallets = [{name = "treasury"}]`)(t, MustReadFile(t, "minimal.toml"))
	_, err := parse(src)
	errs := conftest.Errors(t, err)
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
		{"epoch a string", `epoch = "x"`, "epoch", "must be a table ([epoch]), not a string"},
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
