package leader_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nanokms/nanokms/gateway/leader"
	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/internal/pgtest"
)

// newWorld starts a server and a database with the writes table; the
// recorder's terms each make one fenced write.
func newWorld(t *testing.T) (*pgtest.Server, string, *recorder) {
	t.Helper()
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	if _, err := connect(t, dsn).Exec(t.Context(), writesTable); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	rec.write = func(ctx context.Context, l leader.Lease) error { return fencedWrite(ctx, dsn, l, l.Holder) }
	t.Cleanup(func() {
		for _, err := range rec.errs {
			t.Errorf("a term's fenced write: %v", err)
		}
		if srv.Pid() != 0 {
			t.Logf("%d fenced writes, in epoch order", checkWriteOrder(t, dsn))
		}
	})
	return srv, dsn, rec
}

// leading returns the electors that say they lead.
func leading(es []*leader.Elector) []*leader.Elector {
	var out []*leader.Elector
	for _, e := range es {
		if e.State().Leading {
			out = append(out, e)
		}
	}
	return out
}

// waitState waits until cond holds for every elector of es.
func waitState(t *testing.T, es []*leader.Elector, what string, cond func(leader.State) bool) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for _, e := range es {
		for {
			ch := e.Changed()
			if cond(e.State()) {
				break
			}
			select {
			case <-ch:
			case <-deadline.C:
				t.Fatalf("%s: not %s within %s (state %+v)", e.Holder(), what, waitLimit, e.State())
			}
		}
	}
}

// TestOneLeader: of three electors on one database exactly one leads, at
// epoch 1, holding the lock on its own connection, and the others, which
// keep polling, do not take over.
func TestOneLeader(t *testing.T) {
	_, dsn, rec := newWorld(t)
	es := startElectors(t, dsn, rec, 3)
	ts := rec.waitUntil(t, "one term", func(ts []term) bool { return len(ts) >= 1 })
	// Every elector has reached the database: the other two have polled
	// the lock and failed to take it.
	waitState(t, es, "reachable", func(s leader.State) bool { return s.Reachable })
	if got := leading(es); len(got) != 1 || got[0].Holder() != ts[0].holder {
		t.Fatalf("electors leading: %d (want 1, %s)", len(got), ts[0].holder)
	}
	if ts[0].lease.Epoch != 1 {
		t.Errorf("first epoch %d, want 1", ts[0].lease.Epoch)
	}
	if ts := rec.snapshot(); len(ts) != 1 || ts[0].ended {
		t.Fatalf("terms: %s", rec)
	}
	conn := connect(t, dsn)
	if lockHolderPid(t, conn) == 0 {
		t.Fatal("nobody holds the medium's lock")
	}
	var epoch int64
	var holder string
	if err := conn.QueryRow(t.Context(), "SELECT epoch, holder FROM gateway_leader WHERE medium = $1", testMedium).Scan(&epoch, &holder); err != nil {
		t.Fatal(err)
	}
	if epoch != 1 || holder != ts[0].holder {
		t.Errorf("gateway_leader: epoch %d holder %q, want 1 %q", epoch, holder, ts[0].holder)
	}
}

// TestTerminatedLeader: the lock's backend terminated (pg_terminate_backend)
// → the leader's context is cancelled with ErrLost, at once (the
// connection reports the termination, no check needed), another term
// begins with a higher epoch, and the deposed leader's late write is
// refused by the fence while the new leader's is taken.
func TestTerminatedLeader(t *testing.T) {
	_, dsn, rec := newWorld(t)
	startElectors(t, dsn, rec, 3)
	conn := connect(t, dsn)
	for round := range 3 {
		ts := rec.waitUntil(t, "a term running", func(ts []term) bool { return len(running(ts)) == 1 })
		old := running(ts)[0]
		pid := lockHolderPid(t, conn)
		start := time.Now()
		var ok bool
		if err := conn.QueryRow(t.Context(), "SELECT pg_terminate_backend($1, $2)", pid, waitLimit.Milliseconds()).Scan(&ok); err != nil || !ok {
			t.Fatalf("terminate %d: %v %v", pid, ok, err)
		}
		ts = rec.waitUntil(t, "a new term after the old one ended", func(ts []term) bool {
			return len(running(ts)) == 1 && maxEpoch(ts) > old.lease.Epoch && ts[indexOf(ts, old)].ended
		})
		t.Logf("round %d: %s epoch %d lost; %s epoch %d leads after %s", round, old.holder, old.lease.Epoch,
			running(ts)[0].holder, running(ts)[0].lease.Epoch, time.Since(start).Round(time.Millisecond))
		lost := ts[indexOf(ts, old)].cause
		var pe *pgconn.PgError
		if !errors.Is(lost, leader.ErrLost) || !errors.As(lost, &pe) || pe.Code != "57P01" {
			t.Errorf("the old term's cause %v, want ErrLost from the termination (57P01)", lost)
		}
		if err := fencedWrite(t.Context(), dsn, old.lease, "late "+old.holder); !errors.Is(err, leader.ErrDeposed) {
			t.Errorf("the deposed leader's late write: %v, want ErrDeposed", err)
		}
		if err := fencedWrite(t.Context(), dsn, running(ts)[0].lease, running(ts)[0].holder); err != nil {
			t.Errorf("the new leader's write: %v", err)
		}
	}
}

