package node

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// accountInfoBody prints an account_info answer for an account whose
// frontier is b.
func accountInfoBody(b nano.StateBlock) []byte {
	return []byte(`{
    "frontier": "` + b.Hash().String() + `",
    "open_block": "` + b.Hash().String() + `",
    "representative_block": "` + b.Hash().String() + `",
    "balance": "` + b.Balance.String() + `",
    "modified_timestamp": "1524812177",
    "block_count": "2",
    "representative": "` + b.Representative.Address() + `"
}
`)
}

var errPermanent = errors.New("permanent failure")

func newLedger(t *testing.T, n *fakeNode, opts LedgerOptions) *Ledger {
	t.Helper()
	c, _ := newClients(t, n)
	opts.Client = c
	if opts.Thresholds == (WorkThresholds{}) {
		opts.Thresholds = WorkThresholds{Send: low, Receive: low}
	}
	if opts.Work == nil {
		opts.Work = CPUWork{Options: nano.WorkOptions{Workers: 1}}
	}
	opts.Permanent = errPermanent
	l, err := NewLedger(opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLedgerHead(t *testing.T) {
	n := newFakeNode(t)
	l := newLedger(t, n, LedgerOptions{})
	ctx := testCtx(t)
	head, err := l.Head(ctx, MustAccount(t, "nano_3qb1qckpady6njewfotrdrcgakrgbfh7ytqfrd9r8txsx7d91b9pu6z1ixrg"))
	if err != nil {
		t.Fatal(err)
	}
	if head.Hash().String() != hashBlockInfo {
		t.Errorf("head %s", head.Hash())
	}
	if got := len(n.requestsFor("account_info")); got != 2 {
		t.Errorf("%d account_info reads", got)
	}
	// An unopened account has no head.
	head, err = l.Head(ctx, MustAccount(t, acct1))
	if err != nil || head != nil {
		t.Errorf("unopened: %v %v", head, err)
	}
}

func TestLedgerHeadRereadsAMovingFrontier(t *testing.T) {
	n := callbackNode(t)
	send, _ := nano.ParseBlockJSON(MustFixture(t, "http_callback_send.json"))
	recv, _ := nano.ParseBlockJSON(MustFixture(t, "http_callback_receive.json"))
	acct := send.Block.Account
	// The frontier moves from the send to the receive between the reads.
	n.accounts[acct] = [][]byte{accountInfoBody(send.Block), accountInfoBody(recv.Block), accountInfoBody(recv.Block)}
	l := newLedger(t, n, LedgerOptions{})
	head, err := l.Head(testCtx(t), acct)
	if err != nil {
		t.Fatal(err)
	}
	if head.Hash().String() != hashCallbackRecv {
		t.Errorf("head %s", head.Hash())
	}
	if got := len(n.requestsFor("account_info")); got != 4 {
		t.Errorf("%d account_info reads", got)
	}
}

func TestLedgerHeadRefusesAnotherAccountsFrontier(t *testing.T) {
	n := callbackNode(t)
	send, _ := nano.ParseBlockJSON(MustFixture(t, "http_callback_send.json"))
	victim := MustAccount(t, acct2)
	n.accounts[victim] = [][]byte{accountInfoBody(send.Block)}
	l := newLedger(t, n, LedgerOptions{})
	_, err := l.Head(testCtx(t), victim)
	if !errors.Is(err, ErrInconsistent) || !errors.Is(err, errPermanent) {
		t.Errorf("err %v", err)
	}
}

func TestLedgerSource(t *testing.T) {
	n := newFakeNode(t)
	prev := testBlock(2, nano.Hash{2}, 1000, nano.Hash{})
	dest := testBlock(3, nano.Hash{}, 0, nano.Hash{})
	send := testBlock(2, prev.Hash(), 400, nano.Hash(dest.Account))
	n.addBlock(prev, nano.AmountFromUint64(1), "true")
	n.addBlock(send, nano.AmountFromUint64(600), "true")
	l := newLedger(t, n, LedgerOptions{})
	src, p, err := l.Source(testCtx(t), send.Hash())
	if err != nil {
		t.Fatal(err)
	}
	if src != send || p != prev {
		t.Errorf("source %+v prev %+v", src, p)
	}
	// A receive is not a source.
	recv := testBlock(2, send.Hash(), 900, nano.Hash{1})
	n.addBlock(recv, nano.AmountFromUint64(500), "true")
	if _, _, err := l.Source(testCtx(t), recv.Hash()); !errors.Is(err, ErrInconsistent) {
		t.Errorf("receive as source: %v", err)
	}
	if _, _, err := l.Source(testCtx(t), nano.Hash{0xee}); !errors.Is(err, ErrBlockNotFound) {
		t.Errorf("unknown source: %v", err)
	}
}

func TestLedgerPublish(t *testing.T) {
	n := newFakeNode(t)
	prev := testBlock(5, nano.Hash{5}, 1000, nano.Hash{})
	n.addBlock(prev, nano.AmountFromUint64(1), "true")
	n.accounts[prev.Account] = [][]byte{accountInfoBody(prev)}
	prov := &countingWork{}
	pre := NewPrecomputer(prov, PrecomputerOptions{})
	defer pre.Close()
	l := newLedger(t, n, LedgerOptions{Work: prov, Precomputer: pre, PollInterval: 10 * time.Millisecond})
	ctx := testCtx(t)
	if _, err := l.Head(ctx, prev.Account); err != nil { // starts the precompute
		t.Fatal(err)
	}
	send := testBlock(5, prev.Hash(), 400, nano.Hash{9})
	published, err := l.Publish(ctx, send, nano.SubtypeSend)
	if err != nil {
		t.Fatal(err)
	}
	if !published.Validate(low) || published.Hash() != send.Hash() {
		t.Errorf("published %+v", published)
	}
	reqs := n.requestsFor("process")
	if len(reqs) != 1 || reqs[0]["subtype"] != "send" {
		t.Fatalf("process requests %v", reqs)
	}
	blk := reqs[0]["block"].(map[string]any)
	if blk["work"] != published.Work.String() {
		t.Errorf("work sent %v, returned %s", blk["work"], published.Work)
	}
	// The precomputed work for the frontier was used; the next block's
	// work is being precomputed.
	eventually(t, "the next precompute", func() bool { return prov.calls.Load() == 2 })
	// Publishing again is harmless.
	n.addBlock(published, nano.AmountFromUint64(600), "false")
	n.handle("process", func(map[string]any) []byte { return nodeError("Old block") })
	if _, err := l.Publish(ctx, published, nano.SubtypeSend); err != nil {
		t.Errorf("second publish: %v", err)
	}
	// A fork is permanent.
	n.handle("process", func(map[string]any) []byte { return nodeError("Fork") })
	if _, err := l.Publish(ctx, published, nano.SubtypeSend); !errors.Is(err, ErrFork) || !errors.Is(err, errPermanent) {
		t.Errorf("fork: %v", err)
	}
	// Confirmation by polling.
	var polls atomic.Int32
	n.handle("block_info", func(req map[string]any) []byte {
		confirmed := "false"
		if polls.Add(1) > 2 {
			confirmed = "true"
		}
		return blockInfoBody(t, published, nano.AmountFromUint64(600), confirmed)
	})
	if err := l.AwaitConfirmed(ctx, published.Hash()); err != nil {
		t.Error(err)
	}
	// A block_info that lies about the hash ends the wait at once.
	n.handle("block_info", func(req map[string]any) []byte { return MustFixture(t, "rpc_block_info_response.json") })
	if err := l.AwaitConfirmed(ctx, published.Hash()); !errors.Is(err, ErrHashMismatch) || !errors.Is(err, errPermanent) {
		t.Errorf("lying node: %v", err)
	}
}

func TestLedgerFollowsConfirmationsOverWS(t *testing.T) {
	n := newFakeNode(t)
	updates := make(chan map[string]any, 4)
	srv := newWSServer(t, func(s *wsSession) {
		s.serveAcks(func(req map[string]any) {
			if req["action"] == "update" {
				updates <- req
				s.send(MustFixture(t, "ws_confirmation.json"))
			}
		})
	})
	w := dialWS(t, srv.url, WSOptions{})
	l := newLedger(t, n, LedgerOptions{WS: w, PollInterval: time.Hour})
	b := testBlock(6, nano.Hash{6}, 1, nano.Hash{})
	if _, err := l.Publish(testCtx(t), b, nano.SubtypeSend); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-updates:
		add := u["options"].(map[string]any)["accounts_add"].([]any)
		if len(add) != 1 || add[0] != b.Account.Address() {
			t.Errorf("update %v", u)
		}
	case <-time.After(hangLimit):
		t.Fatal("the published block's account was not added")
	}
	if err := l.AwaitConfirmed(testCtx(t), MustHash(t, hashWSConfirm)); err != nil {
		t.Fatal(err)
	}
}

// TestLedgerAwaitsPublishedThroughFeed: with a feed, a block the ledger
// has just published is awaited on the feed, block_info polled only after
// the poll interval; any other block is polled at once, and a published
// block whose confirmation never reaches the feed is still found by the
// poll.
func TestLedgerAwaitsPublishedThroughFeed(t *testing.T) {
	n := newFakeNode(t)
	feed := NewConfirmationFeed(FeedOptions{})
	t.Cleanup(feed.Close)
	blockInfos := func(h nano.Hash) int {
		c := 0
		for _, r := range n.requestsFor("block_info") {
			if r["hash"] == h.String() {
				c++
			}
		}
		return c
	}
	for _, tt := range []struct {
		name     string
		publish  bool          // published by the ledger before the wait
		interval time.Duration // the ledger's poll interval
		deliver  bool          // the confirmation reaches the feed
		polls    int           // block_info calls for the block expected (-1: at least one)
	}{
		{"published, confirmed on the feed", true, time.Hour, true, 0},
		{"published, the feed missed it", true, 20 * time.Millisecond, false, -1},
		{"not published here", false, time.Hour, false, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			seed := byte(40 + len(tt.name))
			b := testBlock(seed, nano.Hash{seed}, 10, nano.Hash{})
			n.addBlock(b, nano.AmountFromUint64(1), "true") // block_info says confirmed
			l := newLedger(t, n, LedgerOptions{Feed: feed, PollInterval: tt.interval})
			ctx := testCtx(t)
			if tt.publish {
				if _, err := l.Publish(ctx, b, nano.SubtypeSend); err != nil {
					t.Fatal(err)
				}
			}
			done := make(chan error, 1)
			go func() { done <- l.AwaitConfirmed(ctx, b.Hash()) }()
			if tt.deliver {
				// Delivered once the wait is on the feed (unless it ended
				// first: by a poll, which the count below refuses).
				eventually(t, "the wait on the feed", func() bool {
					feed.mu.Lock()
					defer feed.mu.Unlock()
					return len(feed.waiters[b.Hash()]) > 0 || len(done) > 0
				})
				feed.Deliver(Confirmation{Hash: b.Hash(), Account: b.Account, Block: b})
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			got := blockInfos(b.Hash())
			if (tt.polls < 0 && got == 0) || (tt.polls >= 0 && got != tt.polls) {
				t.Errorf("block_info polled %d times for the block, want %d (-1: at least once)", got, tt.polls)
			}
		})
	}
}
