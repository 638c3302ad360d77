package signer

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// jammed is a custody account whose recorded frontier is a block the
// network will never accept: a receive of a send that exists nowhere but
// in the request (the signer cannot tell).
type jammed struct {
	open      nano.StateBlock // the frontier before: 200 XNO
	bad       nano.StateBlock // the receive of 30 XNO on it, recorded as the frontier
	badReq    *pb.SignRequest
	src, prev nano.StateBlock // the bad receive's source and its previous
}

func (w *world) jam() *jammed {
	w.t.Helper()
	w.adopt("custody", 0, nil)
	src1, src1Prev := w.Fund(w.custody, custodytest.XNO(200))
	open := w.mustSign(&pb.SignRequest{Intent: w.ReceiveIntent(w.custody, custodytest.XNO(200), src1.Hash(), &w.Rep),
		Source: pbBlock(src1), SourcePrevious: pbBlock(src1Prev)}, "open")
	src, prev := w.Fund(w.custody, custodytest.XNO(30))
	req := &pb.SignRequest{Intent: w.ReceiveIntent(w.custody, custodytest.XNO(30), src.Hash(), nil), Head: pbBlock(open),
		Source: pbBlock(src), SourcePrevious: pbBlock(prev)}
	bad := w.mustSign(req, "receive")
	return &jammed{open: open, bad: bad, badReq: req, src: src, prev: prev}
}

// statement is the release statement of block on account's record, as
// PrepareRelease makes it (expiring in an hour).
func (w *world) statement(account nano.PublicKey, block nano.Hash, previous *pb.Block) *pb.ReleaseStatement {
	w.t.Helper()
	st, err := w.client.PrepareRelease(w.ctx, &pb.PrepareReleaseRequest{Account: account[:], BlockHash: block[:],
		ExpiresAtUnix: w.Expiry(), Previous: previous})
	if err != nil {
		w.t.Fatalf("PrepareRelease: %v", err)
	}
	return st
}

