package conffile_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/nano"
)

// The shape the tests decode: a table, an optional table, an array of
// tables holding another, and a table nested two deep.
type testFile struct {
	Server serverSection  `toml:"server"`
	Extra  *extraSection  `toml:"extra"`
	Items  []itemSection  `toml:"items"`
	Outer  *outerSection  `toml:"outer"`
	Groups []groupSection `toml:"groups"`
}

type serverSection struct {
	Name     conffile.Value `toml:"name"`
	Port     conffile.Value `toml:"port"`
	Timeout  conffile.Value `toml:"timeout"`
	LogLevel conffile.Value `toml:"log_level"`
	Tags     conffile.Value `toml:"tags"`
}

type extraSection struct {
	Debug conffile.Value `toml:"debug"`
}

type itemSection struct {
	Name conffile.Value `toml:"name"`
	Subs []subSection   `toml:"subs"`
}

type subSection struct {
	Weight conffile.Value `toml:"weight"`
}

type outerSection struct {
	Inner innerSection `toml:"inner"`
}

type innerSection struct {
	Depth conffile.Value `toml:"depth"`
}

type groupSection struct {
	Name conffile.Value `toml:"name"`
}

// parseTest parses src into a testFile and returns what Parse returned.
func parseTest(t *testing.T, src string) (*testFile, []*conffile.Error, bool) {
	t.Helper()
	var f testFile
	c, ok := conffile.Parse([]byte(src), &f)
	return &f, c.Errors(), ok
}

// hasError reports whether errs holds an error at key whose message
// contains msg.
func hasError(errs []*conffile.Error, key, msg string) bool {
	for _, e := range errs {
		if e.Key == key && strings.Contains(e.Msg, msg) {
			return true
		}
	}
	return false
}

func dump(errs []*conffile.Error) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n\t%q: %s", e.Key, e.Msg)
	}
	return b.String()
}

func TestParseKeys(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		ok       bool // whether the shape is filled
		key, msg string
	}{
		{"top level", "nmae = 1", true, "nmae", "unknown key"},
		{"top-level table", "[metrics]\nlisten = 1", true, "metrics", "unknown key"},
		{"in a table", "[server]\nnam = \"x\"", true, "server.nam", "unknown key"},
		{"in an optional table", "[extra]\ndebugg = true", true, "extra.debugg", "unknown key"},
		{"two deep", "[outer.inner]\ndepht = 1", true, "outer.inner.depht", "unknown key"},
		{"two deep, unknown table", "[outer.inne]\ndepth = 1", true, "outer.inne", "unknown key"},
		{"dotted key", "[server]\nextra.deep = 1", true, "server.extra", "unknown key"},
		{"quoted key", "[server]\n\"a.b\" = 1", true, `server."a.b"`, "unknown key"},
		{"key with a space", "[server]\n\"a b\" = 1", true, `server."a b"`, "unknown key"},
		{"array of tables, first", "[[items]]\nname = \"a\"\nnaem = 1", true, "items[0].naem", "unknown key"},
		{"array of tables, third", "[[items]]\n[[items]]\n[[items]]\nx = 1", true, "items[2].x", "unknown key"},
		{"nested array of tables", "[[items]]\n[[items]]\n[[items.subs]]\n[[items.subs]]\nwieght = 1", true, "items[1].subs[1].wieght", "unknown key"},
		{"inline array of tables", "[[items]]\nsubs = [{weight = 1}, {weight = 2, w = 3}]", true, "items[0].subs[1].w", "unknown key"},
		{"array of tables inside a table", "[outer]\n[[outer.inner.x]]", true, "outer.inner.x", "unknown key"},
		{"case near miss", "[server]\nName = \"x\"", true, "server.Name", `unknown key (keys are case-sensitive: did you mean "name"?)`},
		{"case near miss, table", "[Server]\nname = \"x\"", true, "Server", `did you mean "server"?`},
		{"case near miss, in an array", "[[items]]\nNAME = \"x\"", true, "items[0].NAME", `did you mean "name"?`},
		{"case near miss, deep", "[outer.inner]\nDepth = 1", true, "outer.inner.Depth", `did you mean "depth"?`},

		{"table a value", `server = "x"`, false, "server", "must be a table ([server]), not a string"},
		{"table an array of tables", "[[server]]", false, "server", "must be a table ([server]), not an array"},
		{"nested table an integer", "[outer]\ninner = 1", false, "outer.inner", "must be a table ([outer.inner]), not an integer"},
		{"array of tables a table", "[items]\nname = 1", false, "items", "must be an array of tables ([[items]]), not a table"},
		{"array of tables of numbers", "items = [1, 2]", false, "items", "must be an array of tables ([[items]]), not an array"},
		{"nested array of tables a table", "[[items]]\n[items.subs]", false, "items[0].subs", "must be an array of tables ([[items[0].subs]]), not a table"},
		{"nested array of tables a boolean", "[[items]]\n[[items]]\nsubs = true", false, "items[1].subs", "not a boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, ok := parseTest(t, tt.src)
			if ok != tt.ok {
				t.Errorf("ok = %v, want %v", ok, tt.ok)
			}
			if !hasError(errs, tt.key, tt.msg) {
				t.Errorf("no error at %q containing %q; got:%s", tt.key, tt.msg, dump(errs))
			}
			for _, e := range errs {
				if e.Key == "" || !strings.HasPrefix(e.Error(), place(e)+e.Key+": ") {
					t.Errorf("error %q does not start with its key", e.Error())
				}
			}
		})
	}
}

