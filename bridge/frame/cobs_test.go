package frame_test

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
)

func seq(from, to int) []byte {
	var b []byte
	for i := from; i <= to; i++ {
		b = append(b, byte(i))
	}
	return b
}

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestCOBSVectors checks the examples of Cheshire and Baker's COBS paper
// (the encoding they publish, which ends a 254-byte run with a code 01).
func TestCOBSVectors(t *testing.T) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name    string
		in, out []byte
	}{
		{"empty", nil, unhex(t, "01")},
		{"zero", unhex(t, "00"), unhex(t, "01 01")},
		{"two zeros", unhex(t, "00 00"), unhex(t, "01 01 01")},
		{"zero 11 zero", unhex(t, "00 11 00"), unhex(t, "01 02 11 01")},
		{"11 22 00 33", unhex(t, "11 22 00 33"), unhex(t, "03 11 22 02 33")},
		{"no zeros", unhex(t, "11 22 33 44"), unhex(t, "05 11 22 33 44")},
		{"trailing zeros", unhex(t, "11 00 00 00"), unhex(t, "02 11 01 01 01")},
		{"254 non-zero", seq(1, 254), cat([]byte{0xFF}, seq(1, 254), []byte{0x01})},
		{"zero then 254", seq(0, 254), cat([]byte{0x01, 0xFF}, seq(1, 254), []byte{0x01})},
		{"255 non-zero", seq(1, 255), cat([]byte{0xFF}, seq(1, 254), []byte{0x02, 0xFF})},
		{"254 then zero", append(seq(1, 254), 0), cat([]byte{0xFF}, seq(1, 254), []byte{0x01, 0x01})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := frame.COBSEncode(nil, c.in)
			if !bytes.Equal(got, c.out) {
				t.Fatalf("encode = %x, want %x", got, c.out)
			}
			dec, err := frame.COBSDecode(nil, c.out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(dec, c.in) {
				t.Fatalf("decode = %x, want %x", dec, c.in)
			}
		})
	}
	// The variant without the final code 01 after a full run decodes too.
	dec, err := frame.COBSDecode(nil, cat([]byte{0xFF}, seq(1, 254)))
	if err != nil || !bytes.Equal(dec, seq(1, 254)) {
		t.Fatalf("short form: %x %v", dec, err)
	}
}

func TestCOBSAppends(t *testing.T) {
	prefix := []byte("prefix")
	enc := frame.COBSEncode(append([]byte(nil), prefix...), []byte{1, 0, 2})
	if !bytes.Equal(enc, append([]byte("prefix"), 2, 1, 2, 2)) {
		t.Fatalf("encode appended %x", enc)
	}
	dec, err := frame.COBSDecode(append([]byte(nil), prefix...), enc[len(prefix):])
	if err != nil || !bytes.Equal(dec, append([]byte("prefix"), 1, 0, 2)) {
		t.Fatalf("decode appended %x %v", dec, err)
	}
}

func TestCOBSRoundTripRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 2000 {
		src := make([]byte, n)
		zeroRate := rng.IntN(4) // 0: no zeros at all; else about one in 2^k
		for i := range src {
			src[i] = byte(rng.IntN(255) + 1)
			if zeroRate > 0 && rng.IntN(1<<(2*zeroRate)) == 0 {
				src[i] = 0
			}
		}
		enc := frame.COBSEncode(nil, src)
		if bytes.IndexByte(enc, 0) >= 0 {
			t.Fatalf("n=%d: the encoding holds a zero", n)
		}
		if limit := n + n/254 + 1; len(enc) > limit {
			t.Fatalf("n=%d: encoding of %d bytes, above the bound %d", n, len(enc), limit)
		}
		dec, err := frame.COBSDecode(nil, enc)
		if err != nil || !bytes.Equal(dec, src) {
			t.Fatalf("n=%d: round trip failed: %v", n, err)
		}
	}
}

func TestCOBSDecodeErrors(t *testing.T) {
	for _, c := range []struct{ name, in string }{
		{"zero code", "00"},
		{"zero inside a block", "03 11 00"},
		{"code past the end", "05 11 22"},
		{"second code past the end", "02 11 03 22"},
		{"trailing zero", "02 11 00"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := frame.COBSDecode(nil, unhex(t, c.in))
			frametest.WantCode(t, err, frame.ErrCodeCOBS)
		})
	}
}