// approveRelease returns the named approvers' approvals of st.
func (w *world) approveRelease(st *pb.ReleaseStatement, names ...string) []*pb.Approval {
	w.t.Helper()
	var out []*pb.Approval
	for _, n := range names {
		a, err := intent.ApproveRelease(w.Approvers[n], st)
		if err != nil {
			w.t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// mustRecord returns the custody account's record.
func (w *world) mustRecord() AccountRecord {
	w.t.Helper()
	rec, ok, err := w.state.account(w.ctx, w.custody)
	if err != nil || !ok {
		w.t.Fatalf("the custody account's record: %v %v", ok, err)
	}
	return rec
}

// TestReleaseRefusals: every release that does not fit the statement, the
// approvals, the policy or the record is refused with its reason, recorded
// in the audit chain, and changes nothing: the account stays on the
// withdrawn-to-be frontier, still jammed.
func TestReleaseRefusals(t *testing.T) { forEachStore(t, testReleaseRefusals) }

func testReleaseRefusals(t *testing.T, wo worldOptions) {
	w := newWorldWith(t, wo)
	j := w.jam()
	good := w.statement(w.custody, j.bad.Hash(), nil)
	if !bytes.Equal(good.GetFrontier(), hashBytes(j.open.Hash())) || good.GetBalanceRaw() != custodytest.XNO(200).String() {
		t.Fatalf("PrepareRelease returned %v, want the open block %s with 200 XNO", good, j.open.Hash())
	}
	// The account is jammed: a send on the node's frontier (the open block)
	// is refused with the block that will never confirm.
	send := w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
	_, err := w.client.Sign(w.ctx, &pb.SignRequest{Intent: send, Head: pbBlock(j.open), Approvals: w.Approve(send, "service")})
	if reasonOf(err) != "PENDING_BLOCK" {
		t.Fatalf("a send on the open block: %v, want PENDING_BLOCK", err)
	}

	// custody1: tracked, adopted on a head signed outside nanokms.
	seed, _ := nano.ParseSeed(custodytest.CustodySeed)
	k1 := nano.DeriveKey(&seed, 1)
	outside := &custodytest.ExtAccount{Key: nano.NewSigningKey(&k1), Pub: w.custody1}
	srcX, _ := w.Fund(w.custody1, custodytest.XNO(3))
	h1 := outside.Add(custodytest.XNO(3), srcX.Hash(), w.Rep)
	w.adopt("custody", 1, &h1)

	with := func(f func(*pb.ReleaseStatement)) *pb.ReleaseStatement {
		st := proto.Clone(good).(*pb.ReleaseStatement)
		f(st)
		return st
	}
	other := with(func(s *pb.ReleaseStatement) { s.ExpiresAtUnix-- })
	wrongFrontier := with(func(s *pb.ReleaseStatement) { s.Frontier = hashBytes(j.src.Hash()) })
	wrongBalance := with(func(s *pb.ReleaseStatement) { s.BalanceRaw = custodytest.XNO(230).String() })
	lowerBlock := with(func(s *pb.ReleaseStatement) {
		s.BlockHash, s.Frontier, s.BalanceRaw = hashBytes(j.open.Hash()), make([]byte, 32), "0"
	})
	otherAccount := with(func(s *pb.ReleaseStatement) { s.Account = w.custody1[:] })
	adopted := with(func(s *pb.ReleaseStatement) {
		s.Account, s.BlockHash, s.Frontier, s.BalanceRaw = w.custody1[:], hashBytes(h1.Hash()), make([]byte, 32), "0"
	})
	untracked := with(func(s *pb.ReleaseStatement) { s.Account = w.dest[:] })
	now := time.Unix(0, w.now.Load())
	expired := with(func(s *pb.ReleaseStatement) { s.ExpiresAtUnix = now.Add(-time.Second).Unix() })
	tooFar := with(func(s *pb.ReleaseStatement) { s.ExpiresAtUnix = now.Add(25 * time.Hour).Unix() })
	badBalance := with(func(s *pb.ReleaseStatement) { s.BalanceRaw = "lots" })

	tests := []struct {
		name      string
		st        *pb.ReleaseStatement
		approvals []*pb.Approval
		reason    string
		code      codes.Code
		detail    string
	}{
		{"no approvals", good, nil, "APPROVALS_MISSING", codes.PermissionDenied, "2 of {alice, bob, carol} required, 0 given"},
		{"too few approvals", good, w.approveRelease(good, "alice"), "APPROVALS_MISSING", codes.PermissionDenied, "1 given"},
		{"the first tier's approver does not count", good, w.approveRelease(good, "service", "bob"), "APPROVALS_MISSING", codes.PermissionDenied, "approvals by {service} do not count"},
		{"approvals over another statement", good, w.approveRelease(other, "alice", "bob"), "APPROVAL_INVALID", codes.PermissionDenied, "is not over this release statement"},
		{"approvals over the intent", good, w.Approve(j.badReq.GetIntent(), "alice", "bob"), "APPROVAL_INVALID", codes.PermissionDenied, ""},
		{"an unknown approver", good, w.approveRelease(good, "alice", "mallory"), "APPROVER_UNKNOWN", codes.PermissionDenied, "is not a configured approver"},
		{"an approver twice", good, w.approveRelease(good, "alice", "alice"), "APPROVAL_DUPLICATED", codes.PermissionDenied, `"alice" appears twice`},
		{"another frontier to return to", wrongFrontier, w.approveRelease(wrongFrontier, "alice", "bob"), "RELEASE_MISMATCH", codes.FailedPrecondition, "the frontier before"},
		{"another balance", wrongBalance, w.approveRelease(wrongBalance, "alice", "bob"), "RELEASE_MISMATCH", codes.FailedPrecondition, "230000000000000000000000000000000 raw"},
		{"a block under the frontier", lowerBlock, w.approveRelease(lowerBlock, "alice", "bob"), "HEAD_NOT_FRONTIER", codes.FailedPrecondition, "was signed on top of"},
		{"another account", otherAccount, w.approveRelease(otherAccount, "alice", "bob"), "HEAD_NOT_FRONTIER", codes.FailedPrecondition, "is not the recorded frontier"},
		{"an adopted frontier", adopted, w.approveRelease(adopted, "alice", "bob"), "RELEASE_MISMATCH", codes.FailedPrecondition, "adopted, not signed by this signer"},
		{"an untracked account", untracked, w.approveRelease(untracked, "alice", "bob"), "UNKNOWN_ACCOUNT", codes.NotFound, ""},
		{"expired", expired, w.approveRelease(expired, "alice", "bob"), "EXPIRED", codes.FailedPrecondition, "expired at"},
		{"expiring too far ahead", tooFar, w.approveRelease(tooFar, "alice", "bob"), "EXPIRED", codes.FailedPrecondition, "more than the allowed"},
		{"a malformed statement", badBalance, nil, "MALFORMED", codes.InvalidArgument, "balance_raw"},
		{"no statement", nil, nil, "MALFORMED", codes.InvalidArgument, "statement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, beforeRec := w.auditTail()
			before := beforeRec.GetSeq()
			_, err := w.client.Release(w.ctx, &pb.ReleaseRequest{Statement: tt.st, Approvals: tt.approvals})
			if reasonOf(err) != tt.reason || status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.detail) {
				t.Fatalf("Release: %v; want %s (%s) with %q", err, tt.reason, tt.code, tt.detail)
			}
			rec := w.mustRecord()
			if rec.FrontierHash != j.bad.Hash() || rec.Prior == nil || rec.Prior.Hash != j.open.Hash() {
				t.Fatalf("a refused release changed the record: frontier %s", rec.FrontierHash)
			}
			_, last := w.auditTail()
			if last.GetSeq() != before+1 || last.GetDecision() != DecisionRefused || last.GetReason() != tt.reason ||
				!strings.HasPrefix(last.GetDetail(), "release: ") {
				t.Fatalf("the refusal's audit record: %+v", last)
			}
		})
	}
	if sb, ok, err := w.state.signedOn(w.ctx, w.custody, j.open.Hash()); err != nil || !ok || sb.Hash != j.bad.Hash() {
		t.Fatalf("the refusals changed the block signed on the open block: %v %v", ok, err)
	}
	if n, err := w.state.verifyAudit(w.ctx); err != nil {
		t.Fatalf("audit chain after %d records: %v", n, err)
	}
}

func hashBytes(h nano.Hash) []byte { return append([]byte(nil), h[:]...) }

// TestReleaseGood: an approved release withdraws the jammed receive: the
// record is back on the open block, the release is in the audit chain
// (which verifies), the withdrawn request id is refused RELEASED, the
// statement cannot be applied again, the source can be received again,
// and a new request on the old frontier signs.
func TestReleaseGood(t *testing.T) { forEachStore(t, testReleaseGood) }

func testReleaseGood(t *testing.T, wo worldOptions) {
	w := newWorldWith(t, wo)
	j := w.jam()
	st := w.statement(w.custody, j.bad.Hash(), nil)
	approvals := w.approveRelease(st, "carol", "alice")
	resp, err := w.client.Release(w.ctx, &pb.ReleaseRequest{Statement: st, Approvals: approvals})
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	if !bytes.Equal(resp.GetAccount().GetFrontier(), hashBytes(j.open.Hash())) || resp.GetAccount().GetBalanceRaw() != custodytest.XNO(200).String() ||
		resp.GetAccount().GetHeight() != 1 || resp.GetRequestId() != j.badReq.GetIntent().GetRequestId() {
		t.Fatalf("Release answered %v", resp)
	}
	rec := w.mustRecord()
	if rec.FrontierHash != j.open.Hash() || rec.Frontier == nil || *rec.Frontier != j.open || rec.Prior != nil || rec.Height != 1 {
		t.Fatalf("record after the release: %+v", rec)
	}
	if _, ok, _ := w.state.signedOn(w.ctx, w.custody, j.open.Hash()); ok {
		t.Fatal("the withdrawn block is still recorded as signed on the open block")
	}
	if ok, _ := w.state.received(w.ctx, w.custody, j.src.Hash()); ok {
		t.Fatal("the withdrawn receive's source is still recorded as received")
	}

	// The audit chain verifies and ends with the release.
	_, last := w.auditTail()
	r, _ := intent.ParseRelease(st)
	digest := r.Digest()
	if last.GetSeq() != resp.GetAuditSeq() || last.GetDecision() != DecisionReleased || !bytes.Equal(last.GetBlockHash(), hashBytes(j.bad.Hash())) ||
		!bytes.Equal(last.GetIntentHash(), digest[:]) || last.GetRequestId() != j.badReq.GetIntent().GetRequestId() ||
		!bytes.Equal(last.GetAccount(), w.custody[:]) || !strings.Contains(last.GetDetail(), "approved by carol, alice") ||
		!strings.Contains(last.GetDetail(), "withdrew receive "+j.bad.Hash().String()) {
		t.Fatalf("the release's audit record: %+v", last)
	}
	if n, err := w.state.verifyAudit(w.ctx); err != nil || n != last.GetSeq() {
		t.Fatalf("audit chain: %d records, %v", n, err)
	}

	// The withdrawn request id is refused, not answered with the withdrawn block.
	_, err = w.client.Sign(w.ctx, j.badReq)
	if reasonOf(err) != "RELEASED" || status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), j.bad.Hash().String()) {
		t.Fatalf("a repeat of the withdrawn request: %v, want RELEASED", err)
	}
	// The same id with another intent is still REQUEST_ID_REUSED.
	reused := proto.Clone(j.badReq).(*pb.SignRequest)
	reused.Intent.ExpiresAtUnix++
	if _, err := w.client.Sign(w.ctx, reused); reasonOf(err) != "REQUEST_ID_REUSED" {
		t.Fatalf("the withdrawn request id with another intent: %v", err)
	}
	// The statement cannot be applied again.
	_, err = w.client.Release(w.ctx, &pb.ReleaseRequest{Statement: st, Approvals: approvals})
	if reasonOf(err) != "RELEASE_MISMATCH" || !strings.Contains(status.Convert(err).Message(), "already applied") {
		t.Fatalf("a replay of the release: %v", err)
	}

	// A new request on the old frontier signs; the frontier moves on.
	send := w.SendIntent(w.custody, custodytest.XNO(5), w.dest)
	s1 := w.mustSign(&pb.SignRequest{Intent: send, Head: pbBlock(j.open), Approvals: w.Approve(send, "service")}, "send")
	if s1.Previous != j.open.Hash() || s1.Balance != custodytest.XNO(195) {
		t.Fatalf("the send after the release: previous %s balance %s", s1.Previous, s1.Balance)
	}
	if rec := w.mustRecord(); rec.FrontierHash != s1.Hash() || rec.Height != 2 || rec.Prior == nil || rec.Prior.Hash != j.open.Hash() {
		t.Fatalf("record after the next send: %+v", rec)
	}
	// The source, should it ever exist, can be received under a new id.
	again := w.mustSign(&pb.SignRequest{Intent: w.ReceiveIntent(w.custody, custodytest.XNO(30), j.src.Hash(), nil), Head: pbBlock(s1),
		Source: pbBlock(j.src), SourcePrevious: pbBlock(j.prev)}, "receive")
	if again.Previous != s1.Hash() || again.Balance != custodytest.XNO(225) {
		t.Fatalf("receiving the source again: %+v", again)
	}
	// A replay of the applied statement is still refused, before anything
	// else is looked at.
	if _, err := w.client.Release(w.ctx, &pb.ReleaseRequest{Statement: st, Approvals: approvals}); reasonOf(err) != "RELEASE_MISMATCH" {
		t.Fatalf("a replay after more blocks: %v", err)
	}
	if _, err := w.state.verifyAudit(w.ctx); err != nil {
		t.Fatal(err)
	}
}