// TestParseUnknownKeysOnce checks that each unknown key is reported once,
// in a stable order (the file's, as the decoder's MetaData.Undecoded gives
// them), that keys inside a value are left to its reader, and
// that a table given where a value is expected is not also reported as
// unknown keys.
func TestParseUnknownKeysOnce(t *testing.T) {
	src := "zeta = 1\nalpha = 2\n[server]\nname = {first = \"a\"}\ntags = [{x = 1}]\nb = 1\na = 1\n[[items]]\nq = 1\n"
	_, errs, ok := parseTest(t, src)
	if !ok {
		t.Fatalf("not ok:%s", dump(errs))
	}
	var keys []string
	for _, e := range errs {
		keys = append(keys, e.Key)
	}
	want := []string{"zeta", "alpha", "server.b", "server.a", "items[0].q"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("keys = %q, want %q", keys, want)
	}
}

func TestParseValues(t *testing.T) {
	src := "[server]\nname = \"web\"\nport = 80\ntags = [\"a\", 1]\n[[items]]\nname = \"one\"\n[[items.subs]]\nweight = 1.5\n"
	f, errs, ok := parseTest(t, src)
	if !ok || len(errs) > 0 {
		t.Fatalf("ok %v:%s", ok, dump(errs))
	}
	if !f.Server.Name.IsSet() || f.Server.Name.Raw() != "web" || f.Server.Port.Raw() != int64(80) {
		t.Errorf("server = %+v", f.Server)
	}
	if f.Server.Timeout.IsSet() || f.Server.Timeout.Raw() != nil {
		t.Errorf("timeout = %+v", f.Server.Timeout)
	}
	if l := f.Server.Tags.List(); len(l) != 2 || f.Server.Name.List() != nil {
		t.Errorf("tags = %v", l)
	}
	if f.Extra != nil || f.Outer != nil {
		t.Errorf("absent tables decoded: %+v %+v", f.Extra, f.Outer)
	}
	if len(f.Items) != 1 || f.Items[0].Name.Raw() != "one" || len(f.Items[0].Subs) != 1 || f.Items[0].Subs[0].Weight.Raw() != 1.5 {
		t.Errorf("items = %+v", f.Items)
	}
}

// TestParseExactKeys checks that only the exactly spelt key fills a
// field: a case variant is an unknown key, not another spelling.
func TestParseExactKeys(t *testing.T) {
	for range 20 { // map order varies between runs
		f, errs, ok := parseTest(t, "[server]\nNAME = 1\nname = \"a\"\nnAme = 2\n[Extra]\ndebug = 1\n[[Items]]\nname = 3")
		if !ok || f.Server.Name.Raw() != "a" || f.Extra != nil || f.Items != nil {
			t.Fatalf("ok %v, server %+v, extra %+v, items %+v", ok, f.Server, f.Extra, f.Items)
		}
		if len(errs) != 4 || !hasError(errs, "server.NAME", `did you mean "name"`) || !hasError(errs, "server.nAme", `did you mean "name"`) ||
			!hasError(errs, "Extra", `did you mean "extra"`) || !hasError(errs, "Items", `did you mean "items"`) {
			t.Fatalf("errors:%s", dump(errs))
		}
	}
	f, _, _ := parseTest(t, "[server]\nName = \"x\"")
	if f.Server.Name.IsSet() {
		t.Errorf("Name decoded as name: %+v", f.Server.Name)
	}
}

