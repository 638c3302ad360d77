package signer

import (
	"errors"
	"sync"
	"testing"
	"time"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// TestPGExpectStopsCommit: a statement wrapped by pgExpect that changes
// other rows than expected fails the transaction, and the COMMIT sent
// behind it in the same round trip does not run: the group's audit
// record and its other writes are not recorded, and the store goes on
// from the same head.
func TestPGExpectStopsCommit(t *testing.T) {
	dsn := sharedPG(t).NewDatabase(t)
	st := openPG(t, dsn)
	ctx := t.Context()
	at := time.Unix(1_700_000_000, 0)
	lost := custodytest.NewExtAccount(21).Pub
	err := st.write(ctx, &pgCommitReq{apply: func(tx *pgTx) error {
		if _, err := tx.appendAudit(&pb.AuditRecord{TimeUnixNano: at.UnixNano(), Decision: DecisionRefused, Detail: "must not be recorded"}); err != nil {
			return err
		}
		tx.writes.Queue("INSERT INTO signer_accounts (account, frontier, record) VALUES ($1, $1, '\\x01')", lost[:])
		// No row has this account's frontier: 0 rows, not 1.
		tx.writes.Queue(pgExpect("UPDATE signer_accounts SET record = record WHERE frontier = $1 RETURNING 1", 2), make([]byte, 32), 1)
		return nil
	}})
	if !errors.Is(err, errMovedInTx) {
		t.Fatalf("write past an unmet expectation: %v, want errMovedInTx", err)
	}
	if _, ok, err := st.account(ctx, lost); err != nil || ok {
		t.Fatalf("the failed transaction's account is recorded (%v, %v)", ok, err)
	}
	if n, err := st.VerifyAudit(ctx); err != nil || n != 0 {
		t.Fatalf("audit chain after the failed transaction: %d records, %v; want 0", n, err)
	}
	if err := st.adopt(ctx, AccountRecord{Account: custodytest.NewExtAccount(22).Pub, Wallet: "custody", Index: 1}, at); err != nil {
		t.Fatal(err)
	}
	if n, err := st.VerifyAudit(ctx); err != nil || n != 1 {
		t.Fatalf("audit chain: %d records, %v; want 1", n, err)
	}
}

// TestPGGroupSharedKeys: the writes queued while a group commits form the
// next group, its prechecks all read before its writes; so a write on a
// key (here an account) that another write of the group also writes
// waits for the group after, where its precheck sees the first one's
// write. (In one group both adoptions of an account would pass their
// precheck, and the second's insert would fail the whole group on the
// primary key, try after try.)
func TestPGGroupSharedKeys(t *testing.T) {
	dsn := sharedPG(t).NewDatabase(t)
	st := openPG(t, dsn)
	ctx := t.Context()
	at := time.Unix(1_700_000_000, 0)
	rec := func(n int) AccountRecord {
		return AccountRecord{Account: custodytest.NewExtAccount(byte(30 + n)).Pub, Wallet: "custody", Index: uint32(n)}
	}

	// The first group stops before its writes until released, while the
	// others queue.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	st.beforeCommit = func() { once.Do(func() { close(entered); <-release }) }
	var mu sync.Mutex
	var tries []error
	st.afterTry = func(err error) { mu.Lock(); tries = append(tries, err); mu.Unlock() }

	first := make(chan error, 1)
	go func() { first <- st.adopt(ctx, rec(1), at) }()
	<-entered
	queued := []AccountRecord{rec(1), rec(2), rec(2), rec(3)}
	errs := make(chan error, len(queued))
	for _, r := range queued {
		go func() { errs <- st.adopt(ctx, r, at) }()
	}
	deadline := time.Now().Add(time.Minute)
	for len(st.commits) < len(queued) { // the writes wait in the queue
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d writes queued", len(st.commits), len(queued))
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	var ok, tracked int
	for range queued {
		err := <-errs
		switch {
		case err == nil:
			ok++
		case signerapi.ReasonOf(err) == pb.RefusalReason_REFUSAL_REASON_ALREADY_TRACKED:
			tracked++
		default:
			t.Fatalf("adopt: %v; want success or ALREADY_TRACKED", err)
		}
	}
	if ok != 2 || tracked != 2 {
		t.Fatalf("%d adopted, %d already tracked; want 2 and 2", ok, tracked)
	}
	mu.Lock()
	defer mu.Unlock()
	// Group 1 (account 1), group 2 (accounts 1 refused, 2, 3), group 3
	// (account 2 again, refused): each at its first try.
	if len(tries) != 3 || errors.Join(tries...) != nil {
		t.Fatalf("%d tries (%v), want 3 without error", len(tries), errors.Join(tries...))
	}
	if n, err := st.VerifyAudit(ctx); err != nil || n != 3 {
		t.Fatalf("audit chain: %d records, %v; want 3", n, err)
	}
}
