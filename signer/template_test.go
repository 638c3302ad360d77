package signer

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// templateCases change one field of a block each: every field of a state
// block is in the table, with the refusal a template differing in it
// alone gets, and the field the refusal names.
var templateCases = []struct {
	field  string
	change func(b *nano.StateBlock)
	reason pb.RefusalReason
	code   codes.Code
}{
	{"template.account", func(b *nano.StateBlock) { b.Account[0] ^= 1 }, rTemplate, codes.InvalidArgument},
	{"template.previous", func(b *nano.StateBlock) { b.Previous[31] ^= 1 }, rHeadHash, codes.InvalidArgument},
	{"template.representative", func(b *nano.StateBlock) { b.Representative[5] ^= 1 }, rRepChanged, codes.InvalidArgument},
	{"template.balance", func(b *nano.StateBlock) { b.Balance, _ = b.Balance.Add(nano.AmountFromUint64(1)) }, rBalance, codes.InvalidArgument},
	{"template.link", func(b *nano.StateBlock) { b.Link[0] ^= 1 }, rLink, codes.InvalidArgument},
	{"template.signature", func(b *nano.StateBlock) { b.Signature[63] = 1 }, rMalformed, codes.InvalidArgument},
	{"template.work", func(b *nano.StateBlock) { b.Work = 1 }, rMalformed, codes.InvalidArgument},
}

// TestTemplateEveryField sends, over gRPC, a send whose template differs
// from the block the signer builds in one field only, for every field of
// the block (signature and work included: a template is unsigned and has
// no work): each is refused with the field named and nothing is signed;
// the exact template then signs.
func TestTemplateEveryField(t *testing.T) { forEachStore(t, testTemplateEveryField) }

func testTemplateEveryField(t *testing.T, wo worldOptions) {
	w := newWorldWith(t, wo)
	w.adopt("custody", 0, nil)
	src, srcPrev := w.Fund(w.custody, custodytest.XNO(200))
	open := w.mustSign(&pb.SignRequest{Intent: w.ReceiveIntent(w.custody, custodytest.XNO(200), src.Hash(), &w.Rep),
		Source: pbBlock(src), SourcePrevious: pbBlock(srcPrev)}, "open")
	want := nano.StateBlock{Account: w.custody, Previous: open.Hash(), Representative: w.Rep, Balance: custodytest.XNO(199), Link: nano.Hash(w.dest)}
	send := func(tmpl nano.StateBlock) *pb.SignRequest {
		in := w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
		return &pb.SignRequest{Intent: in, Head: pbBlock(open), Template: pbBlock(tmpl), Approvals: w.Approve(in, "service")}
	}
	for _, tc := range templateCases {
		t.Run(tc.field, func(t *testing.T) {
			tmpl := want
			tc.change(&tmpl)
			if tmpl == want {
				t.Fatal("the change changed nothing")
			}
			_, err := w.client.Sign(w.ctx, send(tmpl))
			ei := errorInfo(err)
			if status.Code(err) != tc.code || ei.GetReason() != signerapi.ReasonName(tc.reason) {
				t.Fatalf("Sign: %v; want %v %s", err, tc.code, signerapi.ReasonName(tc.reason))
			}
			if got := ei.GetMetadata()["field"]; got != tc.field {
				t.Errorf("the refusal names field %q, want %q (detail %q)", got, tc.field, ei.GetMetadata()["detail"])
			}
			if _, signed, err := w.state.signedOn(w.ctx, w.custody, open.Hash()); err != nil || signed {
				t.Fatalf("a block was signed on the head after the refusal (%v)", err)
			}
			_, last := w.auditTail()
			if last.GetDecision() != DecisionRefused || last.GetReason() != signerapi.ReasonName(tc.reason) {
				t.Errorf("the last audit record is %s %s", last.GetDecision(), last.GetReason())
			}
		})
	}
	// An all-zero signature is an empty one.
	b := w.mustSign(send(want), "send")
	if b.Previous != want.Previous || b.Balance != want.Balance || b.Link != want.Link {
		t.Fatalf("signed %+v, want the template %+v", b, want)
	}
}

// TestTemplateEveryFieldManual runs the same table through BuildFromHead,
// the manual workflow's verification (nanokms block sign --head --intent).
func TestTemplateEveryFieldManual(t *testing.T) {
	seed, _ := nano.ParseSeed(custodytest.CustodySeed)
	k := nano.DeriveKey(&seed, 5)
	acct := &custodytest.ExtAccount{Key: nano.NewSigningKey(&k)}
	acct.Pub = acct.Key.Public()
	funder, rep, dest := custodytest.NewExtAccount(1), custodytest.NewExtAccount(2).Pub, custodytest.NewExtAccount(3).Pub
	fOpen := funder.Add(nano.AmountFromUint64(1000), nano.Hash{9}, rep)
	fSend := funder.Add(nano.AmountFromUint64(600), nano.Hash(acct.Pub), rep)
	open := acct.Add(nano.AmountFromUint64(400), fSend.Hash(), rep)
	in, err := intent.Parse(&pb.Intent{RequestId: "m2", Kind: pb.IntentKind_INTENT_KIND_SEND, Account: acct.Pub[:],
		AmountRaw: "150", Destination: dest[:], ExpiresAtUnix: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := nano.StateBlock{Account: acct.Pub, Previous: open.Hash(), Representative: rep, Balance: nano.AmountFromUint64(250), Link: nano.Hash(dest)}
	for _, tc := range templateCases {
		t.Run(tc.field, func(t *testing.T) {
			tmpl := want
			tc.change(&tmpl)
			_, _, err := BuildFromHead(&in, &open, nil, nil, &tmpl, nil)
			var r *Refusal
			if !errors.As(err, &r) || r.Reason != tc.reason || r.Field != tc.field {
				t.Fatalf("BuildFromHead: %v; want %s naming %s", err, signerapi.ReasonName(tc.reason), tc.field)
			}
		})
	}
	// An open (no head): its previous must be zero.
	openIn, err := intent.Parse(&pb.Intent{RequestId: "m1", Kind: pb.IntentKind_INTENT_KIND_RECEIVE, Account: acct.Pub[:],
		AmountRaw: "400", SourceHash: func() []byte { h := fSend.Hash(); return h[:] }(), Representative: rep[:], ExpiresAtUnix: 1})
	if err != nil {
		t.Fatal(err)
	}
	openTmpl := nano.StateBlock{Account: acct.Pub, Previous: nano.Hash{1}, Representative: rep, Balance: nano.AmountFromUint64(400), Link: fSend.Hash()}
	var r *Refusal
	if _, _, err := BuildFromHead(&openIn, nil, &fSend, &fOpen, &openTmpl, nil); !errors.As(err, &r) || r.Field != "template.previous" {
		t.Fatalf("an open's template with a previous: %v; want a refusal naming template.previous", err)
	}
	openTmpl.Previous = nano.Hash{}
	if _, _, err := BuildFromHead(&openIn, nil, &fSend, &fOpen, &openTmpl, nil); err != nil {
		t.Fatalf("the exact open template: %v", err)
	}
	if _, _, err := BuildFromHead(&in, &open, nil, nil, &want, nil); err != nil {
		t.Fatalf("the exact template: %v", err)
	}
}
