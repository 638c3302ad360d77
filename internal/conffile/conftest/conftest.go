// Package conftest holds what the configuration tests of every role
// share: edits of a file's text, and checks of the errors package
// conffile returns. It is for tests only.
package conftest

import (
	"os"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/internal/conffile"
)

// Edit is a change to a configuration text.
type Edit func(t testing.TB, src string) string

// Replace replaces the first old with new; old must be present.
func Replace(old, new string) Edit {
	return func(t testing.TB, src string) string {
		t.Helper()
		if !strings.Contains(src, old) {
			t.Fatalf("test bug: %q is not in the configuration", old)
		}
		return strings.Replace(src, old, new, 1)
	}
}

// After inserts text on the line after the first line equal to line.
func After(line, text string) Edit {
	return Replace(line+"\n", line+"\n"+text+"\n")
}

// Add appends text at the end.
func Add(text string) Edit {
	return func(t testing.TB, src string) string { return src + "\n" + text + "\n" }
}

// Prepend puts text at the start, before any table.
func Prepend(text string) Edit {
	return func(t testing.TB, src string) string { return text + "\n" + src }
}

// Apply applies edits to src in order.
func Apply(t testing.TB, src string, edits ...Edit) string {
	t.Helper()
	for _, e := range edits {
		src = e(t, src)
	}
	return src
}

// MustReadFile returns the contents of the file at path.
func MustReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Errors checks that err is a *conffile.Error or a joined list of them,
// each naming a key (or, for a syntax error, a line), and returns them.
func Errors(t testing.TB, err error) []*conffile.Error {
	t.Helper()
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	out := make([]*conffile.Error, 0, len(list))
	for _, e := range list {
		ce, ok := e.(*conffile.Error)
		if !ok {
			t.Fatalf("error %T (%v) is not a *conffile.Error", e, e)
		}
		if ce.Key == "" && !strings.HasPrefix(ce.Msg, "TOML syntax error at line") {
			t.Errorf("error %q names no key", ce.Error())
		}
		if !strings.Contains(ce.Error(), ce.Key) {
			t.Errorf("Error() %q does not name the key %q", ce.Error(), ce.Key)
		}
		out = append(out, ce)
	}
	return out
}

// WantError checks that err holds an error at key with msg in its
// message.
func WantError(t testing.TB, err error, key, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one at %q", key)
	}
	for _, e := range Errors(t, err) {
		if e.Key == key && strings.Contains(e.Msg, msg) {
			return
		}
	}
	t.Errorf("no error at %q containing %q; got:\n%v", key, msg, err)
}

// InDocs checks that the section of the markdown file doc headed
// "# section" (a top-level heading; "" for the text before the first one)
// shows example verbatim in a ```toml block.
func InDocs(t testing.TB, doc, section, example string) {
	t.Helper()
	sections := map[string]string{}
	var name string
	fenced := false // inside a ``` block, where "# " starts a comment
	for _, line := range strings.SplitAfter(MustReadFile(t, doc), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if h, ok := strings.CutPrefix(line, "# "); ok && !fenced {
			name = strings.TrimSpace(h)
		}
		sections[name] += line
	}
	rest := sections[section]
	for {
		_, block, ok := strings.Cut(rest, "```toml\n")
		if !ok {
			t.Errorf("the %q section of %s has no ```toml block equal to the example:\n%s", section, doc, example)
			return
		}
		var body string
		body, rest, _ = strings.Cut(block, "```\n")
		if body == example {
			return
		}
	}
}
