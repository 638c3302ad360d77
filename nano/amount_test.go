package nano

import (
	"errors"
	"math/big"
	"testing"
)

func bigOf(a Amount) *big.Int {
	b := a.Bytes()
	return new(big.Int).SetBytes(b[:])
}

func TestParseAmount(t *testing.T) {
	max := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	tests := []struct {
		in   string
		want string // decimal raw; "" means an error
		err  error
	}{
		{"0", "0", nil},
		{"1", "1", nil},
		{"000123", "123", nil},
		{"18446744073709551615", "18446744073709551615", nil},
		{"18446744073709551616", "18446744073709551616", nil},
		{max.String(), max.String(), nil},
		{"340282366920938463463374607431768211456", "", ErrRange},
		{"680564733841876926926749214863536422912", "", ErrRange},
		{"9999999999999999999999999999999999999999999", "", ErrRange},
		{"", "", ErrSyntax},
		{"-1", "", ErrSyntax},
		{"+1", "", ErrSyntax},
		{"1.5", "", ErrSyntax},
		{"1e30", "", ErrSyntax},
		{" 1", "", ErrSyntax},
		{"0x10", "", ErrSyntax},
		{"١", "", ErrSyntax}, // a non-ASCII digit
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, err := ParseAmount(tt.in)
			if tt.err != nil {
				var pe *ParseError
				if !errors.As(err, &pe) || !errors.Is(err, tt.err) || pe.Field != "amount" {
					t.Fatalf("err = %v, want a *ParseError for amount wrapping %v", err, tt.err)
				}
				if !a.IsZero() {
					t.Errorf("non-zero amount on error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.String() != tt.want || bigOf(a).String() != tt.want {
				t.Errorf("got %s (big %s), want %s", a, bigOf(a), tt.want)
			}
		})
	}
}

func TestXNO(t *testing.T) {
	tests := []struct {
		xno, raw string
		err      error
	}{
		{"1", "1000000000000000000000000000000", nil},
		{"1.5", "1500000000000000000000000000000", nil},
		{"0.000000000000000000000000000001", "1", nil},
		{"0", "0", nil},
		{"340282366.920938463463374607431768211455", "340282366920938463463374607431768211455", nil},
		{"340282366.920938463463374607431768211456", "", ErrRange},
		{"0.0000000000000000000000000000001", "", ErrPrecision},
		{".5", "", ErrSyntax},
		{"1.", "", ErrSyntax},
		{"1.2.3", "", ErrSyntax},
		{"-1", "", ErrSyntax},
		{"", "", ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.xno, func(t *testing.T) {
			a, err := ParseXNO(tt.xno)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.String() != tt.raw {
				t.Errorf("raw = %s, want %s", a, tt.raw)
			}
			back, err := ParseXNO(a.XNO())
			if err != nil || back != a {
				t.Errorf("XNO() = %q does not round-trip: %v", a.XNO(), err)
			}
		})
	}
	if got := AmountFromUint64(1).XNO(); got != "0.000000000000000000000000000001" {
		t.Errorf("1 raw = %s XNO", got)
	}
	if got := RawPerXNO.XNO(); got != "1" {
		t.Errorf("RawPerXNO = %s XNO", got)
	}
}

func TestParseAmountUnit(t *testing.T) {
	tests := []struct{ in, raw string }{
		{"5", "5"},
		{"5 raw", "5"},
		{"5raw", "5"},
		{"1 XNO", "1000000000000000000000000000000"},
		{"0.5xno", "500000000000000000000000000000"},
		{" 2 XNO ", "2000000000000000000000000000000"},
	}
	for _, tt := range tests {
		a, err := ParseAmountUnit(tt.in)
		if err != nil || a.String() != tt.raw {
			t.Errorf("ParseAmountUnit(%q) = %s, %v; want %s", tt.in, a, err, tt.raw)
		}
	}
	for _, bad := range []string{"1.5 raw", "1.5", "XNO", "raw", "1 nano", "-1 XNO"} {
		if _, err := ParseAmountUnit(bad); err == nil {
			t.Errorf("ParseAmountUnit(%q) succeeded", bad)
		}
	}
}

func TestAmountArithmetic(t *testing.T) {
	one := AmountFromUint64(1)
	if _, err := MaxAmount.Add(one); !errors.Is(err, ErrRange) {
		t.Errorf("max+1: err = %v, want ErrRange", err)
	}
	if _, err := (Amount{}).Sub(one); !errors.Is(err, ErrRange) {
		t.Errorf("0-1: err = %v, want ErrRange", err)
	}
	lo := AmountFromUint64(^uint64(0))
	sum, err := lo.Add(one)
	if err != nil || sum.String() != "18446744073709551616" {
		t.Errorf("carry: %s, %v", sum, err)
	}
	diff, err := sum.Sub(one)
	if err != nil || diff != lo {
		t.Errorf("borrow: %s, %v", diff, err)
	}
	if MaxAmount.Cmp(sum) != 1 || sum.Cmp(MaxAmount) != -1 || sum.Cmp(sum) != 0 {
		t.Errorf("Cmp is wrong")
	}
	var b [16]byte
	for i := range b {
		b[i] = byte(i + 1)
	}
	if AmountFromBytes(b).Bytes() != b {
		t.Errorf("Bytes round trip")
	}
	var a Amount
	if err := a.UnmarshalText([]byte("12x")); err == nil || !a.IsZero() {
		t.Errorf("UnmarshalText of bad input: %v, %s", err, a)
	}
}

// TestAmountAppendRaw: AppendRaw appends what String returns, without
// allocating when dst has room.
func TestAmountAppendRaw(t *testing.T) {
	for _, a := range []Amount{{}, AmountFromUint64(1), AmountFromUint64(10), AmountFromUint64(1<<63 + 12345), {hi: 1}, MaxAmount} {
		got := string(a.AppendRaw([]byte("x=")))
		if want := "x=" + a.String(); got != want {
			t.Errorf("AppendRaw = %q, want %q", got, want)
		}
	}
	buf := make([]byte, 0, 64)
	a := MaxAmount
	if n := testing.AllocsPerRun(100, func() { buf = a.AppendRaw(buf[:0]) }); n != 0 {
		t.Errorf("AppendRaw: %v allocations per call, want 0", n)
	}
	if string(buf) != "340282366920938463463374607431768211455" {
		t.Errorf("AppendRaw(MaxAmount) = %s", buf)
	}
}