func TestSyntaxError(t *testing.T) {
	for _, src := range []string{"[server\nname = 1", "a = \"unterminated", "a = 1\na = 2", "\x00", "[server]\n[server]"} {
		_, errs, ok := parseTest(t, src)
		if ok || len(errs) != 1 || errs[0].Key != "" || !strings.HasPrefix(errs[0].Msg, "TOML syntax error at line ") {
			t.Errorf("Parse(%q) = %v:%s", src, ok, dump(errs))
		}
	}
}

func TestParseBadShape(t *testing.T) {
	for _, shape := range []any{
		nil,
		testFile{},
		new(int),
		(*testFile)(nil),
		&struct{ A conffile.Value }{},
		&struct {
			a conffile.Value `toml:"a"`
		}{},
		&struct {
			A conffile.Value `toml:"a"`
			B conffile.Value `toml:"a"`
		}{},
		&struct {
			A string `toml:"a"`
		}{},
		&struct {
			A []conffile.Value `toml:"a"`
		}{},
		&struct {
			A struct {
				B int `toml:"b"`
			} `toml:"a"`
		}{},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Parse(%T) did not panic", shape)
				}
			}()
			conffile.Parse(nil, shape)
		}()
	}
}

// value returns the Value of src, written as a TOML value ("" for an
// absent key).
func value(t *testing.T, src string) conffile.Value {
	t.Helper()
	var f struct {
		V conffile.Value `toml:"v"`
	}
	doc := ""
	if src != "" {
		doc = "v = " + src
	}
	c, ok := conffile.Parse([]byte(doc), &f)
	if !ok || len(c.Errors()) > 0 {
		t.Fatalf("test bug: %q: %v", src, c.Err())
	}
	return f.V
}

const (
	genesis = "nano_3t6k35gi95xu6tergt6p69ck76ogmitsa8mnijtpxm9fkcm736xtoncuohr3"
	epochV2 = "nano_3qb6o6i1tkzr6jwr5s7eehfxwg9x6eemitdinbpi7u8bjjwsgqfj4wzser3x"
)

func mustAccount(s string) nano.PublicKey {
	k, err := nano.ParseAccount(s)
	if err != nil {
		panic(err)
	}
	return k
}

func xno(s string) *nano.Amount {
	a, err := nano.ParseAmountUnit(s)
	if err != nil {
		panic(err)
	}
	return &a
}

