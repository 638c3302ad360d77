package signer

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// TestReplacedWalletSignsNothing: an account on record whose wallet label
// now holds another key (the wallet was replaced under the same label) is
// never signed for: the request fails as an internal error, and nothing is
// recorded, so the same request fails again rather than being answered.
func TestReplacedWalletSignsNothing(t *testing.T) {
	w := newWorld(t)
	stranger := custodytest.NewExtAccount(90) // not derived from the custody wallet
	if err := w.store.Adopt(AccountRecord{Account: stranger.Pub, Wallet: "custody", Index: 7}, time.Unix(0, w.now.Load())); err != nil {
		t.Fatal(err)
	}
	src, prev := w.Fund(stranger.Pub, custodytest.XNO(2))
	in := w.ReceiveIntent(stranger.Pub, custodytest.XNO(2), src.Hash(), &w.Rep)
	req := &pb.SignRequest{Intent: in, Source: pbBlock(src), SourcePrevious: pbBlock(prev)}
	auditBefore, err := w.store.VerifyAudit()
	if err != nil {
		t.Fatal(err)
	}
	for attempt := range 2 {
		resp, err := w.client.Sign(w.ctx, req)
		if status.Code(err) != codes.Internal || resp != nil {
			t.Fatalf("attempt %d: Sign = %v, %v; want codes.Internal and no block", attempt, resp, err)
		}
	}
	rec, ok, err := w.store.Account(stranger.Pub)
	if err != nil || !ok || rec.Frontier != nil {
		t.Fatalf("account record after the failure: %+v, %v, %v; want it still unopened", rec, ok, err)
	}
	if _, ok, err := w.store.Request(in.GetRequestId()); err != nil || ok {
		t.Fatalf("a response was recorded for the failed request (%v, %v)", ok, err)
	}
	if n, err := w.store.VerifyAudit(); err != nil || n != auditBefore {
		t.Fatalf("audit chain: %d records, %v; want %d: a failure is not a decision", n, err, auditBefore)
	}
}
