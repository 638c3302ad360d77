package signer

import (
	"testing"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// TestEpochHead: an epoch block the network put on top of the recorded
// frontier is accepted as the head when a configured epoch signer signed
// it and it changes nothing else; any other epoch-looking head is refused.
func TestEpochHead(t *testing.T) { forEachStore(t, testEpochHead) }

func testEpochHead(t *testing.T, wo worldOptions) {
	w := newWorldWith(t, wo)
	w.adopt("custody", 0, nil)
	src, srcPrev := w.Fund(w.custody, custodytest.XNO(50))
	open := w.mustSign(&pb.SignRequest{Intent: w.ReceiveIntent(w.custody, custodytest.XNO(50), src.Hash(), &w.Rep),
		Source: pbBlock(src), SourcePrevious: pbBlock(srcPrev)}, "open")

	intruder := custodytest.NewExtAccount(120)
	refusals := []struct {
		name   string
		head   nano.StateBlock
		reason string
	}{
		{"signed by a key that is not an epoch signer", epochOn(open, intruder), "HEAD_SIGNATURE_INVALID"},
		{"signed by the account itself but not an epoch signer's", func() nano.StateBlock {
			b := epochOn(open, w.epoch)
			b.Signature[3] ^= 1
			return b
		}(), "HEAD_SIGNATURE_INVALID"},
		{"changes the balance", func() nano.StateBlock {
			b := epochOn(open, w.epoch)
			b.Balance = custodytest.XNO(60)
			h := b.Hash()
			b.Signature = w.epoch.Key.Sign(h[:])
			return b
		}(), "HEAD_NOT_FRONTIER"},
		{"changes the representative", func() nano.StateBlock {
			b := epochOn(open, w.epoch)
			b.Representative = w.rep2
			h := b.Hash()
			b.Signature = w.epoch.Key.Sign(h[:])
			return b
		}(), "HEAD_NOT_FRONTIER"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			in := w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
			_, err := w.client.Sign(w.ctx, &pb.SignRequest{Intent: in, Head: pbBlock(tt.head), Approvals: w.Approve(in, "service")})
			if got := reasonOf(err); got != tt.reason {
				t.Fatalf("reason %q (%v), want %s", got, err, tt.reason)
			}
		})
	}

	epoch := epochOn(open, w.epoch)
	in := w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
	send := w.mustSign(&pb.SignRequest{Intent: in, Head: pbBlock(epoch), Approvals: w.Approve(in, "service")}, "send")
	if send.Previous != epoch.Hash() || send.Balance != custodytest.XNO(49) {
		t.Fatalf("send on the epoch head built wrong: previous %s balance %s", send.Previous, send.Balance)
	}
	st, err := w.client.GetAccount(w.ctx, &pb.GetAccountRequest{Account: w.custody[:]})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetHeight() != 3 {
		t.Errorf("height %d after open, epoch and send; want 3", st.GetHeight())
	}

	// A receive whose source's previous block is an epoch block.
	fEpoch := epochOn(w.Funder.Blocks[len(w.Funder.Blocks)-1], w.epoch)
	w.Funder.Blocks = append(w.Funder.Blocks, fEpoch)
	src2, src2Prev := w.Fund(w.custody, custodytest.XNO(3))
	if src2Prev.Hash() != fEpoch.Hash() {
		t.Fatal("test set-up: the source's previous is not the epoch block")
	}
	w.mustSign(&pb.SignRequest{Intent: w.ReceiveIntent(w.custody, custodytest.XNO(3), src2.Hash(), nil), Head: pbBlock(send),
		Source: pbBlock(src2), SourcePrevious: pbBlock(src2Prev)}, "receive")
}

func TestAdoptRefusals(t *testing.T) { forEachStore(t, testAdoptRefusals) }

func testAdoptRefusals(t *testing.T, wo worldOptions) {
	w := newWorldWith(t, wo)
	seed, _ := nano.ParseSeed(custodytest.CustodySeed)
	k1 := nano.DeriveKey(&seed, 1)
	acct1 := &custodytest.ExtAccount{Key: nano.NewSigningKey(&k1), Pub: w.custody1}
	src, _ := w.Fund(w.custody1, custodytest.XNO(3))
	head := acct1.Add(custodytest.XNO(3), src.Hash(), w.Rep)

	forged := head
	forged.Signature[0] ^= 1
	tests := []struct {
		name   string
		req    *pb.AdoptAccountRequest
		reason string
	}{
		{"no wallet", &pb.AdoptAccountRequest{Index: 1}, "MALFORMED"},
		{"head of another account", &pb.AdoptAccountRequest{Wallet: "custody", Index: 0, Head: pbBlock(head)}, "MALFORMED"},
		{"forged head", &pb.AdoptAccountRequest{Wallet: "custody", Index: 1, Head: pbBlock(forged)}, "HEAD_SIGNATURE_INVALID"},
		{"malformed head", &pb.AdoptAccountRequest{Wallet: "custody", Index: 1, Head: &pb.Block{Account: w.custody1[:]}}, "MALFORMED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := w.client.AdoptAccount(w.ctx, tt.req); reasonOf(err) != tt.reason {
				t.Fatalf("err %v, want %s", err, tt.reason)
			}
		})
	}
	w.adopt("custody", 1, &head)
	if _, err := w.client.AdoptAccount(w.ctx, &pb.AdoptAccountRequest{Wallet: "custody", Index: 1}); reasonOf(err) != "ALREADY_TRACKED" {
		t.Fatalf("second adoption: %v", err)
	}
	if _, err := w.client.AdoptAccount(w.ctx, &pb.AdoptAccountRequest{Wallet: "nope", Index: 1}); err == nil {
		t.Fatal("adopting from an unknown wallet succeeded")
	}
	list, err := w.client.ListAccounts(w.ctx, &pb.ListAccountsRequest{})
	if err != nil || len(list.GetAccounts()) != 1 || list.GetAccounts()[0].GetBalanceRaw() != custodytest.XNO(3).String() {
		t.Fatalf("ListAccounts = %v, %v", list, err)
	}
}
