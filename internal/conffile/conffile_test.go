package conffile_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/nano"
)

// The configuration the tests decode: a table, an optional table, an
// array of tables holding another, and a table nested two deep.
type testFile struct {
	Server serverSection  `toml:"server"`
	Extra  *extraSection  `toml:"extra"`
	Items  []itemSection  `toml:"items"`
	Outer  *outerSection  `toml:"outer"`
	Groups []groupSection `toml:"groups"`
}

type serverSection struct {
	Name     string        `toml:"name"`
	Port     int           `toml:"port" conf:"default=80"`
	Timeout  time.Duration `toml:"timeout"`
	LogLevel string        `toml:"log_level" conf:"default=info,oneof=debug|info"`
	Tags     []string      `toml:"tags" conf:"unique"`
	derived  int           // not read from the file
}

type extraSection struct {
	Debug bool `toml:"debug"`
}

type itemSection struct {
	Name string       `toml:"name"`
	Subs []subSection `toml:"subs"`
}

type subSection struct {
	Weight int `toml:"weight"`
}

type outerSection struct {
	Inner innerSection `toml:"inner"`
}

type innerSection struct {
	Depth time.Duration `toml:"depth" conf:"zero"`
}

type groupSection struct {
	Name    string           `toml:"name"`
	Members []nano.PublicKey `toml:"members" conf:"unique"`
	Limit   *nano.Amount     `toml:"limit"`
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

// place is what Error writes before the key of an error with no file.
func place(e *conffile.Error) string {
	if e.Line == 0 {
		return ""
	}
	return fmt.Sprintf("line %d, column %d: ", e.Line, e.Col)
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
		{"derived field", "[server]\nderived = 1", true, "server.derived", "unknown key"},
		{"array of tables, first", "[[items]]\nname = \"a\"\nnaem = 1", true, "items[0].naem", "unknown key"},
		{"array of tables, third", "[[items]]\n[[items]]\n[[items]]\nx = 1", true, "items[2].x", "unknown key"},
		{"nested array of tables", "[[items]]\n[[items]]\n[[items.subs]]\n[[items.subs]]\nwieght = 1", true, "items[1].subs[1].wieght", "unknown key"},
		{"inline array of tables", "[[items]]\nsubs = [{weight = 1}, {weight = 2, w = 3}]", true, "items[0].subs[1].w", "unknown key"},
		{"array of tables inside a table", "[outer]\n[[outer.inner.x]]", true, "outer.inner.x", "unknown key"},
		{"case near miss", "[server]\nName = \"x\"", true, "server.Name", `unknown key (keys are case-sensitive: did you mean "name"?)`},
		{"case near miss, table", "[Server]\nname = \"x\"", true, "Server", `did you mean "server"?`},
		{"case near miss, in an array", "[[items]]\nNAME = \"x\"", true, "items[0].NAME", `did you mean "name"?`},
		{"case near miss, deep", "[outer.inner]\nDepth = \"1s\"", true, "outer.inner.Depth", `did you mean "depth"?`},

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
			cfg, errs := conffile.Decode[testFile]([]byte(tt.src))
			if cfg != nil {
				t.Error("Decode returned a configuration with errors")
			}
			if ok := conffile.ParseOK[testFile]([]byte(tt.src)); ok != tt.ok {
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
// them), before the values' problems; that keys inside a value are left to
// its reader; and that a table given where a value is expected is one type
// error, not also unknown keys.
func TestParseUnknownKeysOnce(t *testing.T) {
	src := "zeta = 1\nalpha = 2\n[server]\nname = {first = \"a\"}\ntags = [{x = 1}]\nb = 1\na = 1\n[[items]]\nq = 1\n"
	_, errs := conffile.Decode[testFile]([]byte(src))
	var keys []string
	for _, e := range errs {
		keys = append(keys, e.Key)
	}
	want := []string{"zeta", "alpha", "server.b", "server.a", "items[0].q", "server.name", "server.tags[0]"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("keys = %q, want %q:%s", keys, want, dump(errs))
	}
}

func TestDecodeValues(t *testing.T) {
	src := "[server]\nname = \"web\"\nport = 8080\ntags = [\"a\", \"b\"]\n[[items]]\nname = \"one\"\n[[items.subs]]\nweight = 5\n" +
		"[[groups]]\nname = \"g\"\nmembers = [\"" + genesis + "\"]\nlimit = \"2 XNO\"\n"
	f, errs := conffile.Decode[testFile]([]byte(src))
	if len(errs) > 0 {
		t.Fatalf("errors:%s", dump(errs))
	}
	want := &testFile{
		Server: serverSection{Name: "web", Port: 8080, LogLevel: "info", Tags: []string{"a", "b"}},
		Items:  []itemSection{{Name: "one", Subs: []subSection{{Weight: 5}}}},
		Groups: []groupSection{{Name: "g", Members: []nano.PublicKey{mustAccount(t, genesis)}, Limit: xno(t, "2 XNO")}},
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got  %+v\nwant %+v", f, want)
	}
	f, errs = conffile.Decode[testFile](nil)
	if len(errs) > 0 || f.Extra != nil || f.Outer != nil || f.Items != nil || f.Server.Port != 80 || f.Server.Tags != nil {
		t.Errorf("empty file: %+v:%s", f, dump(errs))
	}
	f, _ = conffile.Decode[testFile]([]byte("[extra]\n[outer.inner]"))
	if f.Extra == nil || f.Outer == nil || f.Extra.Debug || f.Outer.Inner.Depth != 0 {
		t.Errorf("empty tables: %+v", f)
	}
}

// TestParseExactKeys checks that only the exactly spelt key fills a
// field: a case variant is an unknown key, not another spelling.
func TestParseExactKeys(t *testing.T) {
	for range 20 { // map order varies between runs
		f, errs := conffile.DecodeAll[testFile]([]byte("[server]\nNAME = 1\nname = \"a\"\nnAme = 2\n[Extra]\ndebug = 1\n[[Items]]\nname = 3"))
		if f.Server.Name != "a" || f.Extra != nil || f.Items != nil {
			t.Fatalf("server %+v, extra %+v, items %+v", f.Server, f.Extra, f.Items)
		}
		if len(errs) != 4 || !hasError(errs, "server.NAME", `did you mean "name"`) || !hasError(errs, "server.nAme", `did you mean "name"`) ||
			!hasError(errs, "Extra", `did you mean "extra"`) || !hasError(errs, "Items", `did you mean "items"`) {
			t.Fatalf("errors:%s", dump(errs))
		}
	}
	f, _ := conffile.DecodeAll[testFile]([]byte("[server]\nName = \"x\""))
	if f.Server.Name != "" {
		t.Errorf("Name decoded as name: %+v", f.Server)
	}
}

func TestSyntaxError(t *testing.T) {
	for _, src := range []string{"[server\nname = 1", "a = \"unterminated", "a = 1\na = 2", "\x00", "[server]\n[server]"} {
		_, errs := conffile.Decode[testFile]([]byte(src))
		if len(errs) != 1 || errs[0].Key != "" || !strings.HasPrefix(errs[0].Msg, "TOML syntax error at line ") {
			t.Errorf("Decode(%q):%s", src, dump(errs))
		}
	}
}

type (
	badUnexported struct {
		a string `toml:"a"`
	}
	badDup struct {
		A string `toml:"a"`
		B string `toml:"a"`
	}
	badLeaf struct {
		A float64 `toml:"a"`
	}
	badList struct {
		A []int `toml:"a"`
	}
	badOption struct {
		A string `toml:"a" conf:"unique"`
	}
	badDefault struct {
		A time.Duration `toml:"a" conf:"default=soon"`
	}
	badZeroDefault struct {
		A time.Duration `toml:"a" conf:"default=0s"`
	}
	badOneOf struct {
		A string `toml:"a" conf:"oneof=x|y"`
	}
	badOneOfDefault struct {
		A string `toml:"a" conf:"default=z,oneof=x|y"`
	}
	badRequiredDefault struct {
		A string `toml:"a" conf:"required,default=x"`
	}
	badTableConf struct {
		A extraSection `toml:"a" conf:"required"`
	}
	badDerivedConf struct {
		A string `conf:"required"`
	}
	badTomlOption struct {
		A string `toml:"a,omitempty"`
	}
	badInline struct {
		A string `toml:",inline"`
	}
	badInlineDup struct {
		Name string        `toml:"name"`
		G    itemSection   `toml:",inline"`
		X    []itemSection `toml:"x"`
	}
	badRecursive struct {
		Next *badRecursive `toml:"next"`
	}
)

// TestDecodeBadType checks that a declaration Decode cannot read is
// refused with a panic, which is a bug in the program, not in the file.
func TestDecodeBadType(t *testing.T) {
	for _, decode := range []func(){
		func() { conffile.Decode[int](nil) },
		func() { conffile.Decode[badUnexported](nil) },
		func() { conffile.Decode[badDup](nil) },
		func() { conffile.Decode[badLeaf](nil) },
		func() { conffile.Decode[badList](nil) },
		func() { conffile.Decode[badOption](nil) },
		func() { conffile.Decode[badDefault](nil) },
		func() { conffile.Decode[badZeroDefault](nil) },
		func() { conffile.Decode[badOneOf](nil) },
		func() { conffile.Decode[badOneOfDefault](nil) },
		func() { conffile.Decode[badRequiredDefault](nil) },
		func() { conffile.Decode[badTableConf](nil) },
		func() { conffile.Decode[badDerivedConf](nil) },
		func() { conffile.Decode[badTomlOption](nil) },
		func() { conffile.Decode[badInline](nil) },
		func() { conffile.Decode[badInlineDup](nil) },
		func() { conffile.Decode[badRecursive](nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%T did not panic", decode)
				}
			}()
			decode()
		}()
	}
}

// TestKeyPathsInReaders checks the whole path from file to typed value: a
// type error deep in an array of tables names its full key path.
func TestKeyPathsInReaders(t *testing.T) {
	_, errs := conffile.Decode[testFile]([]byte("[[items]]\nname = \"a\"\n[[items]]\nname = \"b\"\n[[items.subs]]\nweight = 1\n[[items.subs]]\nweight = \"heavy\"\n"))
	if err := conffile.Join(errs); err == nil || err.Error() != `items[1].subs[1].weight: must be an integer, not a string` {
		t.Errorf("errors = %v", err)
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
		{conffile.Error{File: "/etc/s.toml", Line: 7, Col: 9, Key: "token.pool_size", Msg: "must be an integer, not a string"}, "/etc/s.toml:7:9: token.pool_size: must be an integer, not a string"},
		{conffile.Error{Line: 7, Col: 9, Key: "token.pool_size", Msg: "m"}, "line 7, column 9: token.pool_size: m"},
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
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	_, err := conffile.Load[testFile](filepath.Join(dir, "absent.toml"), "role", "role's")
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "role: reading the role's configuration: open ") || !strings.Contains(err.Error(), "absent.toml") {
		t.Errorf("Load = %v", err)
	}
	path := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(path, []byte("[server]\nport = \"80\"\nx = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = conffile.Load[testFile](path, "role", "role's")
	if err == nil || err.Error() != path+":3:5: server.x: unknown key\n"+path+":2:9: server.port: must be an integer, not a string" {
		t.Errorf("Load = %v", err)
	}
	path = filepath.Join(dir, "good.toml")
	if err := os.WriteFile(path, []byte("[server]\nport = 81\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := conffile.Load[testFile](path, "role", "role's"); err != nil || f.Server.Port != 81 {
		t.Errorf("Load = %+v, %v", f, err)
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

func TestEndpointOverlaps(t *testing.T) {
	unix := func(p string) conffile.Endpoint { return conffile.Endpoint{Network: "unix", Address: p} }
	tcp := func(a string) conffile.Endpoint { return conffile.Endpoint{Network: "tcp", Address: a} }
	for _, c := range []struct {
		a, b conffile.Endpoint
		want bool
	}{
		{unix("/run/a.sock"), unix("/run/a.sock"), true},
		{unix("/run/a.sock"), unix("/run//a.sock"), true},
		{unix("/run/a.sock"), unix("/run/b.sock"), false},
		{tcp("127.0.0.1:7070"), tcp("127.0.0.1:7070"), true},
		{tcp("0.0.0.0:7070"), tcp("127.0.0.1:7070"), true},
		{tcp("127.0.0.1:7070"), tcp("[::]:7070"), true},
		{tcp("127.0.0.1:7070"), tcp("10.0.0.1:7070"), false},
		{tcp("127.0.0.1:7070"), tcp("127.0.0.1:7071"), false},
		{tcp("127.0.0.1:7070"), unix("/run/a.sock"), false},
		{conffile.Endpoint{}, conffile.Endpoint{}, false},
	} {
		if got := c.a.Overlaps(c.b); got != c.want {
			t.Errorf("%v.Overlaps(%v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

type placesFile struct {
	Server placesServer  `toml:"server"`
	Items  []itemSection `toml:"items"`
	Outer  *outerSection `toml:"outer"`
}

type placesServer struct {
	Name    string        `toml:"name"`
	Port    int           `toml:"port"`
	Timeout time.Duration `toml:"timeout" conf:"required"`
}

// TestErrorPlaces checks that errors carry the line and column where the
// decoder places their key (the column of its value), and none where it
// cannot: an absent key, or a key defined in several entries of an array
// of tables.
func TestErrorPlaces(t *testing.T) {
	src := "[server]\nname = \"a\"\n  port = \"80\"\ncolour = 1\n[[items]]\nname = 1\n[[items]]\nname = 2\nnaem = 3\n[outer.inner]\nDepth = 1\n"
	_, errs := conffile.Decode[placesFile]([]byte(src))
	type place struct{ line, col int }
	want := map[string]place{
		"outer.inner.Depth": {11, 9},
		"server.colour":     {4, 10},
		"items[1].naem":     {9, 8},
		"server.port":       {3, 11}, // where the string's text starts
		"server.timeout":    {},
		"items[0].name":     {}, // items.name is defined twice
		"items[1].name":     {},
	}
	if len(errs) != len(want) {
		t.Fatalf("errors:%s", dump(errs))
	}
	for _, e := range errs {
		w, ok := want[e.Key]
		if !ok || e.Line != w.line || e.Col != w.col {
			t.Errorf("%s: at %d:%d, want %d:%d", e.Key, e.Line, e.Col, w.line, w.col)
		}
		if e.Key == "server.port" {
			e.File = "x.toml"
			if got := e.Error(); got != "x.toml:3:11: server.port: must be an integer, not a string" {
				t.Errorf("Error() = %q", got)
			}
		}
	}
}

func mustAccount(t *testing.T, s string) nano.PublicKey {
	t.Helper()
	k, err := nano.ParseAccount(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func xno(t *testing.T, s string) *nano.Amount {
	t.Helper()
	a, err := nano.ParseAmountUnit(s)
	if err != nil {
		t.Fatal(err)
	}
	return &a
}

const genesis = "nano_3t6k35gi95xu6tergt6p69ck76ogmitsa8mnijtpxm9fkcm736xtoncuohr3"
