package signer

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// TestAdoptBatch: AdoptBatch writes the records and audit records Adopt
// writes one by one, and refuses, writing nothing, an account tracked
// already or named twice.
func TestAdoptBatch(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	head := nano.StateBlock{Account: nano.PublicKey{2}, Balance: nano.AmountFromUint64(9), Link: nano.Hash{1}}
	recs := []AccountRecord{
		{Account: nano.PublicKey{1}, Wallet: "custody", Index: 3},
		{Account: nano.PublicKey{2}, Wallet: "other \"label\"", Index: 4, Frontier: &head, FrontierHash: head.Hash(), Height: 7},
	}
	one, batch := mustEmptyStore(t), mustEmptyStore(t)
	for _, r := range recs {
		if err := one.Adopt(r, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.AdoptBatch(recs, at); err != nil {
		t.Fatal(err)
	}
	audit := func(s *Store) []*pb.AuditRecord {
		var out []*pb.AuditRecord
		if _, err := s.AuditFrom(1, func(r *pb.AuditRecord) error { out = append(out, r); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	a1, a2 := audit(one), audit(batch)
	if len(a1) != 2 || len(a2) != 2 {
		t.Fatalf("%d and %d audit records, want 2 each", len(a1), len(a2))
	}
	for i := range a1 {
		if !proto.Equal(a1[i], a2[i]) {
			t.Errorf("audit record %d:\n Adopt      %v\n AdoptBatch %v", i+1, a1[i], a2[i])
		}
	}
	for _, r := range recs {
		got, ok, err := batch.Account(r.Account)
		if err != nil || !ok || got.Wallet != r.Wallet || got.Index != r.Index || got.FrontierHash != r.FrontierHash || got.Height != r.Height {
			t.Errorf("account %s: %+v %v %v, want %+v", r.Account.Address(), got, ok, err, r)
		}
	}
	if n, err := batch.VerifyAudit(); err != nil || n != 2 {
		t.Fatalf("VerifyAudit: %d, %v", n, err)
	}

	for _, tt := range []struct {
		name string
		recs []AccountRecord
	}{
		{"one tracked already", []AccountRecord{{Account: nano.PublicKey{5}, Wallet: "w"}, recs[1]}},
		{"one named twice", []AccountRecord{{Account: nano.PublicKey{6}, Wallet: "w"}, {Account: nano.PublicKey{6}, Wallet: "w", Index: 1}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := batch.AdoptBatch(tt.recs, at)
			if signerapi.ReasonOf(err) != pb.RefusalReason_REFUSAL_REASON_ALREADY_TRACKED {
				t.Fatalf("AdoptBatch = %v, want ALREADY_TRACKED", err)
			}
			if _, ok, _ := batch.Account(tt.recs[0].Account); ok {
				t.Errorf("account %s was written", tt.recs[0].Account.Address())
			}
			if n, err := batch.VerifyAudit(); err != nil || n != 2 {
				t.Errorf("audit: %d records, %v; want the 2 from before", n, err)
			}
		})
	}
}
