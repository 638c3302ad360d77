package nano

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestSubtype(t *testing.T) {
	bal := func(v uint64) Amount { return AmountFromUint64(v) }
	var prev, link, other Hash
	prev[0], link[0], other[5] = 1, 2, 3
	tests := []struct {
		name        string
		previous    Hash
		balance     Amount
		link        Hash
		prevBalance Amount
		want        Subtype
		wantErr     bool
	}{
		{"send", prev, bal(5), link, bal(10), SubtypeSend, false},
		{"send everything", prev, bal(0), link, bal(10), SubtypeSend, false},
		{"receive", prev, bal(15), link, bal(10), SubtypeReceive, false},
		{"open", Hash{}, bal(15), link, bal(0), SubtypeOpen, false},
		{"open ignores a claimed previous balance", Hash{}, bal(15), link, bal(99), SubtypeOpen, false},
		{"change", prev, bal(10), Hash{}, bal(10), SubtypeChange, false},
		{"epoch v1", prev, bal(10), EpochV1Link, bal(10), SubtypeEpoch, false},
		{"epoch v2", prev, bal(10), EpochV2Link, bal(10), SubtypeEpoch, false},
		{"epoch open", Hash{}, bal(0), EpochV2Link, bal(0), SubtypeEpoch, false},
		{"equal balance with a link", prev, bal(10), other, bal(10), SubtypeUnknown, true},
		{"open with zero balance", Hash{}, bal(0), link, bal(0), SubtypeUnknown, true},
		{"open with zero balance and zero link", Hash{}, bal(0), Hash{}, bal(0), SubtypeUnknown, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := StateBlock{Previous: tt.previous, Balance: tt.balance, Link: tt.link}
			got, err := b.Subtype(tt.prevBalance)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidBlock) {
					t.Fatalf("err = %v, want ErrInvalidBlock", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Subtype = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestSubtypeNamesAndThresholds(t *testing.T) {
	for s := SubtypeSend; s <= SubtypeEpoch; s++ {
		back, err := ParseSubtype(s.String())
		if err != nil || back != s {
			t.Errorf("ParseSubtype(%s) = %v, %v", s, back, err)
		}
	}
	if _, err := ParseSubtype("unknown"); err == nil {
		t.Errorf("ParseSubtype(unknown) succeeded")
	}
	want := map[Subtype]uint64{
		SubtypeSend: ThresholdSend, SubtypeChange: ThresholdSend,
		SubtypeReceive: ThresholdReceive, SubtypeOpen: ThresholdReceive, SubtypeEpoch: ThresholdReceive,
	}
	for s, th := range want {
		if s.WorkThreshold() != th {
			t.Errorf("%s threshold = %016x, want %016x", s, s.WorkThreshold(), th)
		}
	}
	if !strings.HasPrefix(string(EpochV2Link[:]), "epoch v2 block") || EpochV2Link[31] != 0 {
		t.Errorf("epoch v2 link = %s", EpochV2Link)
	}
}

func TestRoot(t *testing.T) {
	b := StateBlock{Account: PublicKey{1}, Previous: Hash{2}}
	if b.Root() != (Hash{2}) {
		t.Errorf("root of a non-open block must be previous")
	}
	b.Previous = Hash{}
	if b.Root() != Hash(b.Account) {
		t.Errorf("root of an open block must be the account")
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	var seed Seed
	var priv PrivateKey
	for i := range seed {
		seed[i] = 0xAB
		priv[i] = 0xCD
	}
	for _, s := range []string{
		fmt.Sprint(seed), fmt.Sprintf("%v %+v %#v %s %x %X %q", seed, seed, seed, seed, seed, seed, seed),
		fmt.Sprint(priv), fmt.Sprintf("%v %+v %#v %s %x %X %q", priv, priv, priv, priv, priv, priv, priv),
		fmt.Sprintf("%v", struct{ S Seed }{seed}),
		fmt.Sprintf("%+v", &struct{ P PrivateKey }{priv}),
	} {
		l := strings.ToLower(s)
		if strings.Contains(l, "abab") || strings.Contains(l, "cdcd") || strings.Contains(s, "171") || strings.Contains(s, "205") {
			t.Errorf("secret printed: %s", s)
		}
	}
	if _, err := ParseSeed(strings.Repeat("AB", 31) + "ZZ"); err == nil || strings.Contains(err.Error(), "AB") {
		t.Errorf("seed parse error leaks input or passes: %v", err)
	}
	if _, err := ParsePrivateKey(strings.Repeat("CD", 33)); err == nil || strings.Contains(err.Error(), "CD") {
		t.Errorf("private key parse error leaks input or passes: %v", err)
	}
	seed.Wipe()
	priv.Wipe()
	if seed != (Seed{}) || priv != (PrivateKey{}) {
		t.Errorf("Wipe left data")
	}
}

func TestParseFixedErrors(t *testing.T) {
	tests := []struct {
		name  string
		parse func() error
		field string
		err   error
	}{
		{"hash short", func() error { _, err := ParseHash("AB"); return err }, "hash", ErrLength},
		{"hash non-hex", func() error { _, err := ParseHash(strings.Repeat("G", 64)); return err }, "hash", ErrSyntax},
		{"public key long", func() error { _, err := ParsePublicKey(strings.Repeat("0", 66)); return err }, "public_key", ErrLength},
		{"signature short", func() error { _, err := ParseSignature(strings.Repeat("0", 126)); return err }, "signature", ErrLength},
		{"signature non-hex", func() error { _, err := ParseSignature(strings.Repeat("x", 128)); return err }, "signature", ErrSyntax},
		{"seed short", func() error { _, err := ParseSeed("00"); return err }, "seed", ErrLength},
		{"private key non-hex", func() error { _, err := ParsePrivateKey(strings.Repeat("-", 64)); return err }, "private_key", ErrSyntax},
		{"work short", func() error { _, err := ParseWork("0123"); return err }, "work", ErrLength},
		{"work sign", func() error { _, err := ParseWork("+123456789abcdef"); return err }, "work", ErrSyntax},
		{"threshold empty", func() error { _, err := ParseThreshold(""); return err }, "threshold", ErrLength},
		{"threshold long", func() error { _, err := ParseThreshold("fffffff8000000000"); return err }, "threshold", ErrLength},
		{"threshold non-hex", func() error { _, err := ParseThreshold("xyz"); return err }, "threshold", ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse()
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Field != tt.field || !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want a *ParseError for %s wrapping %v", err, tt.field, tt.err)
			}
			if !strings.HasPrefix(err.Error(), "nano: ") {
				t.Errorf("error %q lacks the nano: prefix", err)
			}
		})
	}
}
