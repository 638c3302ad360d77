package signer

import (
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/blake2b"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// rawRecord reads a's record as it lies in the accounts bucket, without
// following the signed chain.
func rawRecord(t *testing.T, s *Store, a nano.PublicKey) AccountRecord {
	t.Helper()
	var rec AccountRecord
	if err := s.db.View(func(tx *bolt.Tx) error {
		ok, err := getRecord(tx.Bucket(bucketAccounts), a[:], &rec)
		if err == nil && !ok {
			err = fmt.Errorf("no record of %s", a.Address())
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestFrontierCheckpoint: the account record is rewritten every
// checkpointEvery blocks (and at once for an epoch head), and in between
// every read — GetAccount, ListAccounts, Accounts, the next decision, a
// reopened store — sees the latest signed block as the frontier, with
// its balance, representative and height.
func TestFrontierCheckpoint(t *testing.T) {
	w := newWorld(t)
	w.adopt("custody", 0, nil)
	src, srcPrev := w.Fund(w.custody, custodytest.XNO(50))
	head := w.mustSign(&pb.SignRequest{Intent: w.ReceiveIntent(w.custody, custodytest.XNO(50), src.Hash(), &w.Rep),
		Source: pbBlock(src), SourcePrevious: pbBlock(srcPrev)}, "open")
	height := uint64(1)

	check := func(signed int) {
		t.Helper()
		h := head.Hash()
		if raw := rawRecord(t, w.store, w.custody); raw.Height != height-uint64(signed%checkpointEvery) {
			t.Fatalf("after %d blocks the record is at height %d, want %d (rewritten every %d)", signed, raw.Height, height-uint64(signed%checkpointEvery), checkpointEvery)
		}
		st, err := w.client.GetAccount(w.ctx, &pb.GetAccountRequest{Account: w.custody[:]})
		if err != nil {
			t.Fatal(err)
		}
		list, err := w.client.ListAccounts(w.ctx, &pb.ListAccountsRequest{})
		if err != nil || len(list.GetAccounts()) != 1 {
			t.Fatalf("ListAccounts: %v, %v", list, err)
		}
		recs, err := w.store.Accounts()
		if err != nil || len(recs) != 1 {
			t.Fatalf("Accounts: %v, %v", recs, err)
		}
		for _, got := range []*pb.AccountState{st, list.GetAccounts()[0]} {
			if string(got.GetFrontier()) != string(h[:]) || got.GetHeight() != height || got.GetBalanceRaw() != head.Balance.String() ||
				string(got.GetRepresentative()) != string(head.Representative[:]) {
				t.Fatalf("after %d blocks: frontier %X height %d balance %s rep %X, want %s %d %s %s",
					signed, got.GetFrontier(), got.GetHeight(), got.GetBalanceRaw(), got.GetRepresentative(), h, height, head.Balance, head.Representative)
			}
		}
		if r := recs[0]; r.FrontierHash != h || r.Height != height || *r.Frontier != head {
			t.Fatalf("Accounts: frontier %s height %d, want %s %d", r.FrontierHash, r.Height, h, height)
		}
	}
	check(1)
	send := func() {
		in := w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
		head = w.mustSign(&pb.SignRequest{Intent: in, Head: pbBlock(head), Approvals: w.Approve(in, "service")}, "send")
		height++
	}
	signed := 1
	for ; signed < 2*checkpointEvery+3; signed++ {
		send()
		check(signed + 1)
	}

	// An epoch block as the new head is not in the signed bucket: the
	// record is rewritten at once, two blocks on.
	epoch := epochOn(head, w.epoch)
	in := w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
	head = w.mustSign(&pb.SignRequest{Intent: in, Head: pbBlock(epoch), Approvals: w.Approve(in, "service")}, "send")
	height += 2
	if raw := rawRecord(t, w.store, w.custody); raw.FrontierHash != head.Hash() || raw.Height != height {
		t.Fatalf("after an epoch head the record is at %s height %d, want the new block %s at %d", raw.FrontierHash, raw.Height, head.Hash(), height)
	}
	old := head
	send()
	if raw := rawRecord(t, w.store, w.custody); raw.Height != height-1 {
		t.Fatalf("one block after the epoch checkpoint the record is at height %d, want %d", raw.Height, height-1)
	}

	// A send on the head before, which the record still names, is refused
	// with the block already signed on it.
	in = w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
	if _, err := w.client.Sign(w.ctx, &pb.SignRequest{Intent: in, Head: pbBlock(old), Approvals: w.Approve(in, "service")}); reasonOf(err) != "PENDING_BLOCK" {
		t.Fatalf("a send on the head the record names: %v, want PENDING_BLOCK", err)
	}

	// Closed, the store brings the record up to the frontier; reopened,
	// it has the same frontier.
	if raw := rawRecord(t, w.store, w.custody); raw.FrontierHash == head.Hash() {
		t.Fatal("the record is up to date before the store is closed: nothing to settle")
	}
	path := w.stateFile
	if err := w.store.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if raw := rawRecord(t, s, w.custody); raw.FrontierHash != head.Hash() || raw.Height != height || *raw.Frontier != head {
		t.Fatalf("after Close the record is at %s height %d, want the frontier %s at %d", raw.FrontierHash, raw.Height, head.Hash(), height)
	}
	rec, ok, err := s.Account(w.custody)
	if err != nil || !ok || rec.FrontierHash != head.Hash() || rec.Height != height || *rec.Frontier != head {
		t.Fatalf("reopened: %v %v, frontier %s height %d, want %s %d", ok, err, rec.FrontierHash, rec.Height, head.Hash(), height)
	}
}

func errorsIsCorrupt(err error) bool { return errors.Is(err, errCorrupt) }

// TestFrontierChainCorrupt: a signed entry that is not built on the block
// it is filed under, or that leads back to it, makes every read of the
// account an internal error (never a wrong frontier, never a hang).
func TestFrontierChainCorrupt(t *testing.T) {
	for _, tt := range []struct {
		name  string
		entry func(on nano.Hash) SignedBlock
	}{
		{"not built on its key", func(on nano.Hash) SignedBlock {
			b := nano.StateBlock{Account: nano.PublicKey{9}, Previous: nano.Hash{0xEE}, Balance: nano.AmountFromUint64(4)}
			return SignedBlock{Block: b, Hash: b.Hash(), RequestID: "x"}
		}},
		{"another account's", func(on nano.Hash) SignedBlock {
			b := nano.StateBlock{Account: nano.PublicKey{8}, Previous: on, Balance: nano.AmountFromUint64(4)}
			return SignedBlock{Block: b, Hash: b.Hash(), RequestID: "x"}
		}},
		{"a loop", func(on nano.Hash) SignedBlock {
			b := nano.StateBlock{Account: nano.PublicKey{9}, Previous: on, Balance: nano.AmountFromUint64(4)}
			return SignedBlock{Block: b, Hash: on, RequestID: "x"}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := mustEmptyStore(t)
			acct := nano.PublicKey{9}
			b := nano.StateBlock{Account: acct, Balance: nano.AmountFromUint64(5), Link: nano.Hash{1}}
			rec := AccountRecord{Account: acct, Wallet: "w", Frontier: &b, FrontierHash: b.Hash(), Height: 1}
			if err := s.Adopt(rec, time.Unix(1, 0)); err != nil {
				t.Fatal(err)
			}
			sb := tt.entry(rec.FrontierHash)
			if err := s.db.Update(func(tx *bolt.Tx) error {
				return putRecord(tx.Bucket(bucketSigned), acctKey(acct, rec.FrontierHash[:]), &sb)
			}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Account(acct); !errorsIsCorrupt(err) {
				t.Errorf("Account: %v, want a corrupt-record error", err)
			}
			if _, err := s.Accounts(); !errorsIsCorrupt(err) {
				t.Errorf("Accounts: %v, want a corrupt-record error", err)
			}
			if _, err := s.accountPage(nil, 10, time.Unix(2, 0)); !errorsIsCorrupt(err) {
				t.Errorf("accountPage: %v, want a corrupt-record error", err)
			}
			if _, err := s.snapshot("id", acct, time.Unix(2, 0)); !errorsIsCorrupt(err) {
				t.Errorf("snapshot: %v, want a corrupt-record error", err)
			}
			if st := StatusOf(fmt.Errorf("reading: %w", errCorrupt)); st.Code() != codes.Internal {
				t.Errorf("a corrupt record is %v, want Internal", status.Code(st.Err()))
			}
		})
	}
}

// TestCommitPagesDoNotGrowWithAccounts: signing for 64 accounts writes
// about as many pages per decision whether the state file tracks 64
// accounts or 20,000 more. (It did not: each decision rewrote the
// account's record, which with many accounts sat alone on a leaf page of
// the accounts bucket, under branch pages of its own: ≈ 1 more page per
// decision here, committed one at a time, and ≈ 2 in group commits of 26.)
// Pages are counted by bbolt, so the test does not depend on the
// machine's speed.
func TestCommitPagesDoNotGrowWithAccounts(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	pages := func(fillers int) float64 {
		s := mustEmptyStore(t)
		// Records only: the accounts' number is what is measured, not the
		// history (velocity entries, audit records) they would bring.
		if err := s.db.Update(func(tx *bolt.Tx) error {
			for i := range fillers {
				a := nano.PublicKey(blake2b.Sum256(fmt.Appendf(nil, "filler %d", i)))
				b := nano.StateBlock{Account: a, Balance: nano.AmountFromUint64(7), Link: nano.Hash{3}}
				rec := AccountRecord{Account: a, Wallet: "filler", Index: uint32(i), Frontier: &b, FrontierHash: b.Hash(), Height: 1}
				if err := putRecord(tx.Bucket(bucketAccounts), a[:], &rec); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var active []AccountRecord
		for i := range 64 {
			a := nano.PublicKey{byte(i), 0xA}
			b := nano.StateBlock{Account: a, Balance: nano.AmountFromUint64(1 << 40), Link: nano.Hash{1}}
			active = append(active, AccountRecord{Account: a, Wallet: "w", Index: uint32(i), Frontier: &b, FrontierHash: b.Hash(), Height: 1})
		}
		if err := s.AdoptBatch(active, now); err != nil {
			t.Fatal(err)
		}
		s.db.NoSync = true // the pages are the same; this test needs no fsync
		before := s.db.Stats()
		const rounds = 3 * checkpointEvery
		for r := range rounds {
			for i := range active {
				rec := &active[i]
				b := *rec.Frontier
				b.Previous, b.Link = rec.FrontierHash, nano.Hash{2}
				b.Balance, _ = b.Balance.Sub(nano.AmountFromUint64(1))
				h := b.Hash()
				next := *rec
				next.Frontier, next.FrontierHash, next.Height = &b, h, rec.Height+1
				d := &Decision{RequestID: fmt.Sprintf("%x-%d", h[:8], r), Before: rec.FrontierHash, Record: next, Block: b, Hash: h,
					Subtype: "send", Sent: nano.AmountFromUint64(1), Time: now}
				if _, err := s.CommitSigned(d); err != nil {
					t.Fatal(err)
				}
				*rec = next
			}
		}
		after := s.db.Stats()
		diff := after.Sub(&before)
		return float64(diff.TxStats.GetPageCount()) / float64(rounds*len(active))
	}
	few, many := pages(0), pages(20_000)
	t.Logf("pages per decision: %.2f with 64 accounts, %.2f with 20,064", few, many)
	if many > few+0.4 {
		t.Errorf("a decision writes %.2f pages with 20,064 accounts and %.2f with 64: want no more than %.2f", many, few, few+0.4)
	}
}
