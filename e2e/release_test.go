package e2e

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/devnode"
	"github.com/nanokms/nanokms/gateway"
	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/node"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// TestRejectedBlockReleased is the drill of docs/OPERATIONS.md ("A block
// the network refuses"), end to end on the devnode. The gateway's node
// shows a send to a custody account from an account that is on no ledger
// (a compromised node, or one on another network). Auto-receive (the
// signer's receive_automatic) queues its receive; the cold side, which
// cannot see the ledger, signs it; the devnode refuses it with the node's
// "Gap source block". The gateway raises BLOCK_REJECTED naming the
// account, the block and the node's error, and the request fails with
// that reason. The account is jammed: a withdrawal meets the refused
// block again (PENDING_BLOCK) and fails too, and the source is not
// auto-received again. The operator releases the block on the cold side
// with two approvals over the release statement; the next withdrawal is
// signed on the old frontier and confirms. The devnode holds only blocks
// the signer signed, and the audit chain verifies with the release in it.
func TestRejectedBlockReleased(t *testing.T) {
	var l *liar
	w := newWorld(t, devnode.Options{}, worldOptions{
		rpc: func(w *world, honest http.Handler) http.Handler {
			l = &liar{w: w, honest: honest}
			return l
		},
	})
	acct := w.env.Account(0)
	fund := w.genesisSend(acct, custodytest.XNO(20))
	recv := w.awaitFinal(autoReceiveID(fund.Hash(), 1))
	mustStatus(t, recv, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")
	open := blockOf(t, recv)

	// A well-formed, correctly signed send of 7 XNO to the custody account
	// from an account the devnode has never heard of; the gateway's node
	// answers block_info for it and the block before it.
	ghost := custodytest.NewExtAccount(90)
	ghostOpen := ghost.Add(custodytest.XNO(1000), nano.Hash{0xBB}, w.env.Rep)
	ghostSend := ghost.Add(custodytest.XNO(993), nano.Hash(acct), w.env.Rep)
	l.set(func(action string, req, honest map[string]any) map[string]any {
		if action != "block_info" {
			return nil
		}
		switch req["hash"] {
		case ghostSend.Hash().String():
			return blockInfoOf(t, ghostSend, custodytest.XNO(7), "send")
		case ghostOpen.Hash().String():
			return blockInfoOf(t, ghostOpen, custodytest.XNO(1000), "receive")
		}
		return nil
	})
	alerts, stop := w.gw.Alerts()
	defer stop()
	nextAlert := func(what string) *pb.Alert {
		t.Helper()
		select {
		case a := <-alerts:
			return a
		default:
			t.Fatalf("no alert after %s", what)
			return nil
		}
	}

	// Auto-receive: signed by the cold side, refused by the node.
	if err := w.gw.AutoReceive(w.ctx, acct, ghostSend.Hash()); err != nil {
		t.Fatalf("AutoReceive: %v", err)
	}
	bad := w.awaitFinal(autoReceiveID(ghostSend.Hash(), 1))
	mustStatus(t, bad, pb.RequestStatus_REQUEST_STATUS_FAILED, "")
	badBlock := blockOf(t, bad)
	badHash := badBlock.Hash()
	if badBlock.Previous != open.Hash() || badBlock.Link != ghostSend.Hash() || bad.GetRejection() != "gap source" ||
		!strings.Contains(bad.GetError(), `"Gap source block"`) {
		t.Fatalf("the refused receive: previous %s link %s rejection %q error %q", badBlock.Previous, badBlock.Link, bad.GetRejection(), bad.GetError())
	}
	a := nextAlert("the refused receive")
	if a.GetKind() != gateway.AlertBlockRejected || !bytes.Equal(a.GetAccount(), acct[:]) || !bytes.Equal(a.GetBlockHash(), badHash[:]) ||
		!strings.Contains(a.GetDetail(), "gap source") || !strings.Contains(a.GetDetail(), `"Gap source block"`) {
		t.Fatalf("alert %s account %X block %X (%s); want %s on %s block %s", a.GetKind(), a.GetAccount(), a.GetBlockHash(), a.GetDetail(),
			gateway.AlertBlockRejected, acct.Address(), badHash)
	}
	t.Logf("alert: %s", a.GetDetail())
	if _, err := w.direct.BlockInfo(w.ctx, badHash); !errors.Is(err, node.ErrBlockNotFound) {
		t.Fatalf("the devnode has the refused block: %v", err)
	}
	if rec, _, _ := w.env.Store.Account(acct); rec.FrontierHash != badHash {
		t.Fatalf("the signer's frontier is %s, not the refused block", rec.FrontierHash)
	}

	// The account is jammed: a withdrawal meets the refused block, which
	// the node refuses again.
	dest := custodytest.NewExtAccount(42).Pub
	jammed := w.withdraw(acct, custodytest.XNO(2), dest)
	mustStatus(t, jammed, pb.RequestStatus_REQUEST_STATUS_FAILED, "")
	if jammed.GetRejection() != "gap source" || !strings.Contains(jammed.GetError(), badHash.String()) {
		t.Fatalf("the jammed withdrawal: rejection %q error %q", jammed.GetRejection(), jammed.GetError())
	}
	if a := nextAlert("the jammed withdrawal"); a.GetKind() != gateway.AlertBlockRejected || !bytes.Equal(a.GetBlockHash(), badHash[:]) {
		t.Fatalf("alert %s for %X after the jammed withdrawal", a.GetKind(), a.GetBlockHash())
	}
	// The refused source is not auto-received again.
	if err := w.gw.AutoReceive(w.ctx, acct, ghostSend.Hash()); err != nil {
		t.Fatalf("AutoReceive again: %v", err)
	}
	if _, err := w.gw.Get(autoReceiveID(ghostSend.Hash(), 2)); !errors.Is(err, gateway.ErrNoRequest) {
		t.Fatalf("the refused source was queued again: %v", err)
	}
	if c := w.chain(acct); len(c) != 1 || c[0].Hash() != open.Hash() {
		t.Fatalf("the custody chain moved: %d blocks", len(c))
	}

	// The operator, having seen on several nodes that the block is refused,
	// releases it on the cold host with two officers' approvals.
	st, err := w.env.Client.PrepareRelease(w.ctx, &pb.PrepareReleaseRequest{Account: acct[:], BlockHash: badHash[:],
		ExpiresAtUnix: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatalf("PrepareRelease: %v", err)
	}
	openHash := open.Hash()
	if !bytes.Equal(st.GetFrontier(), openHash[:]) || st.GetBalanceRaw() != custodytest.XNO(20).String() {
		t.Fatalf("the release statement returns to %X with %s raw; want the open block with 20 XNO", st.GetFrontier(), st.GetBalanceRaw())
	}
	var approvals []*pb.Approval
	for _, name := range []string{"alice", "bob"} {
		ap, err := intent.ApproveRelease(w.env.Approvers[name], st)
		if err != nil {
			t.Fatal(err)
		}
		approvals = append(approvals, ap)
	}
	if _, err := w.env.Client.Release(w.ctx, &pb.ReleaseRequest{Statement: st, Approvals: approvals[:1]}); err == nil {
		t.Fatal("a release with one approval was applied")
	}
	released, err := w.env.Client.Release(w.ctx, &pb.ReleaseRequest{Statement: st, Approvals: approvals})
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	if !bytes.Equal(released.GetAccount().GetFrontier(), openHash[:]) || released.GetRequestId() != bad.GetRequestId() {
		t.Fatalf("Release answered %v", released)
	}

	// The account signs again: the next withdrawal is built on the old
	// frontier and confirms.
	out := w.withdraw(acct, custodytest.XNO(3), dest)
	mustStatus(t, out, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")
	sent := blockOf(t, out)
	if sent.Previous != openHash || sent.Balance != custodytest.XNO(17) {
		t.Fatalf("the withdrawal after the release: previous %s balance %s", sent.Previous, sent.Balance)
	}
	chain := w.assertOnlySignerBlocks(acct)[acct]
	if len(chain) != 2 || chain[1].Hash() != sent.Hash() {
		t.Fatalf("custody chain: %d blocks", len(chain))
	}
	n, err := w.env.Store.VerifyAudit()
	if err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	var releases int
	if _, err := w.env.Store.AuditFrom(1, func(r *pb.AuditRecord) error {
		if r.GetDecision() == "released" && bytes.Equal(r.GetBlockHash(), badHash[:]) && r.GetRequestId() == bad.GetRequestId() {
			releases++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if releases != 1 {
		t.Fatalf("%d release records in the %d-record audit chain", releases, n)
	}
	select {
	case a := <-alerts:
		t.Fatalf("an alert %s after the release", a.GetKind())
	default:
	}
}

// TestRejectedBlockConfirmedLater: the node refused a receive for a gap
// source that was only late. Once the source reaches the node, the next
// request of the account publishes the refused block again (PENDING_BLOCK),
// which now confirms, and is then signed on it: nothing needed releasing.
// The gateway raises REJECTED_BLOCK_CONFIRMED for the block it had
// reported refused, so that nobody releases it.
func TestRejectedBlockConfirmedLater(t *testing.T) {
	var l *liar
	w := newWorld(t, devnode.Options{}, worldOptions{
		rpc: func(w *world, honest http.Handler) http.Handler {
			l = &liar{w: w, honest: honest}
			return l
		},
	})
	acct := w.env.Account(0)
	fund := w.genesisSend(acct, custodytest.XNO(20))
	open := blockOf(t, w.awaitFinal(autoReceiveID(fund.Hash(), 1)))

	// A real chain the devnode does not have yet: genesis pays the sender,
	// which opens and pays the custody account 7 XNO.
	gen := w.dev.Genesis()
	ai, err := w.direct.AccountInfo(w.ctx, gen)
	if err != nil {
		t.Fatal(err)
	}
	sender := custodytest.NewExtAccount(91)
	genBal, _ := ai.Balance.Sub(custodytest.XNO(50))
	toSender := w.signWith(w.genesisKey(), nano.StateBlock{Account: gen, Previous: ai.Frontier, Representative: gen, Balance: genBal, Link: nano.Hash(sender.Pub)}, nano.SubtypeSend)
	senderOpen := w.signWith(sender.Key, nano.StateBlock{Account: sender.Pub, Representative: w.env.Rep, Balance: custodytest.XNO(50), Link: toSender.Hash()}, nano.SubtypeOpen)
	senderSend := w.signWith(sender.Key, nano.StateBlock{Account: sender.Pub, Previous: senderOpen.Hash(), Representative: w.env.Rep, Balance: custodytest.XNO(43), Link: nano.Hash(acct)}, nano.SubtypeSend)
	l.set(func(action string, req, honest map[string]any) map[string]any {
		if action == "block_info" && honest["error"] != nil {
			switch req["hash"] {
			case senderSend.Hash().String():
				return blockInfoOf(t, senderSend, custodytest.XNO(7), "send")
			case senderOpen.Hash().String():
				return blockInfoOf(t, senderOpen, custodytest.XNO(50), "receive")
			}
		}
		return nil
	})
	alerts, stop := w.gw.Alerts()
	defer stop()

	if err := w.gw.AutoReceive(w.ctx, acct, senderSend.Hash()); err != nil {
		t.Fatal(err)
	}
	bad := w.awaitFinal(autoReceiveID(senderSend.Hash(), 1))
	mustStatus(t, bad, pb.RequestStatus_REQUEST_STATUS_FAILED, "")
	badBlock := blockOf(t, bad)
	badHash := badBlock.Hash()
	select {
	case a := <-alerts:
		if a.GetKind() != gateway.AlertBlockRejected || bad.GetRejection() != "gap source" {
			t.Fatalf("alert %s, rejection %q", a.GetKind(), bad.GetRejection())
		}
	default:
		t.Fatal("no alert for the refused receive")
	}

	// The source reaches the node.
	for _, b := range []struct {
		b nano.StateBlock
		s nano.Subtype
	}{{toSender, nano.SubtypeSend}, {senderOpen, nano.SubtypeOpen}, {senderSend, nano.SubtypeSend}} {
		if _, err := w.dev.Process(b.b, b.s); err != nil {
			t.Fatalf("processing %s: %v", b.b.Hash(), err)
		}
	}

	// The next withdrawal publishes the refused block, then is signed on it.
	out := w.withdraw(acct, custodytest.XNO(3), custodytest.NewExtAccount(42).Pub)
	mustStatus(t, out, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")
	if sent := blockOf(t, out); sent.Previous != badHash || sent.Balance != custodytest.XNO(24) {
		t.Fatalf("the withdrawal: previous %s balance %s; want on the late receive %s with 24 XNO", sent.Previous, sent.Balance, badHash)
	}
	chain := w.assertOnlySignerBlocks(acct)[acct]
	if len(chain) != 3 || chain[0].Hash() != open.Hash() || chain[1].Hash() != badHash {
		t.Fatalf("custody chain: %d blocks", len(chain))
	}
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		select {
		case a := <-alerts:
			if a.GetKind() != gateway.AlertRejectedConfirmed {
				continue
			}
			if !bytes.Equal(a.GetBlockHash(), badHash[:]) || !bytes.Equal(a.GetAccount(), acct[:]) || !strings.Contains(a.GetDetail(), bad.GetRequestId()) {
				t.Fatalf("alert for %X on %X: %s", a.GetBlockHash(), a.GetAccount(), a.GetDetail())
			}
			return
		case <-deadline.C:
			t.Fatalf("no %s alert within %v", gateway.AlertRejectedConfirmed, waitLimit)
		}
	}
}