// TestReleaseOnTop: once anything is signed on top of the block, it is no
// longer the frontier and cannot be released; the frontier itself can.
func TestReleaseOnTop(t *testing.T) { forEachStore(t, testReleaseOnTop) }

func testReleaseOnTop(t *testing.T, wo worldOptions) {
	w := newWorldWith(t, wo)
	j := w.jam()
	st := w.statement(w.custody, j.bad.Hash(), nil)
	send := w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
	top := w.mustSign(&pb.SignRequest{Intent: send, Head: pbBlock(j.bad), Approvals: w.Approve(send, "service")}, "send")
	_, err := w.client.Release(w.ctx, &pb.ReleaseRequest{Statement: st, Approvals: w.approveRelease(st, "alice", "bob")})
	if reasonOf(err) != "HEAD_NOT_FRONTIER" || !strings.Contains(status.Convert(err).Message(), top.Hash().String()+" was signed on top of") {
		t.Fatalf("releasing a block with a block on top: %v", err)
	}
	if _, err := w.client.PrepareRelease(w.ctx, &pb.PrepareReleaseRequest{Account: w.custody[:], BlockHash: hashBytes(j.bad.Hash()), ExpiresAtUnix: w.Expiry()}); reasonOf(err) != "HEAD_NOT_FRONTIER" {
		t.Fatalf("PrepareRelease of a block with a block on top: %v", err)
	}
	// The send on top is the frontier: it can be released, back to the receive.
	st2 := w.statement(w.custody, top.Hash(), nil)
	if !bytes.Equal(st2.GetFrontier(), hashBytes(j.bad.Hash())) || st2.GetBalanceRaw() != custodytest.XNO(230).String() {
		t.Fatalf("statement for the send: %v", st2)
	}
	if _, err := w.client.Release(w.ctx, &pb.ReleaseRequest{Statement: st2, Approvals: w.approveRelease(st2, "alice", "bob")}); err != nil {
		t.Fatalf("releasing the frontier: %v", err)
	}
	// The withdrawn send no longer counts in the velocity window.
	if sent, err := w.state.sent(w.ctx, w.custody, time.Unix(0, w.now.Load())); err != nil || !sent.IsZero() {
		t.Fatalf("sent in 24 hours after the release of the only send: %s %v", sent, err)
	}
	// The restored frontier has no record of its own prior: releasing it
	// too needs that block, given and verified.
	_, err = w.client.PrepareRelease(w.ctx, &pb.PrepareReleaseRequest{Account: w.custody[:], BlockHash: hashBytes(j.bad.Hash()), ExpiresAtUnix: w.Expiry()})
	if reasonOf(err) != "RELEASE_MISMATCH" || !strings.Contains(status.Convert(err).Message(), "no record of the frontier before") {
		t.Fatalf("PrepareRelease without the previous block: %v", err)
	}
	wrong := j.src
	if _, err := w.client.PrepareRelease(w.ctx, &pb.PrepareReleaseRequest{Account: w.custody[:], BlockHash: hashBytes(j.bad.Hash()),
		ExpiresAtUnix: w.Expiry(), Previous: pbBlock(wrong)}); reasonOf(err) != "RELEASE_MISMATCH" {
		t.Fatalf("PrepareRelease with another block as previous: %v", err)
	}
	forged := j.open
	forged.Signature[3] ^= 1
	if _, err := w.client.PrepareRelease(w.ctx, &pb.PrepareReleaseRequest{Account: w.custody[:], BlockHash: hashBytes(j.bad.Hash()),
		ExpiresAtUnix: w.Expiry(), Previous: pbBlock(forged)}); reasonOf(err) != "HEAD_SIGNATURE_INVALID" {
		t.Fatalf("PrepareRelease with a forged previous: %v", err)
	}
	st3 := w.statement(w.custody, j.bad.Hash(), pbBlock(j.open))
	if _, err := w.client.Release(w.ctx, &pb.ReleaseRequest{Statement: st3, Approvals: w.approveRelease(st3, "alice", "bob")}); reasonOf(err) != "RELEASE_MISMATCH" {
		t.Fatalf("Release without the previous block: %v", err)
	}
	if _, err := w.client.Release(w.ctx, &pb.ReleaseRequest{Statement: st3, Approvals: w.approveRelease(st3, "alice", "bob"), Previous: pbBlock(j.open)}); err != nil {
		t.Fatalf("Release with the previous block: %v", err)
	}
	if rec := w.mustRecord(); rec.FrontierHash != j.open.Hash() || rec.Balance() != custodytest.XNO(200) {
		t.Fatalf("record after two releases: %+v", rec)
	}
	if _, err := w.state.verifyAudit(w.ctx); err != nil {
		t.Fatal(err)
	}
}

