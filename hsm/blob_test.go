package hsm

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// testBlob returns a well-formed blob of scheme and kind (version 2, or
// version 1 for scheme 0).
func testBlob(scheme SealScheme, kind WalletKind) sealedBlob {
	b := sealedBlob{version: blobV2, scheme: scheme, kind: kind}
	if scheme == 0 {
		b.version, b.scheme = blobV1, SchemeAESGCM
	}
	copy(b.id[:], "0123456789abcdef")
	ivLen, bodyLen, mLen, _ := sealedLens(b.scheme, kind)
	b.iv = bytes.Repeat([]byte{0x1F}, ivLen)
	b.ct = bytes.Repeat([]byte{0xAB}, bodyLen)
	if mLen > 0 {
		b.mac = bytes.Repeat([]byte{0xCD}, mLen)
	}
	return b
}

var blobForms = []struct {
	name   string
	scheme SealScheme // 0: version 1
}{{"v1", 0}, {"v2-gcm", SchemeAESGCM}, {"v2-cbc-hmac", SchemeAESCBCHMAC}}

func TestBlobRoundTrip(t *testing.T) {
	for _, f := range blobForms {
		for _, kind := range []WalletKind{KindSeed, KindBIP39} {
			b := testBlob(f.scheme, kind)
			got, err := parseBlob(b.marshal())
			if err != nil {
				t.Fatalf("%s %s: %v", f.name, kind, err)
			}
			if !reflect.DeepEqual(got, b) {
				t.Fatalf("%s %s: round trip changed the blob: %+v != %+v", f.name, kind, got, b)
			}
		}
	}
}

// The bytes of a version 1 blob are exactly those nanokms wrote before
// seal schemes: a blob made then (the sealed field of the export in
// cmd/nanokms/testdata/legacy-v1, made by that code on a SoftHSM token)
// parses, and marshals back to the same bytes.
// legacyV1Blob is the sealed blob of wallet det1 made by nanokms before
// seal schemes (cmd/nanokms/testdata/legacy-v1/det1.export).
const legacyV1Blob = "AQE5MX89sHpc/ML+jmuvQ/to9qtPlohkA64o28PkCTyvyxb9DtqTYg9v1RJrLqdjIe76iOaQ89lxM67tiKmC8EByWLddS8ZAD+srJ1sC"

func TestBlobV1Layout(t *testing.T) {
	raw, err := base64.StdEncoding.DecodeString(legacyV1Blob)
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseBlob(raw)
	if err != nil {
		t.Fatal(err)
	}
	if b.version != blobV1 || b.scheme != SchemeAESGCM || b.kind != KindSeed || b.id.String() != "39317f3db07a5cfcc2fe8e6baf43fb68" || len(b.iv) != gcmIVLen {
		t.Fatalf("parsed %+v", b)
	}
	if !bytes.Equal(b.marshal(), raw) {
		t.Fatal("marshal changed a version 1 blob")
	}
	wantAAD := append(append([]byte(sealAADPrefix), raw[2:18]...), 1, 1)
	if !bytes.Equal(b.aad(), wantAAD) {
		t.Fatal("version 1 associated data changed")
	}
}

// Everything a seal must be bound to changes what the token authenticates:
// the GCM associated data, or the MAC input (which also covers the IV and
// ciphertext).
func TestBlobBindsHeader(t *testing.T) {
	edits := map[string]func(*sealedBlob){
		"id":      func(b *sealedBlob) { b.id[0] ^= 1 },
		"version": func(b *sealedBlob) { b.version ^= 3 },
		"kind":    func(b *sealedBlob) { b.kind = 3 - b.kind },
		"scheme":  func(b *sealedBlob) { b.scheme = 3 - b.scheme },
	}
	for _, f := range blobForms {
		a := testBlob(f.scheme, KindSeed)
		for name, edit := range edits {
			if f.scheme == 0 && name == "scheme" {
				continue // version 1 has no scheme byte
			}
			b := testBlob(f.scheme, KindSeed)
			edit(&b)
			if bytes.Equal(a.aad(), b.aad()) {
				t.Errorf("%s: the associated data ignores the %s", f.name, name)
			}
			if bytes.Equal(a.macInput(), b.macInput()) {
				t.Errorf("%s: the MAC input ignores the %s", f.name, name)
			}
		}
	}
	a := testBlob(SchemeAESCBCHMAC, KindSeed)
	for name, edit := range map[string]func(*sealedBlob){
		"iv":         func(b *sealedBlob) { b.iv[0] ^= 1 },
		"ciphertext": func(b *sealedBlob) { b.ct[5] ^= 1 },
	} {
		b := testBlob(SchemeAESCBCHMAC, KindSeed)
		edit(&b)
		if bytes.Equal(a.macInput(), b.macInput()) {
			t.Errorf("the MAC input ignores the %s", name)
		}
	}
}

