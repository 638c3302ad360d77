package conffile

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/nano"
)

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

func dumpErrs(errs []*Error) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n\t%q: %s", e.Key, e.Msg)
	}
	return b.String()
}

// decodeOne decodes "k = src" ("" for an absent key) into a struct with
// one field k of type typ and conf tag tag, and returns the field's value
// and the problems found.
func decodeOne(t *testing.T, typ reflect.Type, tag, src string) (any, []*Error) {
	t.Helper()
	st := reflect.StructOf([]reflect.StructField{{Name: "K", Type: typ, Tag: reflect.StructTag(`toml:"k" conf:"` + tag + `"`)}})
	doc := ""
	if src != "" {
		doc = "k = " + src
	}
	v, errs := decode([]byte(doc), st)
	return v.Elem().Field(0).Interface(), errs
}

// TestLeafReaders checks every leaf type's reader and conf option: the
// value it yields, and the message and key of what it refuses.
func TestLeafReaders(t *testing.T) {
	str, strs, dur := reflect.TypeFor[string](), reflect.TypeFor[[]string](), reflect.TypeFor[time.Duration]()
	accts := reflect.TypeFor[[]nano.PublicKey]()
	g, e2 := mustAccount(genesis), mustAccount(epochV2)
	edKey, _ := hex.DecodeString("91e9366eb1fd5277f3c1d18d942a2bdcf4b8b13fbf7e385776181f777fafba05")
	tests := []struct {
		name string
		typ  reflect.Type
		tag  string
		src  string // "" for absent
		want any    // checked when no error is expected
		msg  string // "" for no error; else the error's message contains msg
		at   string // the error's key when not "k"
	}{
		// Strings.
		{"string required", str, "required", `"a"`, "a", "", ""},
		{"string required absent", str, "required", "", "", "required", ""},
		{"string required empty", str, "required", `""`, "", "must not be empty", ""},
		{"string integer", str, "", `1`, "", "must be a string, not an integer", ""},
		{"string table", str, "", `{a = 1}`, "", "must be a string, not a table", ""},
		{"string date", str, "", `1979-05-27`, "", "must be a string, not a date/time", ""},
		{"string absent", str, "", "", "", "", ""},
		{"string empty", str, "", `""`, "", "", ""},
		{"string float", str, "", `1.5`, "", "must be a string, not a float", ""},
		{"string default", str, "default=x", "", "x", "", ""},
		{"oneof", str, "default=a,oneof=a|b|c", `"b"`, "b", "", ""},
		{"oneof default", str, "default=a,oneof=a|b|c", "", "a", "", ""},
		{"oneof required", str, "required,oneof=a|b", "", "", `required: "a" or "b"`, ""},
		{"oneof other", str, "default=a,oneof=a|b|c", `"B"`, "", `must be "a", "b" or "c", not "B"`, ""},
		{"oneof empty", str, "required,oneof=a|b", `""`, "", `must be "a" or "b", not ""`, ""},
		{"oneof boolean", str, "default=a,oneof=a", `true`, "", "must be a string, not a boolean", ""},

		// Paths.
		{"abspath", str, "required,abspath", `"/etc/x"`, "/etc/x", "", ""},
		{"abspath relative", str, "required,abspath", `"etc/x"`, "", `must be an absolute path, not "etc/x"`, ""},
		{"abspath absent", str, "required,abspath", "", "", "required", ""},
		{"optional abspath absent", str, "abspath", "", "", "", ""},
		{"optional abspath empty", str, "abspath", `""`, "", "", ""},
		{"optional abspath relative", str, "abspath", `"x"`, "", "absolute path", ""},

		// Numbers and booleans.
		{"int", reflect.TypeFor[int](), "default=3", `-7`, -7, "", ""},
		{"int default", reflect.TypeFor[int](), "default=3", "", 3, "", ""},
		{"int string", reflect.TypeFor[int](), "default=3", `"4"`, 0, "must be an integer, not a string", ""},
		{"int float", reflect.TypeFor[int](), "", `4.0`, 0, "must be an integer, not a float", ""},
		{"int required", reflect.TypeFor[int](), "required", "", 0, "required", ""},
		{"int64", reflect.TypeFor[int64](), "", `9223372036854775807`, int64(9223372036854775807), "", ""},
		{"bool", reflect.TypeFor[bool](), "", `true`, true, "", ""},
		{"bool default", reflect.TypeFor[bool](), "default=true", "", true, "", ""},
		{"bool string", reflect.TypeFor[bool](), "", `"yes"`, false, "must be true or false, not a string", ""},
		{"bool integer", reflect.TypeFor[bool](), "", `1`, false, "must be true or false, not an integer", ""},

		// Durations.
		{"duration", dur, "default=1s", `"1h30m"`, 90 * time.Minute, "", ""},
		{"duration default", dur, "default=1s", "", time.Second, "", ""},
		{"duration absent", dur, "", "", time.Duration(0), "", ""},
		{"duration zero", dur, "default=1s", `"0s"`, nil, `must be positive, not "0s"`, ""},
		{"duration negative", dur, "", `"-1h"`, nil, "must be positive", ""},
		{"duration no unit", dur, "", `"24"`, nil, `must be a duration such as "24h"`, ""},
		{"duration integer", dur, "", `24`, nil, "must be a string, not an integer", ""},
		{"duration required", dur, "required", "", nil, "required", ""},
		{"zero duration", dur, "zero,default=1s", `"0s"`, time.Duration(0), "", ""},
		{"zero duration bare", dur, "zero,default=1s", `"0"`, time.Duration(0), "", ""},
		{"zero duration negative", dur, "zero,default=1s", `"-1s"`, nil, `must not be negative, not "-1s"`, ""},

		// Amounts, accounts and keys.
		{"amount", reflect.TypeFor[*nano.Amount](), "", `"1.5 XNO"`, xno("1.5 XNO"), "", ""},
		{"amount absent", reflect.TypeFor[*nano.Amount](), "", "", (*nano.Amount)(nil), "", ""},
		{"amount number", reflect.TypeFor[*nano.Amount](), "", `100`, nil, "must be a string such as \"100 XNO\"", ""},
		{"amount unit", reflect.TypeFor[*nano.Amount](), "", `"1 BTC"`, nil, `"1 BTC" is not an amount (not a number of raw or XNO)`, ""},
		{"amount range", reflect.TypeFor[*nano.Amount](), "", `"340282366920938463463374607431768211456"`, nil, "2^128 raw or more", ""},
		{"amount precision", reflect.TypeFor[*nano.Amount](), "", `"0.0000000000000000000000000000001 XNO"`, nil, "more than 30 decimal places", ""},
		{"account", reflect.TypeFor[nano.PublicKey](), "required", `"` + genesis + `"`, g, "", ""},
		{"account bad", reflect.TypeFor[nano.PublicKey](), "", `"nano_1"`, nil, `"nano_1" is not a nano_ address or 64 hex digits of public key`, ""},
		{"account empty", reflect.TypeFor[nano.PublicKey](), "", `""`, nil, "must not be empty", ""},
		{"account absent", reflect.TypeFor[nano.PublicKey](), "", "", nano.PublicKey{}, "", ""},
		{"account required", reflect.TypeFor[nano.PublicKey](), "required", "", nil, "required", ""},
		{"accounts", accts, "unique", `["` + genesis + `", "` + epochV2 + `"]`, []nano.PublicKey{g, e2}, "", ""},
		{"accounts twice", accts, "unique", `["` + genesis + `", "` + genesis + `"]`, nil, "is listed twice (also k[0])", "k[1]"},
		{"accounts bad", accts, "unique", `["` + genesis + `", "xyz"]`, nil, `"xyz" is not a nano_ address`, "k[1]"},
		{"accounts not strings", accts, "", `[1]`, nil, "must be a string, not an integer", "k[0]"},
		{"ed25519 key", reflect.TypeFor[ed25519.PublicKey](), "required", `"91E9366EB1FD5277F3C1D18D942A2BDCF4B8B13FBF7E385776181F777FAFBA05"`, ed25519.PublicKey(edKey), "", ""},
		{"ed25519 key short", reflect.TypeFor[ed25519.PublicKey](), "required", `"91e9"`, nil, "must be 64 hex digits", ""},
		{"ed25519 key not hex", reflect.TypeFor[ed25519.PublicKey](), "required", `"zz` + strings.Repeat("0", 62) + `"`, nil, "must be 64 hex digits", ""},

		// Lists.
		{"strings", strs, "", `["a", "b"]`, []string{"a", "b"}, "", ""},
		{"strings absent", strs, "", "", []string(nil), "", ""},
		{"strings empty", strs, "", `[]`, []string(nil), "", ""},
		{"strings required", strs, "required", "", nil, "required", ""},
		{"strings not an array", strs, "", `"a"`, nil, "must be an array of strings, not a string", ""},
		{"strings element", strs, "", `["a", 2, "c"]`, nil, "must be a string, not an integer", "k[1]"},
		{"strings table element", strs, "", `["a", {x = 1}]`, nil, "must be a string, not a table", "k[1]"},
		{"strings twice", strs, "", `["a", "a"]`, []string{"a", "a"}, "", ""},
		{"unique strings twice", strs, "unique", `["a", "b", "a"]`, nil, `"a" is listed twice (also k[0])`, "k[2]"},
		{"abspath strings", strs, "abspath", `["/a", "b"]`, nil, "absolute path", "k[1]"},
		{"abspath strings empty", strs, "abspath", `["/a", ""]`, nil, "must not be empty", "k[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := decodeOne(t, tt.typ, tt.tag, tt.src)
			if tt.msg == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors:%s", dumpErrs(errs))
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %#v, want %#v", got, tt.want)
				}
				return
			}
			at := tt.at
			if at == "" {
				at = "k"
			}
			if len(errs) != 1 || errs[0].Key != at || !strings.Contains(errs[0].Msg, tt.msg) {
				t.Errorf("want one error at %q containing %q; got:%s", at, tt.msg, dumpErrs(errs))
			}
		})
	}
}

