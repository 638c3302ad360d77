package p11uri

import (
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics, and what it accepts formats back to a URI
// that parses to the same attributes.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"pkcs11:", "pkcs11:token=NSS%20Certificate%20DB", "pkcs11:token=a;serial=1;slot-id=7?module-path=/x/y.so",
		"pkcs11:object=k;id=%00%ff;type=private", "pkcs11:x-a=b?x-c=d%3B", "pkcs11:library-version=2.40",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(u.String())
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String %q does not parse: %v", s, u.String(), err)
		}
		if !reflect.DeepEqual(u, again) {
			t.Fatalf("round trip changed %q: %+v != %+v", s, u, again)
		}
	})
}
