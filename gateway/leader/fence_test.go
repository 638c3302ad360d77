package leader_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanokms/nanokms/gateway/leader"
	"github.com/nanokms/nanokms/internal/pgmigrate"
)

// eventually polls cond with a bounded backoff until it holds, failing t
// after waitLimit. It is for conditions only the database can tell (a
// backend waiting on a lock), not a sleep for synchronisation.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %s", what, waitLimit)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// TestFenceOrdersTerms: a transaction fenced by the current epoch holds the
// medium's row, so that the next term cannot begin (its increment waits on
// the row) until it commits; afterwards the old epoch's transactions fail
// with ErrDeposed.
func TestFenceOrdersTerms(t *testing.T) {
	_, dsn, rec := newWorld(t)
	runElectors(t, dsn, rec, "a")
	ts := rec.waitUntil(t, "a leading", func(ts []term) bool { return len(running(ts)) == 1 })
	old := ts[0].lease
	writer := connect(t, dsn)
	tx, err := writer.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // a no-op after Commit
	if err := leader.Fence(t.Context(), tx, testMedium, old.Epoch); err != nil {
		t.Fatalf("Fence with the current epoch: %v", err)
	}
	if _, err := tx.Exec(t.Context(), "INSERT INTO test_writes (epoch, holder) VALUES ($1, 'slow a')", int64(old.Epoch)); err != nil { //nolint:gosec // small
		t.Fatal(err)
	}
	runElectors(t, dsn, rec, "b")
	admin := connect(t, dsn)
	srvTerminateLock(t, admin)
	rec.waitUntil(t, "a's term lost", func(ts []term) bool { return ts[0].ended })
	// Whoever took the lock is waiting for the fenced transaction.
	eventually(t, "an elector waiting on the medium's row", func() bool {
		var n int
		if err := admin.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'nanokms-gateway-leader' AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
	if ts := rec.snapshot(); maxEpoch(ts) != old.Epoch {
		t.Fatalf("a term began while a fenced transaction of epoch %d was open: %s", old.Epoch, rec)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatalf("the fenced transaction: %v", err)
	}
	ts = rec.waitUntil(t, "a new term", func(ts []term) bool { return len(running(ts)) == 1 && maxEpoch(ts) > old.Epoch })
	if got := maxEpoch(ts); got != old.Epoch+1 {
		t.Errorf("new epoch %d, want %d", got, old.Epoch+1)
	}
	tx2, err := writer.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Rollback(context.Background()) //nolint:errcheck // ended by the test
	if err := leader.Fence(t.Context(), tx2, testMedium, old.Epoch); !errors.Is(err, leader.ErrDeposed) {
		t.Fatalf("Fence with the old epoch: %v, want ErrDeposed", err)
	}
}

// srvTerminateLock terminates the backend holding the medium's lock.
func srvTerminateLock(t *testing.T, admin *pgx.Conn) {
	t.Helper()
	pid := lockHolderPid(t, admin)
	if pid == 0 {
		t.Fatal("nobody holds the medium's lock")
	}
	var ok bool
	if err := admin.QueryRow(t.Context(), "SELECT pg_terminate_backend($1, $2)", pid, waitLimit.Milliseconds()).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate %d: %v %v", pid, ok, err)
	}
}

// TestFenceRefuses: the epochs Fence refuses, each with ErrDeposed.
func TestFenceRefuses(t *testing.T) {
	_, dsn, _ := newWorld(t)
	conn := connect(t, dsn)
	if err := leader.Migrate(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "INSERT INTO gateway_leader (medium, epoch, holder, since) VALUES ('m', 7, 'x', now())"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		medium string
		epoch  uint64
		ok     bool
	}{
		{"current", "m", 7, true},
		{"older", "m", 6, false},
		{"newer", "m", 8, false},
		{"zero", "m", 0, false},
		{"beyond bigint", "m", 1 << 63, false},
		{"no such medium", "n", 7, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := pgx.BeginFunc(t.Context(), conn, func(tx pgx.Tx) error { return leader.Fence(t.Context(), tx, tc.medium, tc.epoch) })
			if tc.ok && err != nil || !tc.ok && !errors.Is(err, leader.ErrDeposed) {
				t.Fatalf("Fence(%q, %d) = %v", tc.medium, tc.epoch, err)
			}
		})
	}
}

