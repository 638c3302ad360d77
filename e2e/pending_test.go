package e2e

import (
	"testing"
	"time"

	"github.com/nanokms/nanokms/devnode"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// TestPendingBlockRecovered: the signer signed a block that never reached
// the network (its answer was lost). The next request on the old head is
// refused PENDING_BLOCK with that block; the gateway publishes it, reads
// the new head and sends the request again, which then confirms. Nothing is
// signed twice on one previous.
func TestPendingBlockRecovered(t *testing.T) {
	w := newWorld(t, devnode.Options{}, worldOptions{resend: time.Hour})
	acct := w.env.Account(0)
	fund := w.genesisSend(acct, custodytest.XNO(20))
	open := blockOf(t, w.awaitFinal(autoReceiveID(fund.Hash(), 1)))

	// A withdrawal signed by the cold side whose answer was lost: signed,
	// recorded as the signer's frontier, never published.
	dest := custodytest.NewExtAccount(42).Pub
	lost := w.env.SendIntent(acct, custodytest.XNO(4), dest)
	resp, err := w.env.Client.Sign(w.ctx, &pb.SignRequest{Intent: lost, Head: pb.BlockFromNano(&open), Approvals: w.env.Approve(lost, "service")})
	if err != nil {
		t.Fatal(err)
	}
	pending, err := resp.GetBlock().ToNano("block")
	if err != nil {
		t.Fatal(err)
	}

	// The next withdrawal reads the node's head (still the open block).
	in := w.env.SendIntent(acct, custodytest.XNO(3), dest)
	r := w.submit(in, w.env.Approve(in, "service")...)
	mustStatus(t, r, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")
	next := blockOf(t, r)
	if next.Previous != pending.Hash() || next.Balance != custodytest.XNO(13) {
		t.Fatalf("the request was not resent on the pending block: previous %s balance %s", next.Previous, next.Balance)
	}
	info, err := w.direct.BlockInfo(w.ctx, pending.Hash())
	if err != nil {
		t.Fatalf("the pending block was not published: %v", err)
	}
	if info.Block.Signature != pending.Signature {
		t.Fatal("the node holds another copy of the pending block")
	}
	if _, err := w.direct.BlockInfo(w.ctx, next.Hash()); err != nil {
		t.Fatalf("the resent request's block is not on the node: %v", err)
	}
	w.assertOnlySignerBlocks(acct)
}
