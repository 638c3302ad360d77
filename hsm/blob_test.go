package hsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func testBlob() sealedBlob {
	b := sealedBlob{version: blobVersion, kind: KindSeed, ct: bytes.Repeat([]byte{0xAB}, 32+gcmTagLen)}
	copy(b.id[:], "0123456789abcdef")
	copy(b.iv[:], "ivivivivivIV")
	return b
}

func TestBlobRoundTrip(t *testing.T) {
	for _, kind := range []WalletKind{KindSeed, KindBIP39} {
		b := testBlob()
		b.kind = kind
		b.ct = bytes.Repeat([]byte{1}, kind.secretLen()+gcmTagLen)
		got, err := parseBlob(b.marshal())
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if got.version != b.version || got.kind != b.kind || got.id != b.id || got.iv != b.iv || !bytes.Equal(got.ct, b.ct) {
			t.Fatalf("%s: round trip changed the blob", kind)
		}
	}
}

func TestBlobAADBindsHeader(t *testing.T) {
	a := testBlob()
	for name, mod := range map[string]func(*sealedBlob){
		"id":      func(b *sealedBlob) { b.id[0] ^= 1 },
		"version": func(b *sealedBlob) { b.version++ },
		"kind":    func(b *sealedBlob) { b.kind = KindBIP39 },
	} {
		b := testBlob()
		mod(&b)
		if bytes.Equal(a.aad(), b.aad()) {
			t.Errorf("associated data ignores the %s", name)
		}
	}
}

func TestParseBlobErrors(t *testing.T) {
	gb := testBlob()
	good := gb.marshal()
	tests := map[string][]byte{
		"empty":        nil,
		"one byte":     good[:1],
		"version 0":    append([]byte{0}, good[1:]...),
		"version 2":    append([]byte{2}, good[1:]...),
		"kind 0":       append([]byte{1, 0}, good[2:]...),
		"kind 3":       append([]byte{1, 3}, good[2:]...),
		"short":        good[:len(good)-1],
		"long":         append(append([]byte(nil), good...), 0),
		"bip39 length": append([]byte{1, byte(KindBIP39)}, good[2:]...),
	}
	for name, in := range tests {
		if _, err := parseBlob(in); !errors.Is(err, ErrBadBlob) {
			t.Errorf("%s: err = %v, want ErrBadBlob", name, err)
		}
	}
}

func TestParseExport(t *testing.T) {
	b := testBlob()
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