// TestReleaseOpen: a withdrawn open block returns the account to
// unopened, and it can be opened again.
func TestReleaseOpen(t *testing.T) { forEachStore(t, testReleaseOpen) }

func testReleaseOpen(t *testing.T, wo worldOptions) {
	w := newWorldWith(t, wo)
	w.adopt("custody", 0, nil)
	src, prev := w.Fund(w.custody, custodytest.XNO(9))
	open := w.mustSign(&pb.SignRequest{Intent: w.ReceiveIntent(w.custody, custodytest.XNO(9), src.Hash(), &w.Rep),
		Source: pbBlock(src), SourcePrevious: pbBlock(prev)}, "open")
	st := w.statement(w.custody, open.Hash(), nil)
	if !bytes.Equal(st.GetFrontier(), make([]byte, 32)) || st.GetBalanceRaw() != "0" {
		t.Fatalf("statement for an open block: %v", st)
	}
	if _, err := w.client.Release(w.ctx, &pb.ReleaseRequest{Statement: st, Approvals: w.approveRelease(st, "alice", "bob")}); err != nil {
		t.Fatal(err)
	}
	if rec := w.mustRecord(); rec.Frontier != nil || !rec.FrontierHash.IsZero() || rec.Height != 0 {
		t.Fatalf("record after releasing the open block: %+v", rec)
	}
	src2, prev2 := w.Fund(w.custody, custodytest.XNO(4))
	again := w.mustSign(&pb.SignRequest{Intent: w.ReceiveIntent(w.custody, custodytest.XNO(4), src2.Hash(), &w.Rep),
		Source: pbBlock(src2), SourcePrevious: pbBlock(prev2)}, "open")
	if !again.Previous.IsZero() || again.Balance != custodytest.XNO(4) {
		t.Fatalf("the new open block: %+v", again)
	}
}

