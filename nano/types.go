package nano

import (
	"crypto/subtle"
	"encoding/hex"
	"strconv"
	"strings"
)

// Sizes of the fixed-size types, in bytes.
const (
	HashSize       = 32
	PublicKeySize  = 32
	PrivateKeySize = 32
	SeedSize       = 32
	SignatureSize  = 64
	WorkSize       = 8
)

// Hash is a 32-byte BLAKE2b-256 block hash (also used for the link field).
type Hash [HashSize]byte

// PublicKey is a Nano account's 32-byte Ed25519-BLAKE2b public key.
type PublicKey [PublicKeySize]byte

// PrivateKey is a 32-byte Ed25519-BLAKE2b private key (the RFC 8032 "seed",
// expanded with BLAKE2b-512). Its String and GoString never print the value.
type PrivateKey [PrivateKeySize]byte

// Seed is a 32-byte wallet seed from which private keys are derived by
// index. Its String and GoString never print the value.
type Seed [SeedSize]byte

// Signature is a 64-byte Ed25519-BLAKE2b signature, R ‖ S.
type Signature [SignatureSize]byte

// Work is a proof-of-work nonce. As a number it is the nonce read as a
// little-endian uint64 over the 8 hashed bytes; the JSON "work" field
// prints it as 16 hex digits, most significant first.
type Work uint64

// IsZero reports whether h is all zeros.
func (h Hash) IsZero() bool { return h == Hash{} }

// String returns h as 64 uppercase hex digits.
func (h Hash) String() string { return upperHex(h[:]) }

// MarshalText encodes h as 64 uppercase hex digits.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes 64 hex digits; h is unchanged on error.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// IsZero reports whether k is all zeros.
func (k PublicKey) IsZero() bool { return k == PublicKey{} }

// String returns k as 64 uppercase hex digits (see Address for the account form).
func (k PublicKey) String() string { return upperHex(k[:]) }

// IsZero reports whether s is all zeros.
func (s Signature) IsZero() bool { return s == Signature{} }

// String returns s as 128 uppercase hex digits.
func (s Signature) String() string { return upperHex(s[:]) }

// MarshalText encodes s as 128 uppercase hex digits.
func (s Signature) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes 128 hex digits; s is unchanged on error.
func (s *Signature) UnmarshalText(b []byte) error {
	v, err := ParseSignature(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// String returns w as 16 lowercase hex digits, as the JSON "work" field.
func (w Work) String() string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[w&0xf]
		w >>= 4
	}
	return string(b[:])
}

// String never prints the key.
func (PrivateKey) String() string { return "nano.PrivateKey(REDACTED)" }

// GoString never prints the key.
func (PrivateKey) GoString() string { return "nano.PrivateKey(REDACTED)" }

// Wipe overwrites k with zeros.
func (k *PrivateKey) Wipe() { wipe(k[:]) }

// Equal reports whether k and o are equal, in constant time.
func (k *PrivateKey) Equal(o *PrivateKey) bool { return subtle.ConstantTimeCompare(k[:], o[:]) == 1 }

// String never prints the seed.
func (Seed) String() string { return "nano.Seed(REDACTED)" }

// GoString never prints the seed.
func (Seed) GoString() string { return "nano.Seed(REDACTED)" }

// Wipe overwrites s with zeros.
func (s *Seed) Wipe() { wipe(s[:]) }

// Equal reports whether s and o are equal, in constant time.
func (s *Seed) Equal(o *Seed) bool { return subtle.ConstantTimeCompare(s[:], o[:]) == 1 }

// ParseHash parses 64 hex digits (either case) into a Hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if err := decodeHexField("hash", h[:], s); err != nil {
		return Hash{}, err
	}
	return h, nil
}

// ParsePublicKey parses 64 hex digits (either case) into a PublicKey. Use
// ParseAddress for the nano_ form, or ParseAccount for either.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	if err := decodeHexField("public_key", k[:], s); err != nil {
		return PublicKey{}, err
	}
	return k, nil
}

