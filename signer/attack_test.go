package signer

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// TestAttackTable drives the signer over gRPC through an honest history
// and, at its frontier, through one refusal per verification rule: each
// built from what a malicious hot side can do (alter the head, claim an
// honest hash for altered contents, replay an old head, swap the
// destination, inflate a receive, forge approvals…), each refused with its
// own reason and nothing signed.
func TestAttackTable(t *testing.T) { forEachStore(t, testAttackTable) }

func testAttackTable(t *testing.T, wo worldOptions) {
	w := newWorldWith(t, wo)
	ctx := w.ctx

	// --- honest history: open with 200 XNO, send 1 XNO.
	w.adopt("custody", 0, nil)
	src1, src1Prev := w.Fund(w.custody, custodytest.XNO(200))
	openIn := w.ReceiveIntent(w.custody, custodytest.XNO(200), src1.Hash(), &w.Rep)
	open := w.mustSign(&pb.SignRequest{Intent: openIn, Source: pbBlock(src1), SourcePrevious: pbBlock(src1Prev)}, "open")
	if open.Balance != custodytest.XNO(200) || !open.Previous.IsZero() || open.Link != src1.Hash() || open.Representative != w.Rep {
		t.Fatalf("open block built wrong: %+v", open)
	}

	s1In := w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
	s1Template := nano.StateBlock{Account: w.custody, Previous: open.Hash(), Representative: w.Rep, Balance: custodytest.XNO(199), Link: nano.Hash(w.dest)}
	s1Req := &pb.SignRequest{Intent: s1In, Head: pbBlock(open), Template: pbBlock(s1Template), Approvals: w.Approve(s1In, "service")}
	s1 := w.mustSign(s1Req, "send")
	if s1.Previous != open.Hash() || s1.Balance != custodytest.XNO(199) || s1.Link != nano.Hash(w.dest) {
		t.Fatalf("send block built wrong: %+v", s1)
	}

	// An account adopted with a history signed outside nanokms (the test
	// holds the seed): its older block is not the frontier.
	seed, _ := nano.ParseSeed(custodytest.CustodySeed)
	k1 := nano.DeriveKey(&seed, 1)
	outside := &custodytest.ExtAccount{Key: nano.NewSigningKey(&k1), Pub: w.custody1}
	srcX, _ := w.Fund(w.custody1, custodytest.XNO(3))
	h1 := outside.Add(custodytest.XNO(3), srcX.Hash(), w.Rep)
	h2 := outside.Add(custodytest.XNO(2), nano.Hash(w.dest), w.Rep)
	w.adopt("custody", 1, &h2)

	// Blocks the attacks use.
	src2, src2Prev := w.Fund(w.custody, custodytest.XNO(2))
	toOther, toOtherPrev := w.Fund(w.dest, custodytest.XNO(1))
	altered := s1
	altered.Balance = custodytest.XNO(500) // the hot side claims a richer head
	alteredLow := s1
	alteredLow.Balance = custodytest.XNO(150)
	badSig := s1
	badSig.Signature[10] ^= 0x40
	forgedSrc := src2
	forgedSrc.Signature[0] ^= 1

	send := func(amount nano.Amount, dest nano.PublicKey, approvers ...string) *pb.SignRequest {
		in := w.SendIntent(w.custody, amount, dest)
		return &pb.SignRequest{Intent: in, Head: pbBlock(s1), Approvals: w.Approve(in, approvers...)}
	}
	receive := func(amount nano.Amount, src, prev nano.StateBlock) *pb.SignRequest {
		return &pb.SignRequest{Intent: w.ReceiveIntent(w.custody, amount, src.Hash(), nil), Head: pbBlock(s1),
			Source: pbBlock(src), SourcePrevious: pbBlock(prev)}
	}
	withTemplate := func(r *pb.SignRequest, f func(*nano.StateBlock)) *pb.SignRequest {
		head, _ := r.Head.ToNano("head")
		tb := nano.StateBlock{Account: w.custody, Previous: head.Hash(), Representative: head.Representative, Balance: head.Balance}
		switch r.Intent.Kind {
		case pb.IntentKind_INTENT_KIND_SEND:
			amt, _ := nano.ParseAmount(r.Intent.AmountRaw)
			tb.Balance, _ = head.Balance.Sub(amt)
			tb.Link = nano.Hash(r.Intent.Destination)
		case pb.IntentKind_INTENT_KIND_RECEIVE:
			amt, _ := nano.ParseAmount(r.Intent.AmountRaw)
			tb.Balance, _ = head.Balance.Add(amt)
			tb.Link = nano.Hash(r.Intent.SourceHash)
		}
		f(&tb)
		r.Template = pbBlock(tb)
		return r
	}
	reapprove := func(r *pb.SignRequest, names ...string) *pb.SignRequest {
		r.Approvals = w.Approve(r.Intent, names...)
		return r
	}

	tests := []struct {
		name   string
		req    func() *pb.SignRequest
		reason string
		code   codes.Code
	}{
		{"head balance raised", func() *pb.SignRequest {
			r := send(custodytest.XNO(1), w.dest, "service")
			r.Head = pbBlock(altered)
			return r
		}, "HEAD_HASH_MISMATCH", codes.InvalidArgument},
		{"head balance lowered", func() *pb.SignRequest {
			r := send(custodytest.XNO(1), w.dest, "service")
			r.Head = pbBlock(alteredLow)
			return r
		}, "HEAD_HASH_MISMATCH", codes.InvalidArgument},
		{"honest hash claimed for altered contents", func() *pb.SignRequest {
			r := withTemplate(send(custodytest.XNO(1), w.dest, "service"), func(b *nano.StateBlock) { b.Balance = custodytest.XNO(499) })
			r.Head = pbBlock(altered) // template.previous is s1's honest hash
			return r
		}, "HEAD_HASH_MISMATCH", codes.InvalidArgument},
		{"head signature invalid", func() *pb.SignRequest {
			r := send(custodytest.XNO(1), w.dest, "service")
			r.Head = pbBlock(badSig)
			return r
		}, "HEAD_SIGNATURE_INVALID", codes.InvalidArgument},
		{"old head replayed", func() *pb.SignRequest {
			in := w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
			return &pb.SignRequest{Intent: in, Head: pbBlock(open), Approvals: w.Approve(in, "service")}
		}, "PENDING_BLOCK", codes.FailedPrecondition},
		{"head not the recorded frontier", func() *pb.SignRequest {
			in := w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
			in.Account = w.custody1[:]
			return &pb.SignRequest{Intent: in, Head: pbBlock(h1), Approvals: w.Approve(in, "service")}
		}, "HEAD_NOT_FRONTIER", codes.FailedPrecondition},
		{"head of another account", func() *pb.SignRequest {
			r := send(custodytest.XNO(1), w.dest, "service")
			r.Head = pbBlock(h2)
			return r
		}, "MALFORMED", codes.InvalidArgument},
		{"head missing", func() *pb.SignRequest {
			r := send(custodytest.XNO(1), w.dest, "service")
			r.Head = nil
			return r
		}, "MALFORMED", codes.InvalidArgument},
		{"head field of the wrong size", func() *pb.SignRequest {
			r := send(custodytest.XNO(1), w.dest, "service")
			r.Head.Balance = r.Head.Balance[:15]
			return r
		}, "MALFORMED", codes.InvalidArgument},
		{"send balance not head minus amount", func() *pb.SignRequest {
			return withTemplate(send(custodytest.XNO(1), w.dest, "service"), func(b *nano.StateBlock) { b.Balance = custodytest.XNO(190) })
		}, "BALANCE_MISMATCH", codes.InvalidArgument},
		{"destination swapped in the template", func() *pb.SignRequest {
			return withTemplate(send(custodytest.XNO(1), w.dest, "service"), func(b *nano.StateBlock) { b.Link = nano.Hash(w.dest2) })
		}, "LINK_MISMATCH", codes.InvalidArgument},
		{"destination swapped after approval", func() *pb.SignRequest {
			r := send(custodytest.XNO(1), w.dest, "service")
			r.Intent.Destination = w.dest2[:]
			return r
		}, "APPROVAL_INVALID", codes.PermissionDenied},
		{"representative changed on a send", func() *pb.SignRequest {
			return withTemplate(send(custodytest.XNO(1), w.dest, "service"), func(b *nano.StateBlock) { b.Representative = w.rep2 })
		}, "REPRESENTATIVE_CHANGED", codes.InvalidArgument},
		{"template for another account", func() *pb.SignRequest {
			return withTemplate(send(custodytest.XNO(1), w.dest, "service"), func(b *nano.StateBlock) { b.Account = w.custody1 })
		}, "TEMPLATE_MISMATCH", codes.InvalidArgument},
		{"amount zero", func() *pb.SignRequest {
			r := send(custodytest.XNO(1), w.dest)
			r.Intent.AmountRaw = "0"
			return r
		}, "AMOUNT_INVALID", codes.InvalidArgument},
		{"amount 2^128", func() *pb.SignRequest {
			r := send(custodytest.XNO(1), w.dest)
			r.Intent.AmountRaw = "340282366920938463463374607431768211456"
			return r
		}, "AMOUNT_INVALID", codes.InvalidArgument},
		{"amount above the balance", func() *pb.SignRequest { return send(custodytest.XNO(200), w.dest, "alice", "bob") }, "AMOUNT_INVALID", codes.InvalidArgument},
		{"receive inflated", func() *pb.SignRequest { return receive(custodytest.XNO(3), src2, src2Prev) }, "SOURCE_AMOUNT_MISMATCH", codes.InvalidArgument},
		{"receive inflated in the template", func() *pb.SignRequest {
			return withTemplate(receive(custodytest.XNO(2), src2, src2Prev), func(b *nano.StateBlock) { b.Balance = custodytest.XNO(202) })
		}, "BALANCE_MISMATCH", codes.InvalidArgument},
		{"receive link not the source", func() *pb.SignRequest {
			return withTemplate(receive(custodytest.XNO(2), src2, src2Prev), func(b *nano.StateBlock) { b.Link = nano.Hash{1} })
		}, "LINK_MISMATCH", codes.InvalidArgument},
		{"receive of a send to another account", func() *pb.SignRequest { return receive(custodytest.XNO(1), toOther, toOtherPrev) }, "SOURCE_INVALID", codes.InvalidArgument},
		{"receive source hash not the intent's", func() *pb.SignRequest {
			r := receive(custodytest.XNO(2), src2, src2Prev)
			r.Intent.SourceHash = bytes.Repeat([]byte{7}, 32)
			return r
		}, "SOURCE_INVALID", codes.InvalidArgument},
		{"receive source signature forged", func() *pb.SignRequest { return receive(custodytest.XNO(2), forgedSrc, src2Prev) }, "SOURCE_INVALID", codes.InvalidArgument},
		{"receive source previous wrong", func() *pb.SignRequest { return receive(custodytest.XNO(2), src2, src1Prev) }, "SOURCE_INVALID", codes.InvalidArgument},
		{"receive source previous missing", func() *pb.SignRequest {
			r := receive(custodytest.XNO(2), src2, src2Prev)
			r.SourcePrevious = nil
			return r
		}, "SOURCE_INVALID", codes.InvalidArgument},
		{"receive twice", func() *pb.SignRequest { return receive(custodytest.XNO(200), src1, src1Prev) }, "SOURCE_INVALID", codes.InvalidArgument},
		{"receive changes the representative", func() *pb.SignRequest {
			r := receive(custodytest.XNO(2), src2, src2Prev)
			r.Intent.Representative = w.rep2[:]
			return r
		}, "REPRESENTATIVE_CHANGED", codes.InvalidArgument},
		{"expired", func() *pb.SignRequest {
			r := send(custodytest.XNO(1), w.dest)
			r.Intent.ExpiresAtUnix = time.Unix(0, w.now.Load()).Add(-time.Second).Unix()
			return reapprove(r, "service")
		}, "EXPIRED", codes.FailedPrecondition},
		{"expiry too far ahead", func() *pb.SignRequest {
			r := send(custodytest.XNO(1), w.dest)
			r.Intent.ExpiresAtUnix = time.Unix(0, w.now.Load()).Add(48 * time.Hour).Unix()
			return reapprove(r, "service")
		}, "EXPIRED", codes.FailedPrecondition},
		{"request id reused for another intent", func() *pb.SignRequest {
			r := send(custodytest.XNO(2), w.dest)
			r.Intent.RequestId = s1In.RequestId
			return reapprove(r, "service")
		}, "REQUEST_ID_REUSED", codes.AlreadyExists},
		{"approvals missing", func() *pb.SignRequest { return send(custodytest.XNO(1), w.dest) }, "APPROVALS_MISSING", codes.PermissionDenied},
		{"approvals below the tier's quorum", func() *pb.SignRequest { return send(custodytest.XNO(15), w.dest, "service", "alice") }, "APPROVALS_MISSING", codes.PermissionDenied},
		{"approver unknown", func() *pb.SignRequest { return send(custodytest.XNO(1), w.dest, "mallory") }, "APPROVER_UNKNOWN", codes.PermissionDenied},
		{"approver duplicated", func() *pb.SignRequest { return send(custodytest.XNO(15), w.dest, "alice", "alice") }, "APPROVAL_DUPLICATED", codes.PermissionDenied},
		{"approval over another intent", func() *pb.SignRequest {
			r := send(custodytest.XNO(1), w.dest)
			other := w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
			r.Approvals = w.Approve(other, "service")
			return r
		}, "APPROVAL_INVALID", codes.PermissionDenied},
		{"unknown account", func() *pb.SignRequest {
			r := send(custodytest.XNO(1), w.dest)
			r.Intent.Account = w.dest[:]
			return reapprove(r, "service")
		}, "UNKNOWN_ACCOUNT", codes.NotFound},
		{"above the per-send limit", func() *pb.SignRequest { return send(custodytest.XNO(101), w.dest, "alice", "bob") }, "LIMIT_EXCEEDED", codes.ResourceExhausted},
		{"destination not on the allowlist", func() *pb.SignRequest {
			return send(custodytest.XNO(1), custodytest.NewExtAccount(90).Pub, "service")
		}, "DESTINATION_NOT_ALLOWED", codes.PermissionDenied},
		{"representative not on the allowlist", func() *pb.SignRequest {
			in := w.ChangeIntent(w.custody, custodytest.NewExtAccount(91).Pub)
			return &pb.SignRequest{Intent: in, Head: pbBlock(s1), Approvals: w.Approve(in, "service")}
		}, "REPRESENTATIVE_NOT_ALLOWED", codes.PermissionDenied},
		{"malformed intent", func() *pb.SignRequest {
			r := send(custodytest.XNO(1), w.dest, "service")
			r.Intent.Account = r.Intent.Account[:31]
			return r
		}, "MALFORMED", codes.InvalidArgument},
		{"request id beginning with a dot", func() *pb.SignRequest {
			// Approved as it stands: the id is the only fault. A file
			// bridge could never carry it (its reader takes dot-files
			// for its own), so the signer refuses it too.
			r := send(custodytest.XNO(1), w.dest)
			id := r.Intent.RequestId
			valid := "x" + id[1:]
			r.Intent.RequestId = valid
			msg, err := intent.Canonical(r.Intent)
			if err != nil {
				t.Fatal(err)
			}
			// The canonical bytes the dot id would have: the id sits
			// after the domain, the version, the kind and its length.
			at := len(intent.Domain) + 3
			msg[at] = '.'
			r.Intent.RequestId = "." + id[1:]
			key := w.Approvers["service"]
			r.Approvals = []*pb.Approval{{PublicKey: key.Public().(ed25519.PublicKey), Signature: ed25519.Sign(key, msg)}}
			return r
		}, "MALFORMED", codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req()
			_, err := w.client.Sign(ctx, req)
			if err == nil {
				t.Fatalf("signed; want %s", tt.reason)
			}
			if got := reasonOf(err); got != tt.reason {
				t.Fatalf("reason %q (%v), want %s", got, err, tt.reason)
			}
			if got := status.Code(err); got != tt.code {
				t.Errorf("code %v, want %v", got, tt.code)
			}
			if strings.HasPrefix(req.GetIntent().GetRequestId(), ".") && !strings.Contains(status.Convert(err).Message(), "request_id") {
				t.Errorf("the refusal %q does not name request_id", status.Convert(err).Message())
			}
			if tt.reason == "PENDING_BLOCK" {
				r, ok := signerapi.RefusalFromStatus(status.Convert(err))
				if !ok || r.Pending == nil || r.Pending.Hash() != s1.Hash() || r.Pending.Signature != s1.Signature {
					t.Errorf("the pending block in the details is not the send signed on that head")
				}
			}
		})
	}

	// Nothing above moved the frontier.
	st, err := w.client.GetAccount(ctx, &pb.GetAccountRequest{Account: w.custody[:]})
	if err != nil {
		t.Fatal(err)
	}
	if h := s1.Hash(); !bytes.Equal(st.GetFrontier(), h[:]) || st.GetBalanceRaw() != custodytest.XNO(199).String() {
		t.Fatalf("after the refusals the frontier is %X balance %s", st.GetFrontier(), st.GetBalanceRaw())
	}

	// --- honest history continues on s1.
	// A repeat of an answered request gets the identical response.
	again, err := w.client.Sign(ctx, s1Req)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := again.GetBlock().ToNano("block"); b != s1 {
		t.Fatalf("the repeat of %s returned another block", s1In.RequestId)
	}

	r2 := w.ReceiveIntent(w.custody, custodytest.XNO(2), src2.Hash(), nil)
	recv := w.mustSign(&pb.SignRequest{Intent: r2, Head: pbBlock(s1), Source: pbBlock(src2), SourcePrevious: pbBlock(src2Prev)}, "receive")
	if recv.Balance != custodytest.XNO(201) || recv.Link != src2.Hash() || recv.Representative != w.Rep {
		t.Fatalf("receive built wrong: %+v", recv)
	}
	ch := w.ChangeIntent(w.custody, w.rep2)
	change := w.mustSign(&pb.SignRequest{Intent: ch, Head: pbBlock(recv), Approvals: w.Approve(ch, "service")}, "change")
	if change.Balance != custodytest.XNO(201) || !change.Link.IsZero() || change.Representative != w.rep2 {
		t.Fatalf("change built wrong: %+v", change)
	}
	// Two officers approve 60 XNO; then the 24-hour velocity (150 XNO)
	// refuses 95 more (1 + 60 + 95 > 150), and allows it a day later.
	big := w.SendIntent(w.custody, custodytest.XNO(60), w.dest2)
	s2 := w.mustSign(&pb.SignRequest{Intent: big, Head: pbBlock(change), Approvals: w.Approve(big, "alice", "carol")}, "send")
	over := w.SendIntent(w.custody, custodytest.XNO(95), w.dest)
	overReq := &pb.SignRequest{Intent: over, Head: pbBlock(s2), Approvals: w.Approve(over, "bob", "carol")}
	if _, err := w.client.Sign(ctx, overReq); reasonOf(err) != "VELOCITY_EXCEEDED" || status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("over the velocity limit: %v", err)
	}
	w.now.Add(int64(25 * time.Hour))
	over2 := w.SendIntent(w.custody, custodytest.XNO(95), w.dest)
	w.mustSign(&pb.SignRequest{Intent: over2, Head: pbBlock(s2), Approvals: w.Approve(over2, "bob", "carol")}, "send")

	// A receive into a wallet whose receives are not automatic needs approval.
	w.adopt("manual", 0, nil)
	manual, err := w.tok.PublicKey(ctx, "manual", 0)
	if err != nil {
		t.Fatal(err)
	}
	src3, src3Prev := w.Fund(manual, custodytest.XNO(5))
	mIn := w.ReceiveIntent(manual, custodytest.XNO(5), src3.Hash(), &w.Rep)
	mReq := &pb.SignRequest{Intent: mIn, Source: pbBlock(src3), SourcePrevious: pbBlock(src3Prev)}
	if _, err := w.client.Sign(ctx, mReq); reasonOf(err) != "APPROVALS_MISSING" {
		t.Fatalf("manual receive without approval: %v", err)
	}
	mReq.Intent = proto.Clone(mIn).(*pb.Intent)
	mReq.Intent.RequestId = w.NextID()
	mReq.Approvals = w.Approve(mReq.Intent, "service")
	w.mustSign(mReq, "open")

	// The audit chain holds every decision and verifies.
	n, err := w.state.verifyAudit(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 3 adoptions, 7 signatures, every refusal of the table and 2 more.
	if want := uint64(len(tests)) + 3 + 7 + 2; n != want {
		t.Errorf("audit chain has %d records, want %d", n, want)
	}
}
