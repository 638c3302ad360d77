package conffile_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/internal/conffile"
)

// orderFile records the order in which its structs' CheckConf are called,
// and the key paths their Checker gives.
type orderFile struct {
	A     orderTable   `toml:"a"`
	B     *orderTable  `toml:"b"`
	List  []orderTable `toml:"list"`
	Named `toml:"named"`
	Flat  orderTable `toml:",inline"`
}

type orderTable struct {
	X   string      `toml:"x"`
	Sub *orderInner `toml:"sub"`
}

type orderInner struct {
	Y int `toml:"y"`
}

type Named struct {
	Z bool `toml:"z"`
}

var calls []string

func (t *orderTable) CheckConf(c *conffile.Checker) {
	calls = append(calls, "table "+c.Key(t)+" x="+c.Key(&t.X))
}

func (t *orderInner) CheckConf(c *conffile.Checker) {
	calls = append(calls, "inner "+c.Key(t)+" y="+c.Key(&t.Y))
}

func (n *Named) CheckConf(c *conffile.Checker) {
	calls = append(calls, "named "+c.Key(n)+" z="+c.Key(&n.Z))
}

func (f *orderFile) CheckConf(c *conffile.Checker) {
	calls = append(calls, "file "+c.Key(f)+" set: "+strings.Join([]string{
		setWord(c.IsSet(&f.A)), setWord(c.IsSet(&f.B)), setWord(c.IsSet(&f.List)), setWord(c.IsSet(&f.Named)), setWord(c.IsSet(&f.Flat.X))}, " "))
}

func setWord(set bool) string {
	if set {
		return "set"
	}
	return "absent"
}

// TestCheckConfOrder checks that CheckConf is called bottom-up, each
// table's own tables first, in field order, with the key paths of every
// field: tables, elements of arrays of tables, an embedded table whose
// fields are promoted, an inline struct whose keys are in the enclosing
// table.
func TestCheckConfOrder(t *testing.T) {
	calls = nil
	f, errs := conffile.Decode[orderFile]([]byte("x = \"flat\"\n[a.sub]\ny = 1\n[[list]]\n[[list]]\nx = \"2\"\n[list.sub]\n[named]\nz = true\n"))
	if len(errs) > 0 {
		t.Fatalf("errors:%s", dump(errs))
	}
	want := []string{
		"inner a.sub y=a.sub.y",
		"table a x=a.x",
		"table list[0] x=list[0].x",
		"inner list[1].sub y=list[1].sub.y",
		"table list[1] x=list[1].x",
		"named named z=named.z",
		"table  x=x",
		"file  set: set absent set set set",
	}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	if !f.Z || f.Flat.X != "flat" || f.A.Sub.Y != 1 || f.B != nil || len(f.List) != 2 || f.List[1].X != "2" {
		t.Errorf("config %+v", f)
	}
}

// promoted embeds a table with a CheckConf and declares none: the
// table's, promoted to it, is called once, at the table's place.
type promoted struct {
	Named `toml:"named"`
	After orderInner `toml:"after"`
}

