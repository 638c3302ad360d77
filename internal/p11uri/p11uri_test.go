package p11uri

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want URI
	}{
		{"pkcs11:", URI{}},
		{"PKCS11:token=a", URI{Path: []Attr{{Token, "a"}}}},
		{"pkcs11:token=NSS%20Certificate%20DB", URI{Path: []Attr{{Token, "NSS Certificate DB"}}}},
		{"pkcs11:token=signer;serial=8f3c1a;slot-id=42", URI{Path: []Attr{{Token, "signer"}, {Serial, "8f3c1a"}, {SlotID, "42"}}}},
		{"pkcs11:object=my%3Bkey;id=%01%02%FF;type=secret-key", URI{Path: []Attr{{Object, "my;key"}, {ID, "\x01\x02\xff"}, {Type, "secret-key"}}}},
		{"pkcs11:token=a?module-path=/usr/lib/softhsm/libsofthsm2.so&x-vendor=1", URI{Path: []Attr{{Token, "a"}}, Query: []Attr{{ModulePath, "/usr/lib/softhsm/libsofthsm2.so"}, {"x-vendor", "1"}}}},
		{"pkcs11:library-version=3.87;library-manufacturer=Mozilla%20Foundation", URI{Path: []Attr{{LibraryVersion, "3.87"}, {LibraryManufacturer, "Mozilla Foundation"}}}},
		{"pkcs11:token=", URI{Path: []Attr{{Token, ""}}}},
		{"pkcs11:token=a&b", URI{Path: []Attr{{Token, "a&b"}}}},
		{"pkcs11:token=a?", URI{Path: []Attr{{Token, "a"}}}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, *got, tt.want)
		}
		again, err := Parse(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("Parse(String(%q) = %q) = %+v, %v", tt.in, got.String(), again, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"token=a", "pkcs11", "pkcs11:token", "pkcs11:=a", "pkcs11:colour=red",
		"pkcs11:token=a;token=b", "pkcs11:token=a b", "pkcs11:token=%2", "pkcs11:token=%zz",
		"pkcs11:slot-id=x", "pkcs11:slot-id=", "pkcs11:slot-id=99999999999999999999999",
		"pkcs11:library-version=3.x", "pkcs11:type=key", "pkcs11:token=a?pin-value=1234",
		"pkcs11:token=a?module-path=/x&module-path=/y", "pkcs11:token=a#frag", "pkcs11:token=a?module-path=a;b",
		"pkcs11:token=a/b", "pkcs11:" + strings.Repeat("a", MaxLen),
	} {
		if u, err := Parse(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %+v, %v; want ErrSyntax", in, u, err)
		}
	}
}

func TestPINValueNeverEchoed(t *testing.T) {
	_, err := Parse("pkcs11:token=a?pin-value=s3cret-9876")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v", err)
	}
}

func TestMatchesToken(t *testing.T) {
	d := TokenDescription{Token: "signer", Serial: "123", Manufacturer: "IBM", Model: "IBM SoftTok", LibraryVersion: "3.8", SlotID: 3}
	for in, want := range map[string]bool{
		"pkcs11:":                              true,
		"pkcs11:token=signer":                  true,
		"pkcs11:token=signer;serial=123":       true,
		"pkcs11:token=signer;serial=124":       false,
		"pkcs11:slot-id=3":                     true,
		"pkcs11:slot-id=4":                     false,
		"pkcs11:library-version=3":             true,
		"pkcs11:library-version=3.08":          true,
		"pkcs11:library-version=3.9":           false,
		"pkcs11:model=IBM%20SoftTok;object=k1": true,
		"pkcs11:token=Signer":                  false,
	} {
		u, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.MatchesToken(d); got != want {
			t.Errorf("%s matches = %v, want %v", in, got, want)
		}
	}
}
