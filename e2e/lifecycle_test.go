package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/nanokms/nanokms/devnode"
	"github.com/nanokms/nanokms/gateway"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// notifications is how the devnode treats confirmation notifications in
// a lifecycle run.
type notifications int

const (
	delivered notifications = iota
	dropped
	duplicated
)

// TestDevnodeLifecycle funds a custody account from genesis, lets the
// gateway auto-receive it through the bridge and the signer, withdraws
// with the service approval through the Custody API, and checks the
// devnode's ledger; with notifications delivered (the confirmations come
// over the WebSocket), dropped (polling and the receivable scan find
// them) and duplicated (each block is acted on once).
func TestDevnodeLifecycle(t *testing.T) {
	t.Run("websocket", func(t *testing.T) { runLifecycle(t, delivered) })
	t.Run("dropped", func(t *testing.T) { runLifecycle(t, dropped) })
	t.Run("duplicated", func(t *testing.T) { runLifecycle(t, duplicated) })
}

func runLifecycle(t *testing.T, mode notifications) {
	opts := worldOptions{}
	if mode == dropped {
		// Nothing arrives over the WebSocket: the receivable scan finds
		// the funding and block_info polling the confirmations.
		opts.pollInterval, opts.scan = 100*time.Millisecond, 100*time.Millisecond
	}
	w := newWorld(t, devnode.Options{}, opts)
	alerts, stopAlerts := w.gw.Alerts()
	defer stopAlerts()
	switch mode {
	case dropped:
		w.dev.SetDrop(1)
	case duplicated:
		w.dev.SetDuplicate(true)
	}
	acct := w.env.Account(0)
	ws := w.side.WS()

	// Genesis funds the custody account; the gateway receives it.
	fund := w.genesisSend(acct, custodytest.XNO(50))
	src := fund.Hash()
	recv := w.awaitFinal(autoReceiveID(src, 1))
	mustStatus(t, recv, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")
	open := blockOf(t, recv)
	if recv.GetSubtype() != "open" || open.Link != src || open.Balance != custodytest.XNO(50) ||
		open.Representative != w.env.Rep || !open.Previous.IsZero() || open.Account != acct {
		t.Fatalf("auto-receive: %s %+v", recv.GetSubtype(), open)
	}
	if !w.dev.Confirmed(open.Hash()) {
		t.Fatalf("the open block is not confirmed on the devnode")
	}

	// A withdrawal with the service approval, through the Custody API.
	dest := custodytest.NewExtAccount(40).Pub
	out := w.withdraw(acct, custodytest.XNO(7), dest)
	mustStatus(t, out, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")
	sent := blockOf(t, out)
	if out.GetSubtype() != "send" || sent.Previous != open.Hash() || sent.Link != nano.Hash(dest) || sent.Balance != custodytest.XNO(43) {
		t.Fatalf("withdrawal: %s %+v", out.GetSubtype(), sent)
	}

	// The devnode's ledger.
	ctx := context.Background()
	ai, err := w.direct.AccountInfo(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	if ai.Balance != custodytest.XNO(43) || ai.BlockCount != 2 || ai.Frontier != sent.Hash() || ai.Representative != w.env.Rep {
		t.Fatalf("account_info %+v", ai)
	}
	pending, err := w.direct.Receivable(ctx, dest, 10, nano.Amount{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Hash != sent.Hash() || pending[0].Amount != custodytest.XNO(7) {
		t.Fatalf("receivable at the destination: %+v", pending)
	}
	if r, err := w.direct.Receivable(ctx, acct, 10, nano.Amount{}); err != nil || len(r) != 0 {
		t.Fatalf("still receivable at the custody account: %+v %v", r, err)
	}
	chains := w.assertOnlySignerBlocks(acct)
	if c := chains[acct]; len(c) != 2 || c[0].Hash() != open.Hash() || c[1].Hash() != sent.Hash() {
		t.Fatalf("custody chain %v", c)
	}

	// How the confirmations came.
	hashes := []nano.Hash{src, open.Hash(), sent.Hash()}
	switch mode {
	case delivered, duplicated:
		for _, h := range hashes {
			if !seenOnWS(ws, h) {
				t.Errorf("the confirmation of %s did not come over the WebSocket", h)
			}
		}
	case dropped:
		for _, h := range hashes {
			if seenOnWS(ws, h) {
				t.Errorf("a dropped confirmation of %s came over the WebSocket", h)
			}
		}
	}
	if mode == duplicated {
		// A block's second copy is read after its first was acted on:
		// the last one may still be on its way.
		eventually(t, "every repeat dropped", func() bool { return ws.Stats().Duplicates >= uint64(len(hashes)) })
	}
	st := ws.Stats()
	switch {
	case mode == duplicated && st.Duplicates < uint64(len(hashes)):
		t.Errorf("WebSocket stats %+v: want ≥ %d duplicates dropped", st, len(hashes))
	case mode != duplicated && st.Duplicates != 0:
		t.Errorf("WebSocket stats %+v: duplicates without duplication", st)
	}

	// Each block was acted on once: one receive intent, queued once, and
	// one block per intent; a repeated confirmation changes nothing.
	if mode == duplicated {
		w.gw.ObserveConfirmed(ctx, gateway.Confirmed{Hash: src, Block: fund, Subtype: nano.SubtypeSend})
		if err := w.gw.AutoReceive(ctx, acct, src); err != nil {
			t.Errorf("AutoReceive of a received source: %v", err)
		}
	}
	list, err := w.gw.List(acct[:])
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].GetRequestId() != autoReceiveID(src, 1) || list[1].GetRequestId() != out.GetRequestId() {
		var ids []string
		for _, r := range list {
			ids = append(ids, r.GetRequestId()+" "+r.GetStatus().String())
		}
		t.Fatalf("requests %v; want the one receive and the withdrawal", ids)
	}
	for _, r := range list {
		if n := w.statusCount(r.GetRequestId(), pb.RequestStatus_REQUEST_STATUS_QUEUED); n != 1 {
			t.Errorf("request %s queued %d times", r.GetRequestId(), n)
		}
		if n := w.statusCount(r.GetRequestId(), pb.RequestStatus_REQUEST_STATUS_PUBLISHED); n != 1 {
			t.Errorf("request %s published %d times", r.GetRequestId(), n)
		}
	}
	if ok, err := w.env.Store.Received(acct, src); err != nil || !ok {
		t.Errorf("the signer did not record the receive of %s: %v", src, err)
	}
	if got := len(w.chain(acct)); got != 2 {
		t.Errorf("%d blocks on the custody account after repeats", got)
	}

	select {
	case a := <-alerts:
		t.Errorf("unexpected alert %s: %s", a.GetKind(), a.GetDetail())
	default:
	}
}

// seenOnWS reports whether the WebSocket client delivered a confirmation
// of h.
func seenOnWS(ws interface {
	WaitConfirmed(nano.Hash) (<-chan struct{}, func())
}, h nano.Hash) bool {
	ch, cancel := ws.WaitConfirmed(h)
	defer cancel()
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestQueuedRequestsFollowPromptly submits two withdrawals from one
// account back to back: the second waits for the first to be published
// (so that the node's head includes it) and must then go at once, not
// after the resend interval.
func TestQueuedRequestsFollowPromptly(t *testing.T) {
	w := newWorld(t, devnode.Options{}, worldOptions{resend: time.Hour})
	acct := w.env.Account(0)
	fund := w.genesisSend(acct, custodytest.XNO(20))
	mustStatus(t, w.awaitFinal(autoReceiveID(fund.Hash(), 1)), pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")

	dest := custodytest.NewExtAccount(41).Pub
	var ids []string
	for _, amount := range []uint64{2, 3} {
		in := w.env.SendIntent(acct, custodytest.XNO(amount), dest)
		if _, err := w.gw.Submit(w.ctx, &pb.SubmitIntentRequest{Intent: in, Approvals: w.env.Approve(in, "service")}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, in.GetRequestId())
	}
	first, second := blockOf(t, w.awaitFinal(ids[0])), w.awaitFinal(ids[1])
	mustStatus(t, second, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")
	if b := blockOf(t, second); b.Previous != first.Hash() || b.Balance != custodytest.XNO(15) {
		t.Fatalf("second withdrawal %+v", b)
	}
	w.assertOnlySignerBlocks(acct)
}
