package conffile_test

import (
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/nano"
)

// fuzzFile is testFile with every leaf type and a CheckConf using the
// Checker's helpers, as a role's configuration would.
type fuzzFile struct {
	Base   testFile            `toml:",inline"`
	Keys   []fuzzKey           `toml:"keys"`
	Rep    nano.PublicKey      `toml:"rep"`
	Listen string              `toml:"listen" conf:"default=unix:///run/x.sock"`
	TLS    *conffile.TLSServer `toml:"tls"`
	Client *conffile.TLSClient `toml:"client"`
}

type fuzzKey struct {
	Name string            `toml:"name" conf:"required"`
	Key  ed25519.PublicKey `toml:"key" conf:"required"`
	Path string            `toml:"path" conf:"abspath"`
}

func (f *fuzzFile) CheckConf(c *conffile.Checker) {
	c.Endpoint(&f.Listen, conffile.Listen)
	if c.NeedsTLS(&f.TLS, &f.Listen, "it serves TCP") {
		f.TLS.Check(c, "token")
	}
	c.CheckEach(&f.Base.Server.Tags, conffile.CheckPrintable)
	c.Check(&f.Base.Server.Name, conffile.CheckKeyLabel)
	c.OnlyWhen(f.Base.Server.LogLevel == "debug", "when server.log_level = \"debug\"", &f.Base.Server.Timeout)
	c.IntRange(&f.Base.Server.Port, 1, 65535)
	for i := range f.Base.Items {
		c.URL(&f.Base.Items[i].Name, "http", "https")
	}
	for i := range f.Base.Groups {
		c.HostPort(&f.Base.Groups[i].Name, conffile.Dial)
		if len(f.Base.Groups[i].Members) == 0 && !c.Failed(&f.Base.Groups[i].Members) {
			c.FailAt(&f.Base.Groups[i], "has no members")
		}
	}
	for i := range f.Keys {
		c.Require(&f.Keys[i].Path)
	}
}

// FuzzParse checks that Decode and the helpers never panic, that a
// refusal says why, that every error but a syntax error names a key which
// its message starts with, and that errors come in a stable order.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"[server]\nname = \"web\"\nport = 80\ntimeout = \"1s\"\nlog_level = \"debug\"\ntags = [\"a\", \"b\"]",
		"[extra]\ndebug = true\n[outer.inner]\ndepth = \"0s\"",
		"[[items]]\nname = \"http://h:1\"\n[[items.subs]]\nweight = 5\n[[items.subs]]\nweight = \"5\"",
		"[[items]]\nsubs = [{weight = 1}, {weight = 2, w = 3}]",
		"[[groups]]\nname = [\"nano_1\"]\nmembers = [\"nano_1\", 1]\n[[groups]]\nname = \"[::1]:1\"\nlimit = \"1 XNO\"",
		"listen = \"tcp://h:1\"\n[tls]\ncert = \"/c\"\nkey_label = \" k\"\nclient_ca = \"/a\"\nallowed_identities = [\"r\", \"r\", 1]",
		"[client]\ncert = \"/c\"\nkey_label = \"k\"\nca = \"/a\"\nserver_name = \"h\"\n[client.token]\nmodule = \"m.so\"\nlabel = \"t\"\npin_env = \"1\"",
		"[[keys]]\nname = \"a\"\nkey = \"0100000000000000000000000000000000000000000000000000000000000000\"\n[[keys]]\nkey = 5\npath = \"\"",
		"rep = \"nano_3t6k35gi95xu6tergt6p69ck76ogmitsa8mnijtpxm9fkcm736xtoncuohr3\"",
		"server = 5",
		"[[server]]",
		"[Server]\nNAME = 1\n\"a.b\".c = 2",
		"items = [1, {a = 2}]",
		"a.b.c = 1\n\"a\".\"b\" = 2",
		"[server\nname = 1",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		run := func() string {
			cfg, errs := conffile.Decode[fuzzFile](data)
			if (cfg == nil) == (len(errs) == 0) {
				t.Fatalf("Decode returned %v and %d errors", cfg != nil, len(errs))
			}
			var b strings.Builder
			for _, e := range errs {
				switch {
				case e.Msg == "":
					t.Fatalf("empty message at %q", e.Key)
				case e.Key == "" && !strings.HasPrefix(e.Msg, "TOML"):
					t.Fatalf("no key: %q", e.Msg)
				case !strings.HasPrefix(e.Error(), place(e)+e.Key):
					t.Fatalf("%q does not start with its key", e.Error())
				}
				b.WriteString(e.Error())
				b.WriteByte('\n')
			}
			return b.String()
		}
		if first, again := run(), run(); again != first {
			t.Fatalf("errors differ between runs:\n%s--\n%s", first, again)
		}
	})
}
