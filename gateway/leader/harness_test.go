package leader_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanokms/nanokms/gateway/leader"
	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/internal/pgtest"
)

// childDSNEnv, when set, makes the test binary a child elector (see
// runChild) instead of running the tests.
const childDSNEnv = "NANOKMS_LEADER_CHILD_DSN"

func TestMain(m *testing.M) {
	if dsn := os.Getenv(childDSNEnv); dsn != "" {
		os.Exit(runChild(dsn))
	}
	code := pgtest.Run(m)
	killtest.Cleanup()
	os.Exit(code)
}

// runChild campaigns for medium "bridge" as holder "child" and prints
// "leading epoch=N" when it leads, until SIGTERM (or SIGKILL).
func runChild(dsn string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	e, err := leader.New(leader.Config{DSN: dsn, Medium: testMedium, Holder: "child", CheckInterval: testInterval, CheckTimeout: testTimeout,
		Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	err = e.Run(ctx, func(ctx context.Context, l leader.Lease) error {
		fmt.Printf("leading epoch=%d\n", l.Epoch)
		<-ctx.Done()
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

const (
	testMedium = "bridge"
	// testInterval is short so that a candidate polls often; testTimeout
	// is long so that a loaded machine does not lose a term by a slow
	// check (a loss the tests do not cause).
	testInterval = 50 * time.Millisecond
	testTimeout  = 20 * time.Second
	// waitLimit bounds every wait for a condition.
	waitLimit = 90 * time.Second
)

// term is one term as the leader's function saw it.
type term struct {
	holder string
	lease  leader.Lease
	ended  bool
	cause  error // context.Cause of the term's context once ended
}

// recorder records the terms of several electors and wakes waiters on
// every change.
type recorder struct {
	mu      sync.Mutex
	terms   []*term
	changed chan struct{}
	// write, when set, is called at the start of every term (a fenced
	// write); an error other than ErrDeposed (the term already lost) is
	// kept in errs.
	write func(ctx context.Context, l leader.Lease) error
	errs  []error
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) touch() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// lead returns the leader function of holder.
func (r *recorder) lead(holder string) func(context.Context, leader.Lease) error {
	return func(ctx context.Context, l leader.Lease) error {
		if r.write != nil {
			if err := r.write(ctx, l); err != nil && ctx.Err() == nil && !errors.Is(err, leader.ErrDeposed) {
				r.mu.Lock()
				r.errs = append(r.errs, fmt.Errorf("%s epoch %d: %w", holder, l.Epoch, err))
				r.mu.Unlock()
			}
		}
		tm := &term{holder: holder, lease: l}
		r.mu.Lock()
		r.terms = append(r.terms, tm)
		r.touch()
		r.mu.Unlock()
		<-ctx.Done()
		r.mu.Lock()
		tm.ended, tm.cause = true, context.Cause(ctx)
		r.touch()
		r.mu.Unlock()
		return nil
	}
}

// snapshot returns copies of the terms so far.
func (r *recorder) snapshot() []term {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]term, len(r.terms))
	for i, tm := range r.terms {
		out[i] = *tm
	}
	return out
}

// waitUntil waits until cond holds for the terms (checked at every
// change), failing the test after waitLimit.
func (r *recorder) waitUntil(t *testing.T, what string, cond func([]term) bool) []term {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if ts := r.snapshot(); cond(ts) {
			return ts
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("not %s within %s; terms: %s", what, waitLimit, r)
		}
	}
}

func (r *recorder) String() string {
	var s string
	for _, tm := range r.snapshot() {
		s += fmt.Sprintf("\n  %s epoch %d ended=%v cause=%v", tm.holder, tm.lease.Epoch, tm.ended, tm.cause)
	}
	return s
}

// running returns the terms not ended.
func running(ts []term) []term {
	return slices.DeleteFunc(slices.Clone(ts), func(tm term) bool { return tm.ended })
}

// maxEpoch returns the highest epoch of ts (0: none).
func maxEpoch(ts []term) uint64 {
	var m uint64
	for _, tm := range ts {
		m = max(m, tm.lease.Epoch)
	}
	return m
}

// startElectors starts n electors ("g0", "g1", …) on dsn feeding rec;
// they are stopped (and waited for) at the test's end.
func startElectors(t *testing.T, dsn string, rec *recorder, n int) []*leader.Elector {
	t.Helper()
	var out []*leader.Elector
	for i := range n {
		out = append(out, startElector(t, dsn, rec, fmt.Sprintf("g%d", i)))
	}
	return out
}

func startElector(t *testing.T, dsn string, rec *recorder, holder string) *leader.Elector {
	t.Helper()
	es, stop := runElectors(t, dsn, rec, holder)
	t.Cleanup(stop)
	return es[0]
}

// runElectors starts an elector per holder; stop stops them and waits
// until their Run returned (and with it every term's function).
func runElectors(t *testing.T, dsn string, rec *recorder, holders ...string) (es []*leader.Elector, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, holder := range holders {
		e, err := leader.New(leader.Config{DSN: dsn, Medium: testMedium, Holder: holder,
			CheckInterval: testInterval, CheckTimeout: testTimeout, Log: testLog(t)})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		es = append(es, e)
		wg.Go(func() {
			if err := e.Run(ctx, rec.lead(holder)); err != nil {
				t.Errorf("%s: Run: %v", holder, err)
			}
		})
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return es, stop
}

// testLog logs to the test's log.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// connect opens a connection for the test, closed at its end.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// writesTable holds the fenced writes of the tests.
const writesTable = `CREATE TABLE IF NOT EXISTS test_writes (id bigserial PRIMARY KEY, epoch bigint NOT NULL, holder text NOT NULL)`

// fencedWrite records one row for l in a transaction fenced by l's epoch,
// trying again while the database is unreachable (until ctx ends), and
// returns Fence's verdict: nil (written) or an error wrapping ErrDeposed.
func fencedWrite(ctx context.Context, dsn string, l leader.Lease, holder string) error {
	for {
		err := func() error {
			cctx, cancel := context.WithTimeout(ctx, testTimeout)
			defer cancel()
			conn, err := pgx.Connect(cctx, dsn)
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			return pgx.BeginFunc(cctx, conn, func(tx pgx.Tx) error {
				if err := leader.Fence(cctx, tx, l.Medium, l.Epoch); err != nil {
					return err
				}
				_, err := tx.Exec(cctx, "INSERT INTO test_writes (epoch, holder) VALUES ($1, $2)", int64(l.Epoch), holder) //nolint:gosec // small
				return err
			})
		}()
		if err == nil || errors.Is(err, leader.ErrDeposed) || ctx.Err() != nil {
			return err
		}
		// The database is restarting: ask again once it is back. The
		// connect above waits for it; pace the retries a little.
		t := time.NewTimer(testInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// checkWriteOrder fails t unless the fenced writes, in the order they
// were made, never go back to a lower epoch: each epoch's writes all
// precede the next epoch's.
func checkWriteOrder(t *testing.T, dsn string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit) // also at cleanup, when t.Context() is done
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(ctx, "SELECT id, epoch, holder FROM test_writes ORDER BY id")
	var last int64
	n := 0
	var id, epoch int64
	var holder string
	if _, err := pgx.ForEachRow(rows, []any{&id, &epoch, &holder}, func() error {
		n++
		if epoch < last {
			return fmt.Errorf("write %d by %s has epoch %d after a write of epoch %d", id, holder, epoch, last)
		}
		last = epoch
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// lockHolderPid returns the backend pid holding the medium's advisory lock
// (0: none).
func lockHolderPid(t *testing.T, conn *pgx.Conn) int32 {
	t.Helper()
	var pids []int32
	rows, _ := conn.Query(t.Context(), `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 2`,
		int64(uint32(leader.LockNamespace)), int64(uint32(leader.LockKey(testMedium)))) //nolint:gosec // oid bit patterns
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) > 1 {
		t.Fatalf("%d backends hold the medium's lock: %v", len(pids), pids)
	}
	if len(pids) == 0 {
		return 0
	}
	return pids[0]
}
