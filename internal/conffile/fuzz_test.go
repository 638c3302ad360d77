package conffile_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/internal/conffile"
)

// readAll reads every value of f with a Checker, as a validator would.
func readAll(c *conffile.Checker, f *testFile) {
	c.Str("server.name", f.Server.Name)
	c.IntIn("server.port", f.Server.Port, 80, 1, 65535)
	c.Duration("server.timeout", f.Server.Timeout, 0)
	c.OneOf("server.log_level", f.Server.LogLevel, "info", "debug", "info")
	c.UniqueStrings("server.tags", f.Server.Tags, conffile.CheckPrintable)
	if f.Extra != nil {
		c.Bool("extra.debug", f.Extra.Debug, false)
	}
	for i, it := range f.Items {
		k := fmt.Sprintf("items[%d]", i)
		c.Endpoint(k+".name", it.Name, conffile.Dial)
		for j, s := range it.Subs {
			c.Amount(fmt.Sprintf("%s.subs[%d].weight", k, j), s.Weight)
		}
	}
	if f.Outer != nil {
		c.DurationOrZero("outer.inner.depth", f.Outer.Inner.Depth, 0)
	}
	for i, g := range f.Groups {
		k := fmt.Sprintf("groups[%d].name", i)
		if g.Name.IsSet() {
			c.URL(k, g.Name, "http", "https")
		}
		c.Accounts(k, g.Name, nil)
		c.Account(k, g.Name)
		c.HostPort(k, g.Name, conffile.Listen)
	}
}

// FuzzParse checks that Parse and the readers never panic, that a failed
// Parse says why, that every error but a syntax error names a key which
// its message starts with, and that errors come in a stable order.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		"[server]\nname = \"web\"\nport = 80\ntimeout = \"1s\"\nlog_level = \"debug\"\ntags = [\"a\", \"b\"]",
		"[extra]\ndebug = true\n[outer.inner]\ndepth = \"0s\"",
		"[[items]]\nname = \"tcp://h:1\"\n[[items.subs]]\nweight = \"1 XNO\"\n[[items.subs]]\nweight = 5",
		"[[items]]\nsubs = [{weight = 1}, {weight = 2, w = 3}]",
		"[[groups]]\nname = [\"nano_1\"]\n[[groups]]\nname = \"http://[::1]:1\"",
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
		run := func() (string, []*conffile.Error) {
			var shape testFile
			c, ok := conffile.Parse(data, &shape)
			if !ok {
				if len(c.Errors()) == 0 {
					t.Fatal("Parse failed without an error")
				}
			} else {
				readAll(c, &shape)
			}
			var b strings.Builder
			for _, e := range c.Errors() {
				b.WriteString(e.Error())
				b.WriteByte('\n')
			}
			return b.String(), c.Errors()
		}
		first, errs := run()
		for _, e := range errs {
			switch {
			case e.Msg == "":
				t.Fatalf("empty message at %q", e.Key)
			case e.Key == "" && !strings.HasPrefix(e.Msg, "TOML"):
				t.Fatalf("no key: %q", e.Msg)
			case !strings.HasPrefix(e.Error(), place(e)+e.Key):
				t.Fatalf("%q does not start with its key", e.Error())
			}
		}
		if again, _ := run(); again != first {
			t.Fatalf("errors differ between runs:\n%s--\n%s", first, again)
		}
	})
}