// TestReleaseOldRecord: a frontier recorded by a signer that did not keep
// the frontier before it (a state file from before releases) is released
// with that block given, verified against the withdrawn block's previous.
func TestReleaseOldRecord(t *testing.T) {
	w := newWorld(t)
	j := w.jam()
	rec := w.mustRecord()
	rec.Prior = nil
	if err := w.store.write(func(tx *bolt.Tx) error { return putRecord(tx.Bucket(bucketAccounts), rec.Account[:], &rec) }); err != nil {
		t.Fatal(err)
	}
	_, err := w.client.PrepareRelease(w.ctx, &pb.PrepareReleaseRequest{Account: w.custody[:], BlockHash: hashBytes(j.bad.Hash()), ExpiresAtUnix: w.Expiry()})
	if reasonOf(err) != "RELEASE_MISMATCH" {
		t.Fatalf("PrepareRelease of an old record without the previous block: %v", err)
	}
	st := w.statement(w.custody, j.bad.Hash(), pbBlock(j.open))
	if _, err := w.client.Release(w.ctx, &pb.ReleaseRequest{Statement: st, Approvals: w.approveRelease(st, "alice", "bob"), Previous: pbBlock(j.open)}); err != nil {
		t.Fatal(err)
	}
	if rec := w.mustRecord(); rec.FrontierHash != j.open.Hash() || rec.Height != 1 {
		t.Fatalf("record after the release: %+v", rec)
	}
}