func TestCheckConfPromoted(t *testing.T) {
	calls = nil
	if _, errs := conffile.Decode[promoted]([]byte("[named]\nz = true\n")); len(errs) > 0 {
		t.Fatalf("errors:%s", dump(errs))
	}
	if want := []string{"named named z=named.z", "inner after y=after.y"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
}

// helperFile is checked, case by case, by helperCheck.
type helperFile struct {
	S       string              `toml:"s"`
	Opt     string              `toml:"opt"`
	L       []string            `toml:"l" conf:"unique"`
	N       int                 `toml:"n" conf:"default=4"`
	PINFile string              `toml:"pin_file" conf:"abspath"`
	PINEnv  string              `toml:"pin_env"`
	Listen  string              `toml:"listen"`
	TLS     *conffile.TLSServer `toml:"tls"`
	Client  *conffile.TLSClient `toml:"client"`
}

var helperCheck func(c *conffile.Checker, f *helperFile)

func (f *helperFile) CheckConf(c *conffile.Checker) { helperCheck(c, f) }

func TestCheckerHelpers(t *testing.T) {
	const tls = "\n[tls]\ncert = \"/c\"\nkey = \"/k\"\nclient_ca = \"/ca\"\nallowed_identities = [\"a\"]\n"
	const client = "\n[client]\ncert = \"/c\"\nkey = \"/k\"\nca = \"/ca\"\nserver_name = \"signer.cold\"\n"
	tests := []struct {
		name     string
		src      string
		check    func(c *conffile.Checker, f *helperFile)
		key, msg string // "" for no error
	}{
		{"require absent", ``, func(c *conffile.Checker, f *helperFile) { c.Require(&f.S) }, "s", "required"},
		{"require empty", `s = ""`, func(c *conffile.Checker, f *helperFile) { c.Require(&f.S) }, "s", "must not be empty"},
		{"require a failed key", `s = 1`, func(c *conffile.Checker, f *helperFile) { c.Require(&f.S) }, "s", "must be a string, not an integer"},
		{"require set", `s = "x"`, func(c *conffile.Checker, f *helperFile) { c.Require(&f.S) }, "", ""},
		{"check", `s = "ab"`, func(c *conffile.Checker, f *helperFile) { c.Check(&f.S, tooLong) }, "s", "too long"},
		{"check fine", `s = "a"`, func(c *conffile.Checker, f *helperFile) { c.Check(&f.S, tooLong) }, "", ""},
		{"check absent", ``, func(c *conffile.Checker, f *helperFile) { c.Check(&f.S, tooLong) }, "", ""},
		{"check empty", `s = ""`, func(c *conffile.Checker, f *helperFile) { c.Check(&f.S, tooLong) }, "s", "must not be empty"},
		{"check each", `l = ["a", "ab"]`, func(c *conffile.Checker, f *helperFile) { c.CheckEach(&f.L, tooLong) }, "l[1]", "too long"},
		{"fail at", `s = "x"`, func(c *conffile.Checker, f *helperFile) { c.FailAt(&f.L, "about %s", c.Key(&f.S)) }, "l", "about s"},
		{"only when", `s = "x"`, func(c *conffile.Checker, f *helperFile) {
			c.OnlyWhen(false, "with opt", &f.S, &f.N)
			if f.S != "" || f.N != 0 {
				c.FailAt(f, "not zeroed")
			}
		}, "s", "only allowed with opt"},
		{"only when ok", `s = "x"`, func(c *conffile.Checker, f *helperFile) { c.OnlyWhen(true, "with opt", &f.S, &f.N) }, "", ""},
		{"int range", `n = 0`, func(c *conffile.Checker, f *helperFile) { c.IntRange(&f.N, 1, 64) }, "n", "must be from 1 to 64, not 0"},
		{"int range default", ``, func(c *conffile.Checker, f *helperFile) { c.IntRange(&f.N, 1, 3) }, "", ""},
		{"failed", `l = ["a", 1]`, func(c *conffile.Checker, f *helperFile) {
			if !c.Failed(&f.L) || c.Failed(&f.S) || !c.Failed(f) {
				c.FailAt(f, "Failed is wrong")
			}
		}, "l[1]", "must be a string"},
		{"pin neither", ``, func(c *conffile.Checker, f *helperFile) { c.PINSource(&f.PINFile, &f.PINEnv) }, "pin_file", "required (or pin_env): give exactly one PIN source"},
		{"pin both", "pin_file = \"/p\"\npin_env = \"P\"", func(c *conffile.Checker, f *helperFile) { c.PINSource(&f.PINFile, &f.PINEnv) }, "pin_env", "not allowed together with pin_file"},
		{"pin env name", `pin_env = "1P"`, func(c *conffile.Checker, f *helperFile) { c.PINSource(&f.PINFile, &f.PINEnv) }, "pin_env", `"1P" is not an environment variable name`},
		{"pin file empty, env", "pin_file = \"\"\npin_env = \"P\"", func(c *conffile.Checker, f *helperFile) { c.PINSource(&f.PINFile, &f.PINEnv) }, "", ""},
		{"secret neither", ``, func(c *conffile.Checker, f *helperFile) { c.SecretSource(&f.PINFile, &f.PINEnv, "connection string") }, "pin_file", "required (or pin_env): give exactly one connection string source"},
		{"secret both", "pin_file = \"/p\"\npin_env = \"P\"", func(c *conffile.Checker, f *helperFile) { c.SecretSource(&f.PINFile, &f.PINEnv, "connection string") }, "pin_env", "not allowed together with pin_file: give exactly one connection string source"},
		{"endpoint", `listen = "unix:///run/x.sock"`, func(c *conffile.Checker, f *helperFile) {
			if ep := c.Endpoint(&f.Listen, conffile.Listen); ep != (conffile.Endpoint{Network: "unix", Address: "/run/x.sock"}) {
				c.FailAt(f, "endpoint %+v", ep)
			}
		}, "", ""},
		{"endpoint bad", `listen = "tcp://:1"`, func(c *conffile.Checker, f *helperFile) { c.Endpoint(&f.Listen, conffile.Listen) }, "listen", "no host (write 0.0.0.0"},
		{"endpoint dial", `listen = "tcp://:1"`, func(c *conffile.Checker, f *helperFile) { c.Endpoint(&f.Listen, conffile.Dial) }, "listen", `"tcp://:1" has no host`},
		{"endpoint scheme", `listen = "http://x:1"`, func(c *conffile.Checker, f *helperFile) { c.Endpoint(&f.Listen, conffile.Dial) }, "listen", "must be unix:///absolute/path or tcp://host:port"},
		{"endpoint two slashes", `listen = "unix://run/x"`, func(c *conffile.Checker, f *helperFile) { c.Endpoint(&f.Listen, conffile.Dial) }, "listen", "three slashes"},
		{"endpoint long path", `listen = "unix:///` + strings.Repeat("s", 107) + `"`, func(c *conffile.Checker, f *helperFile) { c.Endpoint(&f.Listen, conffile.Dial) }, "listen", "longer than 107 bytes"},
		{"endpoint port", `listen = "tcp://h:65536"`, func(c *conffile.Checker, f *helperFile) { c.Endpoint(&f.Listen, conffile.Dial) }, "listen", `port "65536"`},
		{"endpoint host", `listen = "tcp://a_b:1"`, func(c *conffile.Checker, f *helperFile) { c.Endpoint(&f.Listen, conffile.Dial) }, "listen", "not an IP address or host name"},
		{"host:port", `s = "127.0.0.1:9464"`, func(c *conffile.Checker, f *helperFile) { c.HostPort(&f.S, conffile.Listen) }, "", ""},
		{"host:port no port", `s = "127.0.0.1"`, func(c *conffile.Checker, f *helperFile) { c.HostPort(&f.S, conffile.Listen) }, "s", `must be host:port, not "127.0.0.1"`},
		{"host:port no host", `s = ":9464"`, func(c *conffile.Checker, f *helperFile) { c.HostPort(&f.S, conffile.Listen) }, "s", "no host (write 0.0.0.0"},
		{"host:port port 0", `s = "h:0"`, func(c *conffile.Checker, f *helperFile) { c.HostPort(&f.S, conffile.Listen) }, "s", `port "0"`},
		{"http listen tcp", `s = "127.0.0.1:9465"`, func(c *conffile.Checker, f *helperFile) {
			if ep := c.HTTPListen(&f.S); ep != (conffile.Endpoint{Network: "tcp", Address: "127.0.0.1:9465"}) {
				c.FailAt(f, "endpoint %+v", ep)
			}
		}, "", ""},
		{"http listen unix", `s = "unix:///run/nanokms/h.sock"`, func(c *conffile.Checker, f *helperFile) {
			if ep := c.HTTPListen(&f.S); ep != (conffile.Endpoint{Network: "unix", Address: "/run/nanokms/h.sock"}) {
				c.FailAt(f, "endpoint %+v", ep)
			}
		}, "", ""},
		{"http listen absent", ``, func(c *conffile.Checker, f *helperFile) {
			if ep := c.HTTPListen(&f.S); ep != (conffile.Endpoint{}) {
				c.FailAt(f, "endpoint %+v", ep)
			}
		}, "", ""},
		{"http listen tcp scheme", `s = "tcp://127.0.0.1:9465"`, func(c *conffile.Checker, f *helperFile) { c.HTTPListen(&f.S) }, "s", `must be host:port or unix:///absolute/path, not "tcp://127.0.0.1:9465"`},
		{"http listen no port", `s = "localhost"`, func(c *conffile.Checker, f *helperFile) { c.HTTPListen(&f.S) }, "s", `must be host:port or unix:///absolute/path, not "localhost"`},
		{"http listen no host", `s = ":9465"`, func(c *conffile.Checker, f *helperFile) { c.HTTPListen(&f.S) }, "s", "no host (write 0.0.0.0"},
		{"http listen two slashes", `s = "unix://run/h.sock"`, func(c *conffile.Checker, f *helperFile) { c.HTTPListen(&f.S) }, "s", "three slashes"},
		{"http listen long path", `s = "unix:///` + strings.Repeat("s", 107) + `"`, func(c *conffile.Checker, f *helperFile) { c.HTTPListen(&f.S) }, "s", "longer than 107 bytes"},
		{"url", `s = "http://[::1]:7076/rpc"`, func(c *conffile.Checker, f *helperFile) { c.URL(&f.S, "http", "https") }, "", ""},
		{"url scheme", `s = "ftp://h"`, func(c *conffile.Checker, f *helperFile) { c.URL(&f.S, "http", "https") }, "s", `must be a URL starting with http:// or https://, not "ftp://h"`},
		{"url no host", `s = "http:///x"`, func(c *conffile.Checker, f *helperFile) { c.URL(&f.S, "http") }, "s", "has no host"},
		{"url user", `s = "http://u:secret@h"`, func(c *conffile.Checker, f *helperFile) { c.URL(&f.S, "http") }, "s", "user name or password"},
		{"url port", `s = "ws://h:0"`, func(c *conffile.Checker, f *helperFile) { c.URL(&f.S, "ws") }, "s", `port "0"`},
		{"url host", `s = "ws://a_b:1"`, func(c *conffile.Checker, f *helperFile) { c.URL(&f.S, "ws") }, "s", "not an IP address or host name"},
		{"key label", `s = " k"`, func(c *conffile.Checker, f *helperFile) { c.KeyLabel(&f.S) }, "s", "must not start or end with a space"},
		{"key label long", `s = "` + strings.Repeat("k", 65) + `"`, func(c *conffile.Checker, f *helperFile) { c.KeyLabel(&f.S) }, "s", "longer than 64 bytes"},
		{"printable", `l = ["a", "a` + "\\t" + `b"]`, func(c *conffile.Checker, f *helperFile) { c.CheckEach(&f.L, conffile.CheckPrintable) }, "l[1]", "printable UTF-8"},
		{"tcp needs tls", `listen = "tcp://h:1"`, func(c *conffile.Checker, f *helperFile) { c.NeedsTLS(&f.TLS, &f.Listen, "it serves TCP") }, "tls", "required when listen is tcp://: it serves TCP only with mutual TLS 1.3"},
		{"unix takes no tls", `listen = "unix:///x"` + tls, func(c *conffile.Checker, f *helperFile) { c.NeedsTLS(&f.TLS, &f.Listen, "x") }, "tls", "only allowed when listen is tcp://"},
		{"tcp with tls", `listen = "tcp://h:1"` + tls, func(c *conffile.Checker, f *helperFile) {
			if c.NeedsTLS(&f.TLS, &f.Listen, "x") {
				f.TLS.Check(c, "")
			}
		}, "", ""},
		{"tls key on no token", `listen = "tcp://h:1"` + strings.Replace(tls, "key =", "key_label =", 1), func(c *conffile.Checker, f *helperFile) { f.TLS.Check(c, "") }, "tls.key_label", "not supported here: this role has no token to hold its TLS key (give tls.key, a PEM file)"},
		{"tls key on a token", `listen = "tcp://h:1"` + strings.Replace(tls, "key = \"/k\"", "key_label = \"k\"", 1), func(c *conffile.Checker, f *helperFile) { f.TLS.Check(c, "token") }, "", ""},
		{"tls no key, a token", strings.Replace(tls, "key = \"/k\"", "", 1), func(c *conffile.Checker, f *helperFile) { f.TLS.Check(c, "token") }, "tls.key", "required (or tls.key_label, the label of a key on the [token] token made by 'nanokms token tls-key')"},
		{"tls no key, no token", strings.Replace(tls, "key = \"/k\"", "", 1), func(c *conffile.Checker, f *helperFile) { f.TLS.Check(c, "") }, "tls.key", "required"},
		{"tls identities empty", strings.Replace(tls, `["a"]`, `[]`, 1), func(c *conffile.Checker, f *helperFile) { f.TLS.Check(c, "") }, "tls.allowed_identities", "must list at least one identity"},
		{"tls client", client, func(c *conffile.Checker, f *helperFile) {}, "", ""},
		{"tls client server name", strings.Replace(client, "signer.cold", "a b", 1), func(c *conffile.Checker, f *helperFile) {}, "client.server_name", `"a b" is not an IP address or host name`},
		{"tls client token without key label", client + "[client.token]\nmodule = \"/m.so\"\nlabel = \"t\"\npin_env = \"P\"\n", func(c *conffile.Checker, f *helperFile) {}, "client.token", "only allowed with client.key_label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			helperCheck = tt.check
			_, errs := conffile.Decode[helperFile]([]byte(tt.src))
			switch {
			case tt.key == "" && len(errs) > 0:
				t.Errorf("unexpected errors:%s", dump(errs))
			case tt.key != "" && !hasError(errs, tt.key, tt.msg):
				t.Errorf("no error at %q containing %q; got:%s", tt.key, tt.msg, dump(errs))
			case tt.key != "" && len(errs) != 1:
				t.Errorf("want one error at %q containing %q; got:%s", tt.key, tt.msg, dump(errs))
			}
		})
	}
}

