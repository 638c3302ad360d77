package signer

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// gatedKeys holds every signature until the test lets it through.
type gatedKeys struct {
	KeyStore
	entered chan nano.PublicKey // an account whose signature is being made
	proceed chan struct{}       // closed to let the signatures through
}

func (g *gatedKeys) SignFor(ctx context.Context, wallet string, index uint32, account nano.PublicKey, hash nano.Hash) (nano.Signature, error) {
	g.entered <- account
	<-g.proceed
	return g.KeyStore.SignFor(ctx, wallet, index, account, hash)
}

// TestMaxDeciding: with MaxDeciding 2, a third decision waits for a turn
// while two are being signed, a waiting decision gives up when its
// context ends (recording nothing), and the waiting one is decided once a
// turn ends.
func TestMaxDeciding(t *testing.T) {
	w := newWorld(t)
	keys := &gatedKeys{KeyStore: w.tok, entered: make(chan nano.PublicKey, 4), proceed: make(chan struct{})}
	s := New(w.store, keys, w.signer.policy, Options{Now: w.signer.opts.Now, MaxDeciding: 2})
	waiting := make(chan struct{}, 4)
	s.onWait = func() { waiting <- struct{}{} }

	// Four accounts of the custody wallet, each opened by a receive
	// (automatic in the custody group: no approval needed).
	reqs := make([]*pb.SignRequest, 4)
	for i := range reqs {
		acct, err := w.tok.PublicKey(w.ctx, "custody", uint32(10+i))
		if err != nil {
			t.Fatal(err)
		}
		w.adopt("custody", uint32(10+i), nil)
		src, prev := w.Fund(acct, custodytest.XNO(1))
		reqs[i] = &pb.SignRequest{Intent: w.ReceiveIntent(acct, custodytest.XNO(1), src.Hash(), &w.Rep), Source: pbBlock(src), SourcePrevious: pbBlock(prev)}
	}
	type result struct {
		resp *pb.SignResponse
		err  error
	}
	sign := func(ctx context.Context, req *pb.SignRequest) chan result {
		out := make(chan result, 1)
		go func() {
			resp, err := s.Sign(ctx, req)
			out <- result{resp, err}
		}()
		return out
	}

	var release sync.Once
	letThrough := func() { release.Do(func() { close(keys.proceed) }) }
	t.Cleanup(letThrough)
	waitForTurn := func(name string) {
		t.Helper()
		select {
		case <-waiting:
		case acct := <-keys.entered:
			t.Fatalf("request %s did not wait for a turn: a third signature (%s) started while two were being made", name, acct.Address())
		}
	}

	a, b := sign(w.ctx, reqs[0]), sign(w.ctx, reqs[1])
	<-keys.entered
	<-keys.entered
	c := sign(w.ctx, reqs[2])
	waitForTurn("c") // both turns are taken
	dctx, cancel := context.WithCancel(w.ctx)
	d := sign(dctx, reqs[3])
	waitForTurn("d")
	cancel()
	if r := <-d; !errors.Is(r.err, context.Canceled) || r.resp != nil {
		t.Fatalf("a decision waiting for a turn, its context cancelled: %v, %v; want context.Canceled", r.resp, r.err)
	}
	if _, ok, err := w.store.Request(reqs[3].GetIntent().GetRequestId()); err != nil || ok {
		t.Fatalf("the cancelled request was recorded (%v, %v)", ok, err)
	}
	select {
	case acct := <-keys.entered:
		t.Fatalf("a third signature (%s) started while two were being made", acct.Address())
	default:
	}

	letThrough()
	for i, ch := range []chan result{a, b, c} {
		r := <-ch
		if r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
		blk, err := r.resp.GetBlock().ToNano("block")
		if err != nil {
			t.Fatal(err)
		}
		h := blk.Hash()
		if !nano.Verify(blk.Account, h[:], blk.Signature) || r.resp.GetSubtype() != "open" {
			t.Fatalf("request %d: %s block %s does not verify", i, r.resp.GetSubtype(), h)
		}
	}
	if got := len(keys.entered); got != 1 {
		t.Fatalf("%d more signatures after the two held ones, want 1 (the waiting request)", got)
	}
}