// TestReleaseObserved: releases are reported to Options.Observe.
func TestReleaseObserved(t *testing.T) { forEachStore(t, testReleaseObserved) }

func testReleaseObserved(t *testing.T, wo worldOptions) {
	w := newWorldWith(t, wo)
	j := w.jam()
	type seen struct{ decision, reason string }
	var got []seen
	w.signer.opts.Observe = func(d, r string, _ time.Duration) { got = append(got, seen{d, r}) }
	st := w.statement(w.custody, j.bad.Hash(), nil)
	_, _ = w.signer.Release(w.ctx, &pb.ReleaseRequest{Statement: st, Approvals: w.approveRelease(st, "alice")})
	if _, err := w.signer.Release(w.ctx, &pb.ReleaseRequest{Statement: st, Approvals: w.approveRelease(st, "alice", "bob")}); err != nil {
		t.Fatal(err)
	}
	want := []seen{{DecisionReleaseFailed, "APPROVALS_MISSING"}, {DecisionReleased, ""}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("observed %v, want %v", got, want)
	}
	var r *Refusal
	_, err := w.signer.Release(w.ctx, &pb.ReleaseRequest{Statement: st})
	if !errors.As(err, &r) {
		t.Fatalf("a refused release is not a *Refusal: %v", err)
	}
}