func TestCheckerReaders(t *testing.T) {
	type reader func(c *conffile.Checker, v conffile.Value) any
	notEven := func(pub nano.PublicKey) string {
		if pub[31]%2 == 0 {
			return "even"
		}
		return ""
	}
	g, e2 := mustAccount(genesis), mustAccount(epochV2)
	tests := []struct {
		name string
		src  string // "" for absent
		read reader
		want any
		msg  string // "" for no error; else the error's message contains msg
		at   string // the error's key when not "k"
	}{
		// Strings.
		{"Str", `"a"`, func(c *conffile.Checker, v conffile.Value) any { return c.Str("k", v) }, "a", "", ""},
		{"Str absent", "", func(c *conffile.Checker, v conffile.Value) any { return c.Str("k", v) }, "", "required", ""},
		{"Str empty", `""`, func(c *conffile.Checker, v conffile.Value) any { return c.Str("k", v) }, "", "must not be empty", ""},
		{"Str integer", `1`, func(c *conffile.Checker, v conffile.Value) any { return c.Str("k", v) }, "", "must be a string, not an integer", ""},
		{"Str table", `{a = 1}`, func(c *conffile.Checker, v conffile.Value) any { return c.Str("k", v) }, "", "must be a string, not a table", ""},
		{"Str date", `1979-05-27`, func(c *conffile.Checker, v conffile.Value) any { return c.Str("k", v) }, "", "must be a string, not a date/time", ""},
		{"OptStr absent", "", func(c *conffile.Checker, v conffile.Value) any { return c.OptStr("k", v) }, "", "", ""},
		{"OptStr empty", `""`, func(c *conffile.Checker, v conffile.Value) any { return c.OptStr("k", v) }, "", "", ""},
		{"OptStr float", `1.5`, func(c *conffile.Checker, v conffile.Value) any { return c.OptStr("k", v) }, "", "must be a string, not a float", ""},
		{"StrCheck", `"ab"`, func(c *conffile.Checker, v conffile.Value) any {
			return c.StrCheck("k", v, func(s string) string { return map[bool]string{true: "", false: "too long"}[len(s) < 3] })
		}, "ab", "", ""},
		{"StrCheck bad", `"abc"`, func(c *conffile.Checker, v conffile.Value) any {
			return c.StrCheck("k", v, func(s string) string { return map[bool]string{true: "", false: "too long"}[len(s) < 3] })
		}, "", "too long", ""},
		{"OneOf", `"b"`, func(c *conffile.Checker, v conffile.Value) any { return c.OneOf("k", v, "a", "a", "b", "c") }, "b", "", ""},
		{"OneOf default", "", func(c *conffile.Checker, v conffile.Value) any { return c.OneOf("k", v, "a", "a", "b", "c") }, "a", "", ""},
		{"OneOf required", "", func(c *conffile.Checker, v conffile.Value) any { return c.OneOf("k", v, "", "a", "b") }, "", `required: "a" or "b"`, ""},
		{"OneOf other", `"B"`, func(c *conffile.Checker, v conffile.Value) any { return c.OneOf("k", v, "a", "a", "b", "c") }, "a", `must be "a", "b" or "c", not "B"`, ""},
		{"OneOf boolean", `true`, func(c *conffile.Checker, v conffile.Value) any { return c.OneOf("k", v, "a", "a") }, "a", "must be a string, not a boolean", ""},

		// Paths.
		{"AbsPath", `"/etc/x"`, func(c *conffile.Checker, v conffile.Value) any { return c.AbsPath("k", v) }, "/etc/x", "", ""},
		{"AbsPath relative", `"etc/x"`, func(c *conffile.Checker, v conffile.Value) any { return c.AbsPath("k", v) }, "", `must be an absolute path, not "etc/x"`, ""},
		{"AbsPath absent", "", func(c *conffile.Checker, v conffile.Value) any { return c.AbsPath("k", v) }, "", "required", ""},
		{"OptAbsPath absent", "", func(c *conffile.Checker, v conffile.Value) any { return c.OptAbsPath("k", v) }, "", "", ""},
		{"OptAbsPath relative", `"x"`, func(c *conffile.Checker, v conffile.Value) any { return c.OptAbsPath("k", v) }, "", "absolute path", ""},

		// Numbers and booleans.
		{"Int", `-7`, func(c *conffile.Checker, v conffile.Value) any { return c.Int("k", v, 3) }, int64(-7), "", ""},
		{"Int default", "", func(c *conffile.Checker, v conffile.Value) any { return c.Int("k", v, 3) }, int64(3), "", ""},
		{"Int string", `"4"`, func(c *conffile.Checker, v conffile.Value) any { return c.Int("k", v, 3) }, int64(3), "must be an integer, not a string", ""},
		{"Int float", `4.0`, func(c *conffile.Checker, v conffile.Value) any { return c.Int("k", v, 3) }, int64(3), "must be an integer, not a float", ""},
		{"IntIn", `64`, func(c *conffile.Checker, v conffile.Value) any { return c.IntIn("k", v, 4, 1, 64) }, int64(64), "", ""},
		{"IntIn low", `0`, func(c *conffile.Checker, v conffile.Value) any { return c.IntIn("k", v, 4, 1, 64) }, int64(4), "must be from 1 to 64, not 0", ""},
		{"IntIn high", `65`, func(c *conffile.Checker, v conffile.Value) any { return c.IntIn("k", v, 4, 1, 64) }, int64(4), "must be from 1 to 64, not 65", ""},
		{"Bool", `true`, func(c *conffile.Checker, v conffile.Value) any { return c.Bool("k", v, false) }, true, "", ""},
		{"Bool default", "", func(c *conffile.Checker, v conffile.Value) any { return c.Bool("k", v, true) }, true, "", ""},
		{"Bool string", `"yes"`, func(c *conffile.Checker, v conffile.Value) any { return c.Bool("k", v, false) }, false, "must be true or false, not a string", ""},
		{"Bool integer", `1`, func(c *conffile.Checker, v conffile.Value) any { return c.Bool("k", v, false) }, false, "must be true or false, not an integer", ""},

		// Durations.
		{"Duration", `"1h30m"`, func(c *conffile.Checker, v conffile.Value) any { return c.Duration("k", v, time.Second) }, 90 * time.Minute, "", ""},
		{"Duration default", "", func(c *conffile.Checker, v conffile.Value) any { return c.Duration("k", v, time.Second) }, time.Second, "", ""},
		{"Duration zero", `"0s"`, func(c *conffile.Checker, v conffile.Value) any { return c.Duration("k", v, time.Second) }, time.Second, `must be positive, not "0s"`, ""},
		{"Duration negative", `"-1h"`, func(c *conffile.Checker, v conffile.Value) any { return c.Duration("k", v, time.Second) }, time.Second, "must be positive", ""},
		{"Duration no unit", `"24"`, func(c *conffile.Checker, v conffile.Value) any { return c.Duration("k", v, time.Second) }, time.Second, `must be a duration such as "24h"`, ""},
		{"Duration integer", `24`, func(c *conffile.Checker, v conffile.Value) any { return c.Duration("k", v, time.Second) }, time.Second, "must be a string, not an integer", ""},
		{"DurationOrZero zero", `"0s"`, func(c *conffile.Checker, v conffile.Value) any { return c.DurationOrZero("k", v, time.Second) }, time.Duration(0), "", ""},
		{"DurationOrZero bare zero", `"0"`, func(c *conffile.Checker, v conffile.Value) any { return c.DurationOrZero("k", v, time.Second) }, time.Duration(0), "", ""},
		{"DurationOrZero negative", `"-1s"`, func(c *conffile.Checker, v conffile.Value) any { return c.DurationOrZero("k", v, time.Second) }, time.Second, `must not be negative, not "-1s"`, ""},

		// Amounts and accounts.
		{"Amount", `"1.5 XNO"`, func(c *conffile.Checker, v conffile.Value) any { return c.Amount("k", v) }, xno("1.5 XNO"), "", ""},
		{"Amount absent", "", func(c *conffile.Checker, v conffile.Value) any { return c.Amount("k", v) }, (*nano.Amount)(nil), "", ""},
		{"Amount number", `100`, func(c *conffile.Checker, v conffile.Value) any { return c.Amount("k", v) }, (*nano.Amount)(nil), "must be a string such as \"100 XNO\"", ""},
		{"Amount unit", `"1 BTC"`, func(c *conffile.Checker, v conffile.Value) any { return c.Amount("k", v) }, (*nano.Amount)(nil), `"1 BTC" is not an amount (not a number of raw or XNO)`, ""},
		{"Amount range", `"340282366920938463463374607431768211456"`, func(c *conffile.Checker, v conffile.Value) any { return c.Amount("k", v) }, (*nano.Amount)(nil), "2^128 raw or more", ""},
		{"Amount precision", `"0.0000000000000000000000000000001 XNO"`, func(c *conffile.Checker, v conffile.Value) any { return c.Amount("k", v) }, (*nano.Amount)(nil), "more than 30 decimal places", ""},
		{"Account", `"` + genesis + `"`, func(c *conffile.Checker, v conffile.Value) any { p, _ := c.Account("k", v); return p }, g, "", ""},
		{"Account bad", `"nano_1"`, func(c *conffile.Checker, v conffile.Value) any { p, _ := c.Account("k", v); return p }, nano.PublicKey{}, `"nano_1" is not a nano_ address or 64 hex digits of public key`, ""},
		{"Account absent", "", func(c *conffile.Checker, v conffile.Value) any { _, ok := c.Account("k", v); return ok }, false, "required", ""},
		{"Accounts", `["` + genesis + `", "` + epochV2 + `"]`, func(c *conffile.Checker, v conffile.Value) any { return c.Accounts("k", v, nil) }, []nano.PublicKey{g, e2}, "", ""},
		{"Accounts twice", `["` + genesis + `", "` + genesis + `"]`, func(c *conffile.Checker, v conffile.Value) any { return c.Accounts("k", v, nil) }, []nano.PublicKey{g}, "is listed twice (also k[0])", "k[1]"},
		{"Accounts bad", `["` + genesis + `", "xyz"]`, func(c *conffile.Checker, v conffile.Value) any { return c.Accounts("k", v, nil) }, []nano.PublicKey{g}, `"xyz" is not a nano_ address`, "k[1]"},
		{"Accounts check", `["` + genesis + `", "` + epochV2 + `"]`, func(c *conffile.Checker, v conffile.Value) any { return len(c.Accounts("k", v, notEven)) }, 1, genesis + ": even", "k[0]"},

		// Lists.
		{"Strings", `["a", "b"]`, func(c *conffile.Checker, v conffile.Value) any { return c.Strings("k", v) }, []string{"a", "b"}, "", ""},
		{"Strings absent", "", func(c *conffile.Checker, v conffile.Value) any { return c.Strings("k", v) }, []string(nil), "", ""},
		{"Strings not an array", `"a"`, func(c *conffile.Checker, v conffile.Value) any { return c.Strings("k", v) }, []string(nil), "must be an array of strings, not a string", ""},
		{"Strings element", `["a", 2, "c"]`, func(c *conffile.Checker, v conffile.Value) any { return c.Strings("k", v) }, []string{"a", "c"}, "must be a string, not an integer", "k[1]"},
		{"Strings table element", `["a", {x = 1}]`, func(c *conffile.Checker, v conffile.Value) any { return c.Strings("k", v) }, []string{"a"}, "must be a string, not a table", "k[1]"},
		{"UniqueStrings twice", `["a", "b", "a"]`, func(c *conffile.Checker, v conffile.Value) any { return c.UniqueStrings("k", v, nil) }, []string{"a", "b"}, `"a" is listed twice (also k[0])`, "k[2]"},
		{"UniqueStrings check", `["/a", "b"]`, func(c *conffile.Checker, v conffile.Value) any { return c.UniqueStrings("k", v, conffile.CheckAbsPath) }, []string{"/a"}, "absolute path", "k[1]"},
		{"UniqueStrings printable", `["a", "a\tb"]`, func(c *conffile.Checker, v conffile.Value) any {
			return c.UniqueStrings("k", v, conffile.CheckPrintable)
		}, []string{"a"}, "printable UTF-8", "k[1]"},

		// Addresses.
		{"Endpoint unix", `"unix:///run/x.sock"`, func(c *conffile.Checker, v conffile.Value) any { return c.Endpoint("k", v, conffile.Listen) }, conffile.Endpoint{Network: "unix", Address: "/run/x.sock"}, "", ""},
		{"Endpoint tcp", `"tcp://[::1]:7070"`, func(c *conffile.Checker, v conffile.Value) any { return c.Endpoint("k", v, conffile.Dial) }, conffile.Endpoint{Network: "tcp", Address: "[::1]:7070"}, "", ""},
		{"Endpoint listen no host", `"tcp://:7070"`, func(c *conffile.Checker, v conffile.Value) any { return c.Endpoint("k", v, conffile.Listen) }, conffile.Endpoint{}, "no host (write 0.0.0.0", ""},
		{"Endpoint dial no host", `"tcp://:7070"`, func(c *conffile.Checker, v conffile.Value) any { return c.Endpoint("k", v, conffile.Dial) }, conffile.Endpoint{}, `"tcp://:7070" has no host`, ""},
		{"Endpoint scheme", `"http://x:1"`, func(c *conffile.Checker, v conffile.Value) any { return c.Endpoint("k", v, conffile.Dial) }, conffile.Endpoint{}, "must be unix:///absolute/path or tcp://host:port", ""},
		{"Endpoint two slashes", `"unix://run/x"`, func(c *conffile.Checker, v conffile.Value) any { return c.Endpoint("k", v, conffile.Dial) }, conffile.Endpoint{}, "three slashes", ""},
		{"Endpoint long path", `"unix:///` + strings.Repeat("s", 107) + `"`, func(c *conffile.Checker, v conffile.Value) any { return c.Endpoint("k", v, conffile.Dial) }, conffile.Endpoint{}, "longer than 107 bytes", ""},
		{"Endpoint port", `"tcp://h:65536"`, func(c *conffile.Checker, v conffile.Value) any { return c.Endpoint("k", v, conffile.Dial) }, conffile.Endpoint{}, `port "65536"`, ""},
		{"Endpoint host", `"tcp://a_b:1"`, func(c *conffile.Checker, v conffile.Value) any { return c.Endpoint("k", v, conffile.Dial) }, conffile.Endpoint{}, "not an IP address or host name", ""},
		{"HostPort", `"127.0.0.1:9464"`, func(c *conffile.Checker, v conffile.Value) any { return c.HostPort("k", v, conffile.Listen) }, "127.0.0.1:9464", "", ""},
		{"HostPort no port", `"127.0.0.1"`, func(c *conffile.Checker, v conffile.Value) any { return c.HostPort("k", v, conffile.Listen) }, "", `must be host:port, not "127.0.0.1"`, ""},
		{"HostPort no host", `":9464"`, func(c *conffile.Checker, v conffile.Value) any { return c.HostPort("k", v, conffile.Listen) }, "", "no host (write 0.0.0.0", ""},
		{"HostPort port 0", `"h:0"`, func(c *conffile.Checker, v conffile.Value) any { return c.HostPort("k", v, conffile.Listen) }, "", `port "0"`, ""},
		{"URL", `"http://[::1]:7076/rpc"`, func(c *conffile.Checker, v conffile.Value) any { return c.URL("k", v, "http", "https") }, "http://[::1]:7076/rpc", "", ""},
		{"URL scheme", `"ftp://h"`, func(c *conffile.Checker, v conffile.Value) any { return c.URL("k", v, "http", "https") }, "", `must be a URL starting with http:// or https://, not "ftp://h"`, ""},
		{"URL no host", `"http:///x"`, func(c *conffile.Checker, v conffile.Value) any { return c.URL("k", v, "http") }, "", "has no host", ""},
		{"URL user", `"http://u:secret@h"`, func(c *conffile.Checker, v conffile.Value) any { return c.URL("k", v, "http") }, "", "user name or password", ""},
		{"URL port", `"ws://h:0"`, func(c *conffile.Checker, v conffile.Value) any { return c.URL("k", v, "ws") }, "", `port "0"`, ""},
		{"URL host", `"ws://a_b:1"`, func(c *conffile.Checker, v conffile.Value) any { return c.URL("k", v, "ws") }, "", "not an IP address or host name", ""},
		{"URL integer", `1`, func(c *conffile.Checker, v conffile.Value) any { return c.URL("k", v, "ws") }, "", "must be a string", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c conffile.Checker
			got := tt.read(&c, value(t, tt.src))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
			errs := c.Errors()
			switch {
			case tt.msg == "" && len(errs) > 0:
				t.Errorf("unexpected errors:%s", dump(errs))
			case tt.msg != "":
				at := tt.at
				if at == "" {
					at = "k"
				}
				if len(errs) != 1 || errs[0].Key != at || !strings.Contains(errs[0].Msg, tt.msg) {
					t.Errorf("want one error at %q containing %q; got:%s", at, tt.msg, dump(errs))
				}
				if !c.FailedAt(at) {
					t.Errorf("FailedAt(%q) = false", at)
				}
			}
		})
	}
}