func TestParseBlobErrors(t *testing.T) {
	v1 := testBlob(0, KindSeed)
	g1 := v1.marshal()
	v2 := testBlob(SchemeAESCBCHMAC, KindSeed)
	g2 := v2.marshal()
	tests := map[string][]byte{
		"empty":           nil,
		"one byte":        g1[:1],
		"version 0":       append([]byte{0}, g1[1:]...),
		"version 3":       append([]byte{3}, g2[1:]...),
		"v1 kind 0":       append([]byte{1, 0}, g1[2:]...),
		"v1 kind 3":       append([]byte{1, 3}, g1[2:]...),
		"v1 short":        g1[:len(g1)-1],
		"v1 long":         append(bytes.Clone(g1), 0),
		"v1 bip39 length": append([]byte{1, byte(KindBIP39)}, g1[2:]...),
		"v2 header only":  g2[:blobV2HeaderLen],
		"v2 scheme 0":     append([]byte{2, 0}, g2[2:]...),
		"v2 scheme 3":     append([]byte{2, 3}, g2[2:]...),
		"v2 kind 9":       append([]byte{2, 2, 9}, g2[3:]...),
		"v2 short":        g2[:len(g2)-1],
		"v2 long":         append(bytes.Clone(g2), 0),
		"v2 gcm length":   append([]byte{2, byte(SchemeAESGCM)}, g2[2:]...),
		"huge":            append([]byte{2}, make([]byte, maxSealedBlobLen)...),
	}
	for name, in := range tests {
		if _, err := parseBlob(in); !errors.Is(err, ErrBadBlob) {
			t.Errorf("%s: err = %v, want ErrBadBlob", name, err)
		}
	}
}

func TestParseExport(t *testing.T) {
	b := testBlob(SchemeAESCBCHMAC, KindSeed)
	good, err := marshalExport("w", &b, "0011223344556677")
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := parseExport(good); err != nil || got.id != b.id {
		t.Fatalf("parseExport(good) = %v", err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		out, _ := json.Marshal(m)
		return out
	}
	tests := map[string][]byte{
		"not json":       []byte("{"),
		"trailing":       append(append([]byte(nil), good...), []byte(" {}")...),
		"unknown field":  edit(func(m map[string]any) { m["seed"] = "x" }),
		"format":         edit(func(m map[string]any) { m["format"] = "nanokms-wallet-export/2" }),
		"sealed base64":  edit(func(m map[string]any) { m["sealed"] = "!!" }),
		"kind disagrees": edit(func(m map[string]any) { m["kind"] = "bip39" }),
		"id disagrees":   edit(func(m map[string]any) { m["wallet_id"] = "00000000000000000000000000000000" }),
		"check":          edit(func(m map[string]any) { m["master_key_check"] = "xyz" }),
		"check short":    edit(func(m map[string]any) { m["master_key_check"] = "00112233" }),
		"check type":     edit(func(m map[string]any) { m["master_key_check"] = 7 }),
		"scheme missing": edit(func(m map[string]any) { delete(m, "scheme") }),
		"scheme wrong":   edit(func(m map[string]any) { m["scheme"] = SchemeAESGCM.String() }),
	}
	for name, in := range tests {
		if _, _, err := parseExport(in); !errors.Is(err, ErrBadBlob) {
			t.Errorf("%s: err = %v, want ErrBadBlob", name, err)
		}
	}
}

func TestValidLabel(t *testing.T) {
	for _, ok := range []string{"w", "hot wallet 1", "café", string(bytes.Repeat([]byte{'a'}, MaxLabelLen))} {
		if err := validLabel(ok); err != nil {
			t.Errorf("validLabel(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a\nb", "\x00", "\xff", string(bytes.Repeat([]byte{'a'}, MaxLabelLen+1))} {
		var ce *ConfigError
		if err := validLabel(bad); !errors.As(err, &ce) {
			t.Errorf("validLabel(%q) = %v, want a *ConfigError", bad, err)
		}
	}
}