// TestSchema: the schema is migrated once, beside another component's in
// the same nanokms_schema table, and a newer one is refused by Run.
func TestSchema(t *testing.T) {
	_, dsn, rec := newWorld(t)
	conn := connect(t, dsn)
	other, err := pgmigrate.Load(fstest.MapFS{"s/0001_other.sql": {Data: []byte("CREATE TABLE other_state (k text PRIMARY KEY)")}}, "s")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgmigrate.Apply(t.Context(), conn, "gateway", other); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := leader.Migrate(t.Context(), conn); err != nil {
			t.Fatal(err)
		}
	}
	for comp, want := range map[string]int{leader.Component: leader.SchemaVersion(), "gateway": 1} {
		if v, err := pgmigrate.Current(t.Context(), conn, comp); err != nil || v != want {
			t.Errorf("%s at version %d (%v), want %d", comp, v, err, want)
		}
	}
	if _, err := conn.Exec(t.Context(), "UPDATE nanokms_schema SET version = 99 WHERE component = $1", leader.Component); err != nil {
		t.Fatal(err)
	}
	e, err := leader.New(leader.Config{DSN: dsn, Medium: testMedium, CheckInterval: testInterval, CheckTimeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(t.Context(), rec.lead("x")); !errors.Is(err, pgmigrate.ErrNewer) {
		t.Fatalf("Run on a newer schema: %v, want ErrNewer", err)
	}
	if len(rec.snapshot()) != 0 {
		t.Fatal("a term began on a newer schema")
	}
}

// TestStepDown: Run's ctx ending cancels the term with ErrStepDown and Run
// returns nil; a second Run at once is refused.
func TestStepDown(t *testing.T) {
	_, dsn, rec := newWorld(t)
	e, err := leader.New(leader.Config{DSN: dsn, Medium: testMedium, CheckInterval: testInterval, CheckTimeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, rec.lead("x")) }()
	rec.waitUntil(t, "leading", func(ts []term) bool { return len(ts) == 1 })
	if err := e.Run(ctx, rec.lead("y")); !errors.Is(err, leader.ErrRunning) {
		t.Errorf("a second Run: %v, want ErrRunning", err)
	}
	if s := e.State(); !s.Leading || s.Epoch != 1 || !s.Reachable {
		t.Errorf("state while leading: %+v", s)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ts := rec.snapshot(); !ts[0].ended || !errors.Is(ts[0].cause, leader.ErrStepDown) {
		t.Errorf("term after the step-down: ended %v cause %v", ts[0].ended, ts[0].cause)
	}
	if s := e.State(); s.Leading || s.Epoch != 1 {
		t.Errorf("state after Run: %+v", s)
	}
	if pid := lockHolderPid(t, connect(t, dsn)); pid != 0 {
		t.Errorf("backend %d still holds the lock after Run returned", pid)
	}
}

// TestConfig: New's errors name the field.
func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg   leader.Config
		field string
	}{
		{leader.Config{DSN: "host=/x"}, "Medium"},
		{leader.Config{Medium: "m"}, "DSN"},
		{leader.Config{DSN: "host=/x password=s3cret port=notaport", Medium: "m"}, "DSN"},
		{leader.Config{DSN: "host=/x", Medium: "m", CheckInterval: -1}, "CheckInterval"},
		{leader.Config{DSN: "host=/x", Medium: "m", CheckTimeout: -1}, "CheckTimeout"},
	} {
		_, err := leader.New(tc.cfg)
		var ce *leader.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("New(%+v) = %v, want a ConfigError for %s", tc.cfg, err, tc.field)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error quotes the password: %v", err)
		}
	}
	e, err := leader.New(leader.Config{DSN: "host=/x", Medium: "m"})
	if err != nil || e.Holder() == "" || e.Medium() != "m" {
		t.Fatalf("defaults: %v %q", err, e.Holder())
	}
}

// TestLockKey: the documented mapping (FNV-1a-32, as int32), pinned so
// that gateways of different releases take the same lock.
func TestLockKey(t *testing.T) {
	for medium, want := range map[string]uint32{"": 0x811c9dc5, "a": 0xe40c292c, "foobar": 0xbf9cf968} {
		if got := uint32(leader.LockKey(medium)); got != want { //nolint:gosec // bit pattern
			t.Errorf("LockKey(%q) = %#x, want %#x", medium, got, want)
		}
	}
	if leader.LockNamespace != 0x6e6b6c64 {
		t.Errorf("LockNamespace changed: %#x", leader.LockNamespace)
	}
}