// TestListElementKeys checks that the elements a list's reader keeps are
// named by their places in the file, the refused ones left out.
func TestListElementKeys(t *testing.T) {
	var f struct {
		K []string `toml:"k" conf:"unique"`
	}
	st := reflect.TypeOf(f)
	v, _ := decode([]byte(`k = ["a", 1, "a", "b"]`), st)
	// A fresh decoding, to reach its Checker.
	p := planFor(st, nil)
	shape := reflect.New(p.shape)
	c, _ := parse([]byte(`k = ["a", 1, "a", "b"]`), shape.Interface())
	cfg := reflect.New(st)
	c.fill(p, "", cfg.Elem(), shape.Elem())
	list := cfg.Elem().Field(0).Interface().([]string)
	if !reflect.DeepEqual(list, []string{"a", "b"}) || !reflect.DeepEqual(v.Elem().Field(0).Interface(), list) {
		t.Fatalf("list = %q", list)
	}
	l := cfg.Elem().Field(0).Addr().Interface().(*[]string)
	if c.Key(&(*l)[0]) != "k[0]" || c.Key(&(*l)[1]) != "k[3]" || c.Key(l) != "k" || !c.IsSet(&(*l)[1]) || !c.Failed(l) || c.Failed(&(*l)[1]) {
		t.Errorf("keys %q %q %q, failed %v", c.Key(&(*l)[0]), c.Key(&(*l)[1]), c.Key(l), c.Failed(l))
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
		if got := joinKey(tt.path, tt.k); got != tt.want {
			t.Errorf("joinKey(%q, %q) = %q, want %q", tt.path, tt.k, got, tt.want)
		}
	}
}

func TestFailedAt(t *testing.T) {
	c := &Checker{}
	c.fail("a.b[1].c", "x")
	for key, want := range map[string]bool{"": true, "a": true, "a.b": true, "a.b[1]": true, "a.b[1].c": true, "a.b[2]": false, "a.bc": false, "a.b[1].cd": false, "x": false} {
		if got := c.failedAt(key); got != want {
			t.Errorf("failedAt(%q) = %v, want %v", key, got, want)
		}
	}
}
