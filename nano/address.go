package nano

import (
	"hash"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/blake2b"
)

const (
	addressAlphabet = "13456789abcdefghijkmnopqrstuwxyz"
	// AddressPrefix is the prefix Address prints.
	AddressPrefix = "nano_"
	// LegacyAddressPrefix is the older prefix, accepted on input.
	LegacyAddressPrefix = "xrb_"
	addressBodyLen      = 60 // 52 key characters + 8 checksum characters
)

var addressValues = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(addressAlphabet); i++ {
		t[addressAlphabet[i]] = int8(i)
	}
	return t
}()

// Address returns k's account address: "nano_", then 52 base32 characters
// of 4 zero bits ‖ k, then 8 characters of the BLAKE2b-40 checksum of k with
// its bytes reversed.
func (k PublicKey) Address() string {
	var out [AddressLen]byte
	var e AddressEncoder
	return string(e.Append(out[:0], k))
}

// AddressLen is the length of an address Address returns.
const AddressLen = len(AddressPrefix) + addressBodyLen

// An AddressEncoder appends addresses to byte slices, reusing one checksum
// hash, so that encoding many addresses allocates nothing but the growth
// of the slice they are appended to. The zero value is ready to use; it is
// not safe for concurrent use.
type AddressEncoder struct {
	h   hash.Hash
	key PublicKey // what is hashed: a slice of k itself would escape
	sum [5]byte
}

// Append appends k's address (as Address returns it) to dst and returns
// the extended slice.
func (e *AddressEncoder) Append(dst []byte, k PublicKey) []byte {
	n := len(dst)
	dst = slices.Grow(dst, AddressLen)[:n+AddressLen]
	out := dst[n:]
	copy(out, AddressPrefix)
	body := out[len(AddressPrefix):]

	// 4 zero bits followed by the 256-bit key: 260 bits, 52 characters.
	// Start with the 4 zero padding bits already in the accumulator.
	var acc uint32
	nbits := uint(4)
	pos := 0
	for _, b := range k {
		acc = acc<<8 | uint32(b)
		nbits += 8
		for nbits >= 5 {
			nbits -= 5
			body[pos] = addressAlphabet[(acc>>nbits)&31]
			pos++
		}
	}
	sum := e.checksum(k)
	// 40 bits, 8 characters.
	var c uint64
	for i := 4; i >= 0; i-- {
		c = c<<8 | uint64(sum[i])
	}
	for i := 7; i >= 0; i-- {
		body[52+(7-i)] = addressAlphabet[(c>>(5*uint(i)))&31]
	}
	return dst
}

func (e *AddressEncoder) checksum(k PublicKey) [5]byte {
	if e.h == nil {
		e.h, _ = blake2b.New(5, nil) // size 5 and no key: cannot fail
	} else {
		e.h.Reset()
	}
	e.key = k
	e.h.Write(e.key[:])
	e.h.Sum(e.sum[:0])
	return e.sum
}

func addressChecksum(k PublicKey) [5]byte {
	h, _ := blake2b.New(5, nil) // size 5 and no key: cannot fail
	h.Write(k[:])
	var s [5]byte
	h.Sum(s[:0])
	return s
}

// ParseAddress decodes an account address ("nano_" or "xrb_" prefix,
// lowercase base32 body of exactly 60 characters) to its public key. It
// returns a *ParseError wrapping ErrAddressPrefix, ErrLength,
// ErrAddressChar, ErrAddressPadding or ErrAddressChecksum.
func ParseAddress(s string) (PublicKey, error) {
	return parseAddressField("address", s)
}

func parseAddressField(field, s string) (PublicKey, error) {
	var body string
	switch {
	case strings.HasPrefix(s, AddressPrefix):
		body = s[len(AddressPrefix):]
	case strings.HasPrefix(s, LegacyAddressPrefix):
		body = s[len(LegacyAddressPrefix):]
	default:
		return PublicKey{}, parseErr(field, ErrAddressPrefix, "")
	}
	if len(body) != addressBodyLen {
		return PublicKey{}, parseErr(field, ErrLength, "want 60 characters after the prefix, got "+strconv.Itoa(len(body)))
	}
	for i := 0; i < len(body); i++ {
		if addressValues[body[i]] < 0 {
			return PublicKey{}, parseErr(field, ErrAddressChar, "position "+strconv.Itoa(len(s)-len(body)+i))
		}
	}
	if v := addressValues[body[0]]; v > 1 {
		return PublicKey{}, parseErr(field, ErrAddressPadding, "")
	}
	var k PublicKey
	// The first character carries the 4 zero padding bits and the key's top bit.
	acc := uint32(addressValues[body[0]])
	nbits := uint(1)
	pos := 0
	for i := 1; i < 52; i++ {
		acc = acc<<5 | uint32(addressValues[body[i]])
		nbits += 5
		if nbits >= 8 {
			nbits -= 8
			k[pos] = byte(acc >> nbits)
			pos++
		}
	}
	var c uint64
	for i := 52; i < 60; i++ {
		c = c<<5 | uint64(addressValues[body[i]])
	}
	var got [5]byte
	for i := 0; i < 5; i++ {
		got[i] = byte(c >> (8 * uint(i)))
	}
	if addressChecksum(k) != got {
		return PublicKey{}, parseErr(field, ErrAddressChecksum, "")
	}
	return k, nil
}

// ParseAccount accepts an account as an address ("nano_…"/"xrb_…") or as 64
// hex digits of public key.
func ParseAccount(s string) (PublicKey, error) {
	if strings.HasPrefix(s, AddressPrefix) || strings.HasPrefix(s, LegacyAddressPrefix) {
		return parseAddressField("account", s)
	}
	var k PublicKey
	if err := decodeHexField("account", k[:], s); err != nil {
		return PublicKey{}, parseErr("account", ErrSyntax, "neither an address nor 64 hex digits")
	}
	return k, nil
}

// MarshalText encodes k as its "nano_" address.
func (k PublicKey) MarshalText() ([]byte, error) { return []byte(k.Address()), nil }

// UnmarshalText decodes an address or hex public key; k is unchanged on error.
func (k *PublicKey) UnmarshalText(b []byte) error {
	v, err := ParseAccount(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}
