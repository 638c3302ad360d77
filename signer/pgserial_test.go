package signer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanokms/nanokms/signer/custodytest"
)

// TestPGWritersQueueWithoutConflict: a signer's write that begins while
// another signer's transaction holds the audit chain's head waits for it,
// then commits at its first try. (Each write appends to the one audit
// chain, so the writes of all signers take turns; when a transaction took
// its snapshot before waiting for its turn it always failed to serialise
// once the other committed, and under load two signers spent their tries
// on each other until requests failed with ErrStoreUnavailable.)
func TestPGWritersQueueWithoutConflict(t *testing.T) {
	dsn := sharedPG(t).NewDatabase(t)
	a, b := openPG(t, dsn), openPG(t, dsn)
	ctx := t.Context()
	at := time.Unix(1_700_000_000, 0)

	// A's transaction stops before its COMMIT until released.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a.beforeCommit = func() {
		once.Do(func() { close(entered); <-release })
	}
	var mu sync.Mutex
	var bTries []error
	b.afterTry = func(err error) { mu.Lock(); bTries = append(bTries, err); mu.Unlock() }

	aDone, bDone := make(chan error, 1), make(chan error, 1)
	go func() {
		aDone <- a.adopt(ctx, AccountRecord{Account: custodytest.NewExtAccount(11).Pub, Wallet: "custody", Index: 1}, at)
	}()
	<-entered
	go func() {
		bDone <- b.adopt(ctx, AccountRecord{Account: custodytest.NewExtAccount(12).Pub, Wallet: "custody", Index: 2}, at)
	}()
	// B is waiting for a lock that A holds (the server says so), and only
	// then does A commit.
	waitLockWait(t, dsn)
	close(release)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bTries) != 1 || bTries[0] != nil {
		t.Fatalf("B's write took %d tries (%v), want 1: it took its snapshot before its turn", len(bTries), errors.Join(bTries...))
	}
	if n, err := a.VerifyAudit(ctx); err != nil || n != 2 {
		t.Fatalf("audit chain: %d records, %v; want 2", n, err)
	}
}

// waitLockWait waits until a session of dsn's database waits for a lock.
func waitLockWait(t *testing.T, dsn string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(time.Minute)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		var n int
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no session waits for a lock")
		}
		select { // polling the server's view, bounded: not a synchronisation by time
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(pause):
		}
	}
}
