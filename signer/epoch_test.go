package signer

import (
	"testing"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// TestEpochHead: an epoch block the network put on top of the recorded
// frontier is accepted as the head when a configured epoch signer signed
// it and it changes nothing else; any other epoch-looking head is refused.
func TestEpochHead(t *testing.T) { forEachStore(t, testEpochHead) }

func testEpochHead(t *testing.T, wo worldOptions) {
	w := newWorldWith(t, wo)
	w.adopt("custody", 0, nil)
	src, srcPrev := w.fund(w.custody, xno(50))
	open := w.mustSign(&pb.SignRequest{Intent: w.receiveIntent(w.custody, xno(50), src.Hash(), &w.rep),
		Source: pbBlock(src), SourcePrevious: pbBlock(srcPrev)}, "open")

	intruder := newExt(t, 120)
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
			b.Balance = xno(60)
			h := b.Hash()
			b.Signature = w.epoch.key.Sign(h[:])
			return b
		}(), "HEAD_NOT_FRONTIER"},
		{"changes the representative", func() nano.StateBlock {
			b := epochOn(open, w.epoch)
			b.Representative = w.rep2
			h := b.Hash()
			b.Signature = w.epoch.key.Sign(h[:])
			return b
		}(), "HEAD_NOT_FRONTIER"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			in := w.sendIntent(xno(1), w.dest)
			_, err := w.client.Sign(w.ctx, &pb.SignRequest{Intent: in, Head: pbBlock(tt.head), Approvals: w.approve(in, "service")})
			if got := reasonOf(err); got != tt.reason {
				t.Fatalf("reason %q (%v), want %s", got, err, tt.reason)
			}
		})
	}

	epoch := epochOn(open, w.epoch)
	in := w.sendIntent(xno(1), w.dest)
	send := w.mustSign(&pb.SignRequest{Intent: in, Head: pbBlock(epoch), Approvals: w.approve(in, "service")}, "send")
	if send.Previous != epoch.Hash() || send.Balance != xno(49) {
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
	fEpoch := epochOn(w.funder.blocks[len(w.funder.blocks)-1], w.epoch)
	w.funder.blocks = append(w.funder.blocks, fEpoch)
	src2, src2Prev := w.fund(w.custody, xno(3))
	if src2Prev.Hash() != fEpoch.Hash() {
		t.Fatal("test set-up: the source's previous is not the epoch block")
	}
	w.mustSign(&pb.SignRequest{Intent: w.receiveIntent(w.custody, xno(3), src2.Hash(), nil), Head: pbBlock(send),
		Source: pbBlock(src2), SourcePrevious: pbBlock(src2Prev)}, "receive")
}

func TestAdoptRefusals(t *testing.T) { forEachStore(t, testAdoptRefusals) }

func testAdoptRefusals(t *testing.T, wo worldOptions) {
	w := newWorldWith(t, wo)
	seed, _ := nano.ParseSeed(custodySeedHex)
	k1 := nano.DeriveKey(&seed, 1)
	acct1 := &extAccount{key: nano.NewSigningKey(&k1), pub: w.custody1}
	src, _ := w.fund(w.custody1, xno(3))
	head := acct1.add(xno(3), src.Hash(), w.rep)

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
	if err != nil || len(list.GetAccounts()) != 1 || list.GetAccounts()[0].GetBalanceRaw() != xno(3).String() {
		t.Fatalf("ListAccounts = %v, %v", list, err)
	}
}