// TestCheckEachPlaces checks that CheckEach names an element by its place
// in the file, when the reader left out one before it.
func TestCheckEachPlaces(t *testing.T) {
	helperCheck = func(c *conffile.Checker, f *helperFile) { c.CheckEach(&f.L, tooLong) }
	_, errs := conffile.Decode[helperFile]([]byte(`l = ["a", "a", "cd"]`))
	if len(errs) != 2 || errs[0].Key != "l[1]" || errs[1].Key != "l[2]" || errs[1].Msg != "too long" {
		t.Errorf("errors:%s", dump(errs))
	}
}

func tooLong(s string) string {
	if len(s) > 1 {
		return "too long"
	}
	return ""
}

// TestCheckerPanicsOnStrangers checks that naming something that is not a
// field read from the file is refused loudly: a bug in a CheckConf.
func TestCheckerPanicsOnStrangers(t *testing.T) {
	var stranger string
	for _, name := range []func(c *conffile.Checker, f *helperFile){
		func(c *conffile.Checker, f *helperFile) { c.Key(&stranger) },
		func(c *conffile.Checker, f *helperFile) { c.Key(f.S) },
		func(c *conffile.Checker, f *helperFile) { c.IsSet((*string)(nil)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			helperCheck = name
			conffile.Decode[helperFile](nil)
		}()
	}
}