// TestKeyPathsInReaders checks the whole path from file to typed value: a
// type error deep in an array of tables names its full key path.
func TestKeyPathsInReaders(t *testing.T) {
	f, errs, ok := parseTest(t, "[[items]]\nname = \"a\"\n[[items]]\nname = \"b\"\n[[items.subs]]\nweight = 1\n[[items.subs]]\nweight = \"heavy\"\n")
	if !ok || len(errs) > 0 {
		t.Fatalf("ok %v:%s", ok, dump(errs))
	}
	var c conffile.Checker
	for i, it := range f.Items {
		for j, s := range it.Subs {
			c.Int(fmt.Sprintf("items[%d].subs[%d].weight", i, j), s.Weight, 0)
		}
	}
	if err := c.Err(); err == nil || err.Error() != `items[1].subs[1].weight: must be an integer, not a string` {
		t.Errorf("Err() = %v", err)
	}
}

func TestErrorString(t *testing.T) {
	for _, tt := range []struct {
		e    conffile.Error
		want string
	}{
		{conffile.Error{Key: "a[1].b", Msg: "must be at least 1"}, "a[1].b: must be at least 1"},
		{conffile.Error{File: "/etc/x.toml", Key: "a.b", Msg: "required"}, "/etc/x.toml: a.b: required"},
		{conffile.Error{File: "/etc/x.toml", Msg: "TOML syntax error at line 1, column 2: x"}, "/etc/x.toml: TOML syntax error at line 1, column 2: x"},
		{conffile.Error{Msg: "m"}, "m"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestJoin(t *testing.T) {
	if conffile.Join(nil) != nil {
		t.Error("Join(nil) != nil")
	}
	a := &conffile.Error{Key: "a", Msg: "x"}
	b := &conffile.Error{Key: "b", Msg: "y"}
	if err := conffile.Join([]*conffile.Error{a}); err != error(a) {
		t.Errorf("Join of one = %v", err)
	}
	err := conffile.Join([]*conffile.Error{a, b})
	list := err.(interface{ Unwrap() []error }).Unwrap()
	if len(list) != 2 || list[0] != error(a) || list[1] != error(b) || err.Error() != "a: x\nb: y" {
		t.Errorf("Join = %q", err)
	}
	var ce *conffile.Error
	if !errors.As(err, &ce) || ce != a {
		t.Error("errors.As does not find the first *Error")
	}
	conffile.SetFile([]*conffile.Error{a, b}, "/f")
	if a.File != "/f" || b.File != "/f" || err.Error() != "/f: a: x\n/f: b: y" {
		t.Errorf("after SetFile: %q", err)
	}
	var c conffile.Checker
	if c.Err() != nil || c.FailedAt("") {
		t.Error("the zero Checker has errors")
	}
}

func TestJoinKey(t *testing.T) {
	for _, tt := range []struct{ path, k, want string }{
		{"", "a", "a"},
		{"a", "b", "a.b"},
		{"a[0]", "b-c_d", "a[0].b-c_d"},
		{"a", "b.c", `a."b.c"`},
		{"", "", `""`},
		{"a", "é", `a."é"`},
	} {
		if got := conffile.JoinKey(tt.path, tt.k); got != tt.want {
			t.Errorf("JoinKey(%q, %q) = %q, want %q", tt.path, tt.k, got, tt.want)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	ep, err := conffile.ParseEndpoint("tcp://signer.cold:7070", conffile.Dial)
	if err != nil || ep.String() != "tcp://signer.cold:7070" || ep.Address != "signer.cold:7070" {
		t.Errorf("ParseEndpoint = %+v, %v", ep, err)
	}
	if _, err := conffile.ParseEndpoint("unix:///a\x00b", conffile.Dial); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Errorf("NUL: %v", err)
	}
	if _, err := conffile.ParseEndpoint("tcp://h", conffile.Dial); err == nil || !strings.Contains(err.Error(), "no host:port") {
		t.Errorf("no port: %v", err)
	}
}

// place is what Error writes before the key of an error with no file.
func place(e *conffile.Error) string {
	if e.Line == 0 {
		return ""
	}
	return fmt.Sprintf("line %d, column %d: ", e.Line, e.Col)
}

// TestErrorPlaces checks that errors carry the line and column where the
// decoder places their key (the column of its value), and none where it
// cannot: an absent key, or a
// key defined in several entries of an array of tables.
func TestErrorPlaces(t *testing.T) {
	src := "[server]\nname = \"a\"\n  port = \"80\"\ncolour = 1\n[[items]]\nname = 1\n[[items]]\nname = 2\nnaem = 3\n[outer.inner]\nDepth = 1\n"
	var f testFile
	c, ok := conffile.Parse([]byte(src), &f)
	if !ok {
		t.Fatalf("not ok:%s", dump(c.Errors()))
	}
	c.Int("server.port", f.Server.Port, 0)
	c.Str("server.timeout", f.Server.Timeout)
	c.Str("items[1].name", f.Items[1].Name)
	type place struct{ line, col int }
	want := map[string]place{
		"outer.inner.Depth": {11, 9},
		"server.colour":     {4, 10},
		"items[1].naem":     {9, 8},
		"server.port":       {3, 11}, // where the string's text starts
		"server.timeout":    {},
		"items[1].name":     {}, // items.name is defined twice
	}
	errs := c.Errors()
	if len(errs) != len(want) {
		t.Fatalf("errors:%s", dump(errs))
	}
	for _, e := range errs {
		w, ok := want[e.Key]
		if !ok || e.Line != w.line || e.Col != w.col {
			t.Errorf("%s: at %d:%d, want %d:%d", e.Key, e.Line, e.Col, w.line, w.col)
		}
	}
	conffile.SetFile(errs, "x.toml")
	if got := errs[len(errs)-3].Error(); got != "x.toml:3:11: server.port: must be an integer, not a string" {
		t.Errorf("Error() = %q", got)
	}
}
