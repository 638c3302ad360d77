package hsm

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"testing"
)

// FuzzParseBlob: parseBlob never panics, and a blob it accepts marshals
// back to the same bytes.
func FuzzParseBlob(f *testing.F) {
	for _, form := range blobForms {
		for _, kind := range []WalletKind{KindSeed, KindBIP39} {
			b := testBlob(form.scheme, kind)
			f.Add(b.marshal())
		}
	}
	if raw, err := base64.StdEncoding.DecodeString(legacyV1Blob); err == nil {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseBlob(data)
		if err != nil {
			return
		}
		if !bytes.Equal(b.marshal(), data) {
			t.Fatalf("marshal(parse(%x)) = %x", data, b.marshal())
		}
		again, err := parseBlob(b.marshal())
		if err != nil || !reflect.DeepEqual(again, b) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzParseExport: parseExport never panics, and an export it accepts is
// consistent with its blob and survives a marshal and parse.
func FuzzParseExport(f *testing.F) {
	for _, form := range blobForms {
		b := testBlob(form.scheme, KindSeed)
		doc, _ := marshalExport("w", &b, "0011223344556677")
		f.Add(doc)
		// Without a check value (a token that makes its own GCM IVs).
		doc, _ = marshalExport("w", &b, "")
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, b, err := parseExport(data)
		if err != nil {
			return
		}
		if e.WalletID != b.id.String() || e.Kind != b.kind.String() {
			t.Fatalf("accepted an inconsistent export %+v", e)
		}
		doc, err := marshalExport(e.Label, &b, e.MasterKeyCheck)
		if err != nil {
			t.Fatal(err)
		}
		if _, b2, err := parseExport(doc); err != nil || !reflect.DeepEqual(b2, b) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzParseMasterPackage: never panics; what it accepts marshals back to a
// package that parses to the same.
func FuzzParseMasterPackage(f *testing.F) {
	for _, s := range Schemes {
		p := &parsedPackage{scheme: s, check: "0011223344556677", transportKey: TransportKeyFingerprint([]byte("x")), mechanism: wrapMechanismName}
		for _, r := range schemeRoles(s) {
			p.keys = append(p.keys, wrappedKey{role: r, id: []byte{1, 2}, wrapped: []byte{3, 4, 5}})
		}
		doc, _ := marshalPackage(p)
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseMasterPackage(data)
		if err != nil {
			return
		}
		doc, err := marshalPackage(p)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseMasterPackage(doc)
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, again, p)
		}
	})
}

// FuzzWalletFileName: a label's file name stands for that label only.
func FuzzWalletFileName(f *testing.F) {
	f.Add("hot wallet")
	f.Add("café")
	f.Add("64657431.wallet")
	f.Fuzz(func(t *testing.T, s string) {
		if l, ok := labelOf(s); ok && walletFileName(l) != s {
			t.Fatalf("labelOf(%q) = %q, whose name is %q", s, l, walletFileName(l))
		}
		if validLabel(s) == nil {
			if l, ok := labelOf(walletFileName(s)); !ok || l != s {
				t.Fatalf("label %q does not round-trip", s)
			}
		}
	})
}
