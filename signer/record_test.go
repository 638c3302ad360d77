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
	prior := sampleBlock()
	prior.Balance = nano.AmountFromUint64(7)
	recs := []AccountRecord{
		{Account: nano.PublicKey{9}, Wallet: "treasury", Index: 4294967295},
		{Account: nano.PublicKey{9}, Wallet: "", Index: 1, Frontier: &b, FrontierHash: b.Hash(), Height: 1 << 40},
		{Account: nano.PublicKey{9}, Wallet: "w", Index: 2, Frontier: &b, FrontierHash: b.Hash(), Height: 5,
			Prior: &PriorFrontier{Block: prior, Hash: prior.Hash(), Height: 4}},
		// Restored from a backup into a lost state: unconfirmed.
		{Account: nano.PublicKey{9}, Wallet: "u", Index: 3, Unconfirmed: true},
		{Account: nano.PublicKey{9}, Wallet: "u", Index: 3, Frontier: &b, FrontierHash: b.Hash(), Height: 2, Unconfirmed: true},
		{Account: nano.PublicKey{9}, Wallet: "u", Index: 3, Frontier: &b, FrontierHash: b.Hash(), Height: 6, Unconfirmed: true,
			Prior: &PriorFrontier{Block: prior, Hash: prior.Hash(), Height: 5}},
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
			(r.Frontier != nil && (back.Frontier == nil || *back.Frontier != *r.Frontier)) ||
			(r.Prior == nil) != (back.Prior == nil) || (r.Prior != nil && *back.Prior != *r.Prior) || back.Unconfirmed != r.Unconfirmed {
			t.Fatalf("round trip of %+v gave %+v", r, back)
		}
		want := map[[2]bool]byte{{false, false}: recordVersion, {true, false}: recordVersionPrior,
			{false, true}: recordVersionUnconfirmed, {true, true}: recordVersionPriorUnconfirmed}[[2]bool{r.Prior != nil, r.Unconfirmed}]
		if data[0] != want {
			t.Fatalf("record version %d for a record with prior %v, unconfirmed %v; want %d", data[0], r.Prior != nil, r.Unconfirmed, want)
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
	// A prior needs a frontier: refused on encoding, and a version 2
	// record claiming no frontier is refused on decoding.
	if _, err := (&AccountRecord{Prior: &PriorFrontier{}}).MarshalBinary(); err == nil {
		t.Error("a record with a prior and no frontier was encoded")
	}
	v1, _ := (&AccountRecord{Account: nano.PublicKey{9}, Wallet: "w"}).MarshalBinary()
	v2 := append([]byte{recordVersionPrior}, v1[1:]...)
	v2 = append(v2, make([]byte, priorLen)...)
	var x AccountRecord
	if err := x.UnmarshalBinary(v2); !errors.Is(err, errCorrupt) {
		t.Errorf("a version 2 record without a frontier decoded: %v", err)
	}
	v4 := append([]byte{recordVersionPriorUnconfirmed}, v2[1:]...)
	if err := x.UnmarshalBinary(v4); !errors.Is(err, errCorrupt) {
		t.Errorf("a version 4 record without a frontier decoded: %v", err)
	}
	v5 := append([]byte{5}, v1[1:]...)
	if err := x.UnmarshalBinary(v5); !errors.Is(err, errCorrupt) {
		t.Errorf("a version 5 record decoded: %v", err)
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
	r.Prior = &PriorFrontier{Block: b, Hash: nano.Hash{7}, Height: 3}
	d3, _ := r.MarshalBinary()
	r.Unconfirmed = true
	d4, _ := r.MarshalBinary()
	f.Add(d1)
	f.Add(d2)
	f.Add(d3)
	f.Add(d4)
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
