package nano

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAddressErrors(t *testing.T) {
	const good = "nano_3hbt14ip8ymgikw5qk5g7f83tpbs78yhtr9f33qusxe8sefdwe7bzssykyqe"
	body := good[5:]
	tests := []struct {
		name, in string
		err      error
	}{
		{"empty", "", ErrAddressPrefix},
		{"no prefix", body, ErrAddressPrefix},
		{"upper-case prefix", "NANO_" + body, ErrAddressPrefix},
		{"other prefix", "ban_" + body, ErrAddressPrefix},
		{"short", good[:len(good)-1], ErrLength},
		{"long", good + "1", ErrLength},
		{"prefix only", "nano_", ErrLength},
		{"zero", strings.Replace(good, "3hbt", "3h0t", 1), ErrAddressChar},
		{"letter l", strings.Replace(good, "3hbt", "3hlt", 1), ErrAddressChar},
		{"letter v", strings.Replace(good, "3hbt", "3hvt", 1), ErrAddressChar},
		{"digit 2", strings.Replace(good, "3hbt", "3h2t", 1), ErrAddressChar},
		{"upper case", "nano_" + strings.ToUpper(body), ErrAddressChar},
		{"non-ASCII", strings.Replace(good, "3hbt", "3hé", 1), ErrAddressChar},
		{"padding bits", "nano_4" + body[1:], ErrAddressPadding},
		{"checksum", good[:len(good)-1] + "f", ErrAddressChecksum},
		{"body altered", strings.Replace(good, "tpbs", "tqbs", 1), ErrAddressChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseAddress(tt.in)
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Field != "address" || !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want a *ParseError for address wrapping %v", err, tt.err)
			}
			if !k.IsZero() {
				t.Errorf("non-zero key on error")
			}
		})
	}
}

func TestAddressRoundTrip(t *testing.T) {
	var k PublicKey
	for i := 0; i < 512; i++ {
		for j := range k {
			k[j] = byte(i*31 + j*7 + i*j)
		}
		if i == 1 {
			k = PublicKey{}
			for j := range k {
				k[j] = 0xff
			}
		}
		a := k.Address()
		got, err := ParseAddress(a)
		if err != nil || got != k {
			t.Fatalf("round trip of %s: %v", a, err)
		}
		legacy, err := ParseAddress("xrb_" + a[5:])
		if err != nil || legacy != k {
			t.Fatalf("xrb_ form of %s: %v", a, err)
		}
	}
}

func TestParseAccount(t *testing.T) {
	const hexKey = "BD3A00A1637A6E84B83BC86E2B4C1D593929BCFD60ED086FBCF586CB1ABE30A9"
	a, err := ParseAccount(hexKey)
	if err != nil || a.String() != hexKey {
		t.Fatalf("hex: %v %v", a, err)
	}
	b, err := ParseAccount(strings.ToLower(hexKey))
	if err != nil || b != a {
		t.Fatalf("lower-case hex: %v", err)
	}
	c, err := ParseAccount(a.Address())
	if err != nil || c != a {
		t.Fatalf("address: %v", err)
	}
	var pe *ParseError
	if _, err := ParseAccount("bogus"); !errors.As(err, &pe) || pe.Field != "account" {
		t.Errorf("bogus: %v", err)
	}
}

// TestAddressEncoder: one encoder appends, address after address, exactly
// what Address returns, and allocates nothing once its buffer is large
// enough (the checksum hash is reused).
func TestAddressEncoder(t *testing.T) {
	var e AddressEncoder
	buf := []byte("prefix:")
	var k PublicKey
	for i := 0; i < 512; i++ {
		for j := range k {
			k[j] = byte(i*13 + j*5 + i*j)
		}
		buf = e.Append(buf[:7], k)
		if got, want := string(buf), "prefix:"+k.Address(); got != want {
			t.Fatalf("key %d: Append gave %q, want %q", i, got, want)
		}
	}
	if len(buf) != 7+AddressLen {
		t.Fatalf("appended %d bytes, AddressLen is %d", len(buf)-7, AddressLen)
	}
	if n := testing.AllocsPerRun(100, func() { buf = e.Append(buf[:0], k) }); n != 0 {
		t.Errorf("AddressEncoder.Append: %v allocations per call, want 0", n)
	}
}