// ParseSignature parses 128 hex digits (either case) into a Signature.
func ParseSignature(s string) (Signature, error) {
	var sig Signature
	if err := decodeHexField("signature", sig[:], s); err != nil {
		return Signature{}, err
	}
	return sig, nil
}

// ParsePrivateKey parses 64 hex digits into a PrivateKey. Errors never
// contain the input.
func ParsePrivateKey(s string) (PrivateKey, error) {
	var k PrivateKey
	if err := decodeSecretHex("private_key", k[:], s); err != nil {
		return PrivateKey{}, err
	}
	return k, nil
}

// ParseSeed parses 64 hex digits into a Seed; surrounding white space (a
// trailing newline in a seed file) is ignored. Errors never contain the input.
func ParseSeed(s string) (Seed, error) {
	var seed Seed
	if err := decodeSecretHex("seed", seed[:], strings.TrimSpace(s)); err != nil {
		return Seed{}, err
	}
	return seed, nil
}

// ParseSeedBytes is ParseSeed for a byte slice (a seed file's contents),
// so that the caller can wipe the input: it makes no copy of it.
func ParseSeedBytes(b []byte) (Seed, error) {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	var seed Seed
	if len(b) != 2*SeedSize {
		return Seed{}, parseErr("seed", ErrLength, "want 64 hex digits")
	}
	for i := 0; i < SeedSize; i++ {
		hi, ok1 := fromHexChar(b[2*i])
		lo, ok2 := fromHexChar(b[2*i+1])
		if !ok1 || !ok2 {
			seed.Wipe()
			return Seed{}, parseErr("seed", ErrSyntax, "not hex")
		}
		seed[i] = hi<<4 | lo
	}
	return seed, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// ParseWork parses the JSON form of a work nonce: exactly 16 hex digits
// (either case), most significant first.
func ParseWork(s string) (Work, error) {
	if len(s) != 16 {
		return 0, parseErr("work", ErrLength, "want 16 hex digits, got "+strconv.Itoa(len(s)))
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, parseErr("work", ErrSyntax, "not hex")
	}
	return Work(v), nil
}

// ParseThreshold parses a work threshold or value: 1 to 16 hex digits.
func ParseThreshold(s string) (uint64, error) {
	if len(s) == 0 || len(s) > 16 {
		return 0, parseErr("threshold", ErrLength, "want 1 to 16 hex digits")
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, parseErr("threshold", ErrSyntax, "not hex")
	}
	return v, nil
}

func decodeHexField(field string, dst []byte, s string) error {
	if len(s) != 2*len(dst) {
		return parseErr(field, ErrLength, "want "+strconv.Itoa(2*len(dst))+" hex digits, got "+strconv.Itoa(len(s)))
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		wipe(dst)
		return parseErr(field, ErrSyntax, "not hex")
	}
	return nil
}

// decodeSecretHex is decodeHexField without any detail that could echo input.
func decodeSecretHex(field string, dst []byte, s string) error {
	if len(s) != 2*len(dst) {
		return parseErr(field, ErrLength, "want "+strconv.Itoa(2*len(dst))+" hex digits")
	}
	for i := 0; i < len(dst); i++ {
		hi, ok1 := fromHexChar(s[2*i])
		lo, ok2 := fromHexChar(s[2*i+1])
		if !ok1 || !ok2 {
			wipe(dst)
			return parseErr(field, ErrSyntax, "not hex")
		}
		dst[i] = hi<<4 | lo
	}
	return nil
}

func fromHexChar(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func upperHex(b []byte) string {
	const digits = "0123456789ABCDEF"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i] = digits[c>>4]
		out[2*i+1] = digits[c&0xf]
	}
	return string(out)
}

// wipe zeroes b. The loop is not elided: b escapes through the call.
func wipe(b []byte) {
	clear(b)
}
