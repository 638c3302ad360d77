package signer

import (
	"errors"
	"testing"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// TestBuildFromHead runs the manual workflow's verification: no state,
// the same rules.
func TestBuildFromHead(t *testing.T) {
	seed, _ := nano.ParseSeed(custodytest.CustodySeed)
	k := nano.DeriveKey(&seed, 5)
	acct := &custodytest.ExtAccount{Key: nano.NewSigningKey(&k)}
	acct.Pub = acct.Key.Public()
	funder, rep := custodytest.NewExtAccount(1), custodytest.NewExtAccount(2).Pub
	fOpen := funder.Add(nano.AmountFromUint64(1000), nano.Hash{9}, rep)
	fSend := funder.Add(nano.AmountFromUint64(600), nano.Hash(acct.Pub), rep)

	parse := func(in *pb.Intent) *intent.Parsed {
		t.Helper()
		p, err := intent.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		return &p
	}
	openIn := parse(&pb.Intent{RequestId: "m1", Kind: pb.IntentKind_INTENT_KIND_RECEIVE, Account: acct.Pub[:],
		AmountRaw: "400", SourceHash: func() []byte { h := fSend.Hash(); return h[:] }(), Representative: rep[:], ExpiresAtUnix: 1})
	open, st, err := BuildFromHead(openIn, nil, &fSend, &fOpen, nil, nil)
	if err != nil || st != nano.SubtypeOpen || open.Balance != nano.AmountFromUint64(400) || open.Link != fSend.Hash() {
		t.Fatalf("open: %+v %v %v", open, st, err)
	}
	h := open.Hash()
	open.Signature = acct.Key.Sign(h[:])

	sendIn := parse(&pb.Intent{RequestId: "m2", Kind: pb.IntentKind_INTENT_KIND_SEND, Account: acct.Pub[:],
		AmountRaw: "150", Destination: rep[:], ExpiresAtUnix: 1})
	send, st, err := BuildFromHead(sendIn, &open, nil, nil, nil, nil)
	if err != nil || st != nano.SubtypeSend || send.Balance != nano.AmountFromUint64(250) || send.Previous != h {
		t.Fatalf("send: %+v %v %v", send, st, err)
	}
	template := send
	template.Balance = nano.AmountFromUint64(251)
	forged := open
	forged.Balance = nano.AmountFromUint64(4000)
	inflated := parse(&pb.Intent{RequestId: "m3", Kind: pb.IntentKind_INTENT_KIND_RECEIVE, Account: acct.Pub[:],
		AmountRaw: "401", SourceHash: func() []byte { h := fSend.Hash(); return h[:] }(), Representative: rep[:], ExpiresAtUnix: 1})
	for name, tc := range map[string]struct {
		err    error
		reason pb.RefusalReason
	}{
		"template balance": {func() error { _, _, err := BuildFromHead(sendIn, &open, nil, nil, &template, nil); return err }(), rBalance},
		"altered head":     {func() error { _, _, err := BuildFromHead(sendIn, &forged, nil, nil, nil, nil); return err }(), rHeadSig},
		"inflated receive": {func() error { _, _, err := BuildFromHead(inflated, nil, &fSend, &fOpen, nil, nil); return err }(), rSourceAmount},
		"over the balance": {func() error {
			in := parse(&pb.Intent{RequestId: "m4", Kind: pb.IntentKind_INTENT_KIND_SEND, Account: acct.Pub[:], AmountRaw: "401", Destination: rep[:], ExpiresAtUnix: 1})
			_, _, err := BuildFromHead(in, &open, nil, nil, nil, nil)
			return err
		}(), rAmount},
	} {
		var r *Refusal
		if !errors.As(tc.err, &r) || r.Reason != tc.reason {
			t.Errorf("%s: %v, want %s", name, tc.err, signerapi.ReasonName(tc.reason))
		}
	}
}
