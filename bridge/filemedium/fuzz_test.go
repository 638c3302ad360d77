package filemedium

import (
	"strings"
	"testing"

	"github.com/nanokms/nanokms/bridge/frame"
)

// FuzzMediumNames: parseTempName accepts exactly the names tempName
// makes (and so a writer removes nothing else), parseSetAside exactly the
// names setAside makes; neither ever accepts a frame's name, and a valid
// request id always round-trips through a temporary name.
func FuzzMediumNames(f *testing.F) {
	for _, s := range []string{".tmp-wd-1-0123456789abcdef", ".tmp-0123456789abcdef", ".tmp--0123456789abcdef",
		".tmp-.x-0123456789abcdef", ".tmp-wd-1-0123456789ABCDEF", ".tmp-wd-1-0123456789abcde", "done.bad-0123456789abcdef",
		".bad-0123456789abcdef", "to-hot.bad-0123456789abcdeg", "a.request.nkb", "wd-1", "relay"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if id, ok := parseTempName(name); ok {
			rnd := name[len(name)-16:]
			want := TempPrefix + rnd
			if id != "" {
				want = TempPrefix + id + "-" + rnd
			}
			if want != name || strings.HasSuffix(name, FileSuffix) || !validName(name) {
				t.Fatalf("parseTempName(%q) = %q: not a name tempName makes", name, id)
			}
		}
		if orig, ok := parseSetAside(name); ok {
			if orig+SetAsideMark+name[len(name)-16:] != name || strings.HasSuffix(name, FileSuffix) || !validName(orig) {
				t.Fatalf("parseSetAside(%q) = %q: not a name setAside makes", name, orig)
			}
		}
		if frame.ValidRequestID(name) {
			tmp := tempName(name)
			if id, ok := parseTempName(tmp); !ok || id != name {
				t.Fatalf("tempName(%q) = %q parses as %q, %v", name, tmp, id, ok)
			}
			if _, ok := parseTempName(name + ".request" + FileSuffix); ok {
				t.Fatalf("the frame name of %q parses as a temporary file", name)
			}
		}
	})
}
