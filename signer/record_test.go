package signer

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nanokms/nanokms/nano"
)

func sampleBlock() nano.StateBlock {
	b := nano.StateBlock{Account: nano.PublicKey{1}, Previous: nano.Hash{2}, Representative: nano.PublicKey{3},
		Balance: nano.MaxAmount, Link: nano.Hash{4}, Work: 0xfedcba9876543210}
	b.Signature[63] = 5
	return b
}

func TestRecordRoundTrip(t *testing.T) {
	b := sampleBlock()
	recs := []AccountRecord{
		{Account: nano.PublicKey{9}, Wallet: "treasury", Index: 4294967295},
		{Account: nano.PublicKey{9}, Wallet: "", Index: 1, Frontier: &b, FrontierHash: b.Hash(), Height: 1 << 40},
	}
	for _, r := range recs {
		data, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back AccountRecord
		if err := back.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		again, _ := back.MarshalBinary()
		if !bytes.Equal(data, again) || back.Wallet != r.Wallet || back.Index != r.Index || back.Height != r.Height ||
			(r.Frontier != nil && (back.Frontier == nil || *back.Frontier != *r.Frontier)) {
			t.Fatalf("round trip of %+v gave %+v", r, back)
		}
		// Every truncation and a trailing byte are refused, never half-read.
		for n := 0; n < len(data); n++ {
			var x AccountRecord
			if err := x.UnmarshalBinary(data[:n]); !errors.Is(err, errCorrupt) {
				t.Fatalf("a %d-byte prefix decoded: %v", n, err)
			}
		}
		var x AccountRecord
		if err := x.UnmarshalBinary(append(data, 0)); !errors.Is(err, errCorrupt) {
			t.Fatal("a trailing byte was accepted")
		}
	}
	sb := SignedBlock{Block: b, Hash: b.Hash(), RequestID: "wd-1"}
	data, err := sb.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back SignedBlock
	if err := back.UnmarshalBinary(data); err != nil || back != sb {
		t.Fatalf("signed block round trip: %+v %v", back, err)
	}
	for n := 0; n < len(data); n++ {
		var x SignedBlock
		if err := x.UnmarshalBinary(data[:n]); !errors.Is(err, errCorrupt) {
			t.Fatalf("a %d-byte prefix decoded", n)
		}
	}
	data[0] = 2
	if err := back.UnmarshalBinary(data); !errors.Is(err, errCorrupt) {
		t.Fatal("an unknown record version was accepted")
	}
}

// FuzzRecordDecode: arbitrary bytes never panic the record decoders, and
// what decodes re-encodes to the same bytes.
func FuzzRecordDecode(f *testing.F) {
	b := sampleBlock()
	r := AccountRecord{Account: nano.PublicKey{9}, Wallet: "w", Frontier: &b, FrontierHash: b.Hash()}
	d1, _ := r.MarshalBinary()
	d2, _ := (&SignedBlock{Block: b, Hash: b.Hash(), RequestID: "x"}).MarshalBinary()
	f.Add(d1)
	f.Add(d2)
	f.Fuzz(func(t *testing.T, data []byte) {
		var a AccountRecord
		if a.UnmarshalBinary(data) == nil {
			if again, err := a.MarshalBinary(); err != nil || !bytes.Equal(again, data) {
				t.Fatalf("account record does not re-encode")
			}
		}
		var s SignedBlock
		if s.UnmarshalBinary(data) == nil {
			if again, err := s.MarshalBinary(); err != nil || !bytes.Equal(again, data) {
				t.Fatalf("signed block does not re-encode")
			}
		}
	})
}