// indexOf returns the index of the term of old's epoch in ts.
func indexOf(ts []term, old term) int {
	for i, tm := range ts {
		if tm.lease.Epoch == old.lease.Epoch {
			return i
		}
	}
	return -1
}

// TestDatabaseRestarted: the database restarted (fast shutdown) and then
// killed and recovered → the term is lost each time and leadership comes
// back with a higher epoch; the deposed terms' late writes are refused.
func TestDatabaseRestarted(t *testing.T) {
	srv, dsn, rec := newWorld(t)
	es := startElectors(t, dsn, rec, 2)
	for _, how := range []string{"restart", "kill", "restart"} {
		ts := rec.waitUntil(t, "a term running", func(ts []term) bool { return len(running(ts)) == 1 })
		old := running(ts)[0]
		switch how {
		case "restart":
			srv.Restart(t)
		case "kill":
			if err := srv.Kill(); err != nil {
				t.Fatal(err)
			}
			// Every elector sees the database gone before it comes back.
			waitState(t, es, "unreachable or not leading", func(s leader.State) bool { return !s.Leading })
			srv.Start(t)
		}
		ts = rec.waitUntil(t, "a new term after "+how, func(ts []term) bool {
			return len(running(ts)) == 1 && maxEpoch(ts) > old.lease.Epoch && ts[indexOf(ts, old)].ended
		})
		if cause := ts[indexOf(ts, old)].cause; !errors.Is(cause, leader.ErrLost) {
			t.Errorf("%s: the old term's cause %v, want ErrLost", how, cause)
		}
		if err := fencedWrite(t.Context(), dsn, old.lease, "late "+old.holder); !errors.Is(err, leader.ErrDeposed) {
			t.Errorf("%s: the deposed leader's late write: %v, want ErrDeposed", how, err)
		}
		t.Logf("%s: %s epoch %d lost; %s epoch %d leads", how, old.holder, old.lease.Epoch, running(ts)[0].holder, running(ts)[0].lease.Epoch)
	}
}

// TestLeaderKilled: a leader in another process SIGKILLed → one of the
// candidates here leads, with a higher epoch, and the dead leader's epoch
// is fenced off. Three rounds, each with a new child and new candidates.
func TestLeaderKilled(t *testing.T) {
	_, dsn, rec := newWorld(t)
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := killtest.New(t, "leader-child", filepath.Join(t.TempDir(), "child.log"), bin)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, childDSNEnv+"=") })
	child.SetEnv(append(env, childDSNEnv+"="+dsn))
	for round := 1; round <= 3; round++ {
		child.MustStart() // alone: the candidates of the last round are stopped
		if err := child.WaitLogged(waitLimit, "leading epoch=", round); err != nil {
			t.Fatal(err)
		}
		childEpoch := lastChildEpoch(t, child)
		es, stop := runElectors(t, dsn, rec, fmt.Sprintf("r%d-a", round), fmt.Sprintf("r%d-b", round))
		waitState(t, es, "reachable", func(s leader.State) bool { return s.Reachable })
		if got := leading(es); len(got) != 0 {
			t.Fatalf("%s leads while the child does", got[0].Holder())
		}
		child.MustKill()
		ts := rec.waitUntil(t, "a candidate leading after the child's SIGKILL", func(ts []term) bool {
			return len(running(ts)) == 1 && running(ts)[0].lease.Epoch > childEpoch
		})
		t.Logf("round %d: the child at epoch %d killed; %s leads at epoch %d", round, childEpoch, running(ts)[0].holder, running(ts)[0].lease.Epoch)
		if err := fencedWrite(t.Context(), dsn, leader.Lease{Medium: testMedium, Epoch: childEpoch}, "late child"); !errors.Is(err, leader.ErrDeposed) {
			t.Errorf("the dead child's epoch: %v, want ErrDeposed", err)
		}
		stop()
		if ts := running(rec.snapshot()); len(ts) != 0 {
			t.Fatalf("terms still running after the candidates stopped: %v", ts)
		}
	}
}

// lastChildEpoch returns the epoch of the child's last "leading epoch=N".
func lastChildEpoch(t *testing.T, p *killtest.Proc) uint64 {
	t.Helper()
	tail := p.LogTail(200)
	i := strings.LastIndex(tail, "leading epoch=")
	if i < 0 {
		t.Fatalf("the child's log has no epoch:\n%s", tail)
	}
	s := tail[i+len("leading epoch="):]
	if j := strings.IndexByte(s, '\n'); j >= 0 {
		s = s[:j]
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
