package signer

import (
	"slices"
	"sync"
	"testing"
	"time"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// TestObserve checks that Options.Observe is told every Sign and Adopt
// decision once, with its reason.
func TestObserve(t *testing.T) {
	w := newWorld(t)
	type seen struct{ decision, reason string }
	var (
		mu  sync.Mutex
		got []seen
	)
	s := New(w.store, w.tok, w.signer.policy, Options{Now: w.signer.opts.Now, Observe: func(d, r string, took time.Duration) {
		if took < 0 {
			t.Errorf("negative duration %v", took)
		}
		mu.Lock()
		got = append(got, seen{d, r})
		mu.Unlock()
	}})
	ctx := w.ctx

	if _, err := s.Adopt(ctx, "custody", 0, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Adopt(ctx, "custody", 0, nil, 0); signerapi.ReasonOf(err) != pb.RefusalReason_REFUSAL_REASON_ALREADY_TRACKED {
		t.Fatalf("second adoption: %v", err)
	}
	src, prev := w.Fund(w.custody, custodytest.XNO(5))
	open := &pb.SignRequest{Intent: w.ReceiveIntent(w.custody, custodytest.XNO(5), src.Hash(), &w.Rep), Source: pbBlock(src), SourcePrevious: pbBlock(prev)}
	resp, err := s.Sign(ctx, open)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(ctx, open); err != nil {
		t.Fatal(err)
	}
	send := &pb.SignRequest{Intent: w.SendIntent(w.custody, custodytest.XNO(1), w.dest), Head: resp.GetBlock()}
	if _, err := s.Sign(ctx, send); signerapi.ReasonOf(err) != pb.RefusalReason_REFUSAL_REASON_APPROVALS_MISSING {
		t.Fatalf("unapproved send: %v", err)
	}
	if _, err := s.Sign(ctx, &pb.SignRequest{Intent: &pb.Intent{RequestId: "bad"}}); signerapi.ReasonOf(err) != pb.RefusalReason_REFUSAL_REASON_MALFORMED {
		t.Fatalf("malformed: %v", err)
	}

	want := []seen{
		{DecisionAdopted, ""},
		{DecisionAdoptionFailed, "ALREADY_TRACKED"},
		{DecisionSigned, ""},
		{DecisionSigned, ReasonRepeat},
		{DecisionRefused, "APPROVALS_MISSING"},
		{DecisionRefused, "MALFORMED"},
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("observed %v\nwant     %v", got, want)
	}
}
