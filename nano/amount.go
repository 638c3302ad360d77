package nano

import (
	"encoding/binary"
	"math/bits"
	"strings"
)

// Amount is an unsigned 128-bit quantity of raw (1 XNO = 10^30 raw). It is
// never converted through floating point. The zero value is 0 raw.
type Amount struct {
	hi, lo uint64
}

// RawPerXNO is 10^30, the number of raw in one XNO.
var RawPerXNO = Amount{hi: 0xc9f2c9cd0, lo: 0x4674edea40000000}

// MaxAmount is 2^128 − 1 raw, the largest balance a block can hold.
var MaxAmount = Amount{hi: ^uint64(0), lo: ^uint64(0)}

// AmountFromUint64 returns v raw.
func AmountFromUint64(v uint64) Amount { return Amount{lo: v} }

// AmountFromBytes reads a 16-byte big-endian balance, as it is hashed.
func AmountFromBytes(b [16]byte) Amount {
	return Amount{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// Bytes returns a as 16 big-endian bytes, as it is hashed.
func (a Amount) Bytes() [16]byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return b
}

// IsZero reports whether a is 0 raw.
func (a Amount) IsZero() bool { return a.hi == 0 && a.lo == 0 }

// Cmp returns -1, 0 or +1 as a is less than, equal to or greater than b.
func (a Amount) Cmp(b Amount) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

// Add returns a + b, or ErrRange if the sum is 2^128 raw or more.
func (a Amount) Add(b Amount) (Amount, error) {
	lo, c := bits.Add64(a.lo, b.lo, 0)
	hi, c := bits.Add64(a.hi, b.hi, c)
	if c != 0 {
		return Amount{}, ErrRange
	}
	return Amount{hi: hi, lo: lo}, nil
}

// Sub returns a − b, or ErrRange if b is greater than a.
func (a Amount) Sub(b Amount) (Amount, error) {
	lo, borrow := bits.Sub64(a.lo, b.lo, 0)
	hi, borrow := bits.Sub64(a.hi, b.hi, borrow)
	if borrow != 0 {
		return Amount{}, ErrRange
	}
	return Amount{hi: hi, lo: lo}, nil
}

// mul10 returns a*10 + d and whether it overflowed.
func (a Amount) mulAdd(m, d uint64) (Amount, bool) {
	hiLo, lo := bits.Mul64(a.lo, m)
	hiHi, hi := bits.Mul64(a.hi, m)
	hi, c := bits.Add64(hi, hiLo, 0)
	if hiHi != 0 || c != 0 {
		return Amount{}, true
	}
	lo, c = bits.Add64(lo, d, 0)
	hi, c = bits.Add64(hi, 0, c)
	if c != 0 {
		return Amount{}, true
	}
	return Amount{hi: hi, lo: lo}, false
}

// divmod returns a / d and a % d.
func (a Amount) divmod(d uint64) (Amount, uint64) {
	qhi, r := bits.Div64(0, a.hi, d)
	qlo, r := bits.Div64(r, a.lo, d)
	return Amount{hi: qhi, lo: qlo}, r
}

// ParseAmount parses a decimal number of raw: one or more ASCII digits,
// nothing else (no sign, no exponent, no spaces). Values of 2^128 or more
// are refused with ErrRange.
func ParseAmount(s string) (Amount, error) {
	return parseRaw("amount", s)
}

func parseRaw(field, s string) (Amount, error) {
	if s == "" {
		return Amount{}, parseErr(field, ErrSyntax, "empty")
	}
	var a Amount
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return Amount{}, parseErr(field, ErrSyntax, "not a decimal number of raw")
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		var over bool
		if a, over = a.mulAdd(10, uint64(c-'0')); over {
			return Amount{}, parseErr(field, ErrRange, "2^128 raw or more")
		}
	}
	return a, nil
}

// ParseXNO parses a decimal number of XNO with at most 30 decimal places
// ("1", "0.000001", "1.5"), exactly. A leading or trailing dot, a sign, an
// exponent or white space are refused.
func ParseXNO(s string) (Amount, error) {
	return parseXNO("amount", s)
}

func parseXNO(field, s string) (Amount, error) {
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") {
		return Amount{}, parseErr(field, ErrSyntax, "not a decimal number of XNO")
	}
	if len(frac) > 30 {
		return Amount{}, parseErr(field, ErrPrecision, "")
	}
	digits := whole + frac + strings.Repeat("0", 30-len(frac))
	a, err := parseRaw(field, digits)
	if err != nil {
		return Amount{}, err
	}
	return a, nil
}

// ParseAmountUnit parses an amount with an optional unit: "123" and
// "123 raw" are raw; "1.5 XNO", "1.5XNO" and "1.5 xno" are XNO. Only XNO
// amounts may have a decimal point.
func ParseAmountUnit(s string) (Amount, error) {
	t := strings.TrimSpace(s)
	lower := strings.ToLower(t)
	switch {
	case strings.HasSuffix(lower, "xno"):
		return parseXNO("amount", strings.TrimSpace(t[:len(t)-3]))
	case strings.HasSuffix(lower, "raw"):
		return parseRaw("amount", strings.TrimSpace(t[:len(t)-3]))
	}
	return parseRaw("amount", t)
}

// String returns a in raw as a decimal number without leading zeros.
func (a Amount) String() string {
	if a.IsZero() {
		return "0"
	}
	var buf [40]byte
	return string(a.AppendRaw(buf[:0]))
}

// AppendRaw appends a in raw, as String returns it, to dst and returns the
// extended slice; it allocates only to grow dst.
func (a Amount) AppendRaw(dst []byte) []byte {
	if a.IsZero() {
		return append(dst, '0')
	}
	var buf [40]byte // 2^128 has 39 digits
	i := len(buf)
	for !a.IsZero() {
		var r uint64
		a, r = a.divmod(10)
		i--
		buf[i] = byte('0' + r)
	}
	return append(dst, buf[i:]...)
}

// XNO returns a in XNO as an exact decimal: no trailing zeros after the
// point, and no point for a whole number ("1", "1.5", "0.000000000000000000000000000001").
func (a Amount) XNO() string {
	raw := a.String()
	if len(raw) <= 30 {
		raw = strings.Repeat("0", 31-len(raw)) + raw
	}
	whole, frac := raw[:len(raw)-30], strings.TrimRight(raw[len(raw)-30:], "0")
	if frac == "" {
		return whole
	}
	return whole + "." + frac
}

// MarshalText encodes a as a decimal number of raw.
func (a Amount) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText decodes a decimal number of raw; a is unchanged on error.
func (a *Amount) UnmarshalText(b []byte) error {
	v, err := ParseAmount(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}
