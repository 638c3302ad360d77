// Package pgtest gives tests real PostgreSQL 15 servers, started and
// stopped by the tests themselves. It is test support: only _test.go files
// and test binaries may import it, never production code (scripts/test.sh
// checks).
//
// # What it does
//
// When /usr/lib/postgresql/15/bin/initdb is missing, the first server of a
// process installs Debian's postgresql package with apt-get (as root;
// concurrent test processes take turns through a flock on a file under
// os.TempDir()). If it cannot, the test fails with the reason: it is never
// skipped.
//
// PostgreSQL refuses to run as root, so when the tests run as root the
// servers run as the system user nanokms-pgtest (created with useradd
// --system when missing); otherwise as the tests' own user. Each server
// lives in its own directory under os.TempDir(), owned by that user with
// mode 0700: a data directory, a socket directory and the server's log.
// The server listens on a unix socket only (no TCP address), trusts
// local connections (the superuser is "postgres"), allows 200 connections
// and has small shared buffers. fsync is on unless Options.NoFsync is set.
//
// The postmaster gets a parent-death signal (a killed test binary takes
// its servers down) and is stopped at cleanup even when the test failed.
// Stop, Kill and Close wait until every process of the server is gone:
// the postmaster and its children, found by their working directory (the
// data directory), since PostgreSQL puts each child in its own session.
//
// # Use
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) } // optional, faster
//
//	func TestStore(t *testing.T) {
//		srv := pgtest.Start(t)        // one server for this test
//		dsn := srv.NewDatabase(t)     // an empty database, dropped at cleanup
//		...
//		srv.Restart(t)                // fast shutdown, start on the same data
//		srv.Kill()                    // SIGKILL: a crash; srv.Start(t) recovers
//	}
//
// Run makes initdb run once per test binary and each server start from a
// copy of that cluster (initdb takes seconds on a loaded machine), and
// removes it at the end. A package that shares one server between its
// tests makes it with New in TestMain and calls Close after m.Run.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the role every connection string names.
const Superuser = "postgres"

// Port names the socket file (.s.PGSQL.5432); nothing listens on TCP.
const Port = 5432

// ErrClosed is returned when a server is used after Close.
var ErrClosed = errors.New("pgtest: server closed")

// Options configure a server. The zero value is the default: durable (fsync
// on), started within 2 minutes, stopped within 2 minutes.
type Options struct {
	// NoFsync turns fsync, synchronous_commit and full_page_writes off.
	// For benchmarks of something other than durability and for tests
	// that never crash the server; benchmarks that compare against
	// bbolt (which syncs) keep fsync on.
	NoFsync bool
	// Settings are extra postgresql.conf settings (name → value) that
	// replace the defaults; the socket and listen settings must stay.
	Settings map[string]string
	// StartTimeout bounds initdb and each start (default 2 minutes; Start
	// also stops before the test's deadline).
	StartTimeout time.Duration
	// StopTimeout bounds each stop before the processes are killed
	// (default 2 minutes).
	StopTimeout time.Duration
}

// Server is one PostgreSQL server. Its methods may be called from several
// goroutines; those taking a testing.TB fail the test, so call them from
// the test's goroutine.
type Server struct {
	opts Options
	acct account
	base string // owned by the server's user, mode 0700
	data string
	sock string
	// dataReal is data with symbolic links resolved, as /proc shows
	// the processes' working directory; "" until initdb has made it.
	dataReal string
	logf     *os.File
	dbs      atomic.Int64

	mu     sync.Mutex
	cmd    *exec.Cmd // the running postmaster, nil when stopped
	exited chan struct{}
	paused bool
	closed bool
}

// Start starts a server for t with the default Options and stops it and
// removes its files at t's cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with opts.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	ctx, cancel := testContext(t, withDefaults(opts).StartTimeout)
	defer cancel()
	s, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pgtest: server log (end):\n%s", lastBytes([]byte(s.Log()), 8000))
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// New starts a server; ctx bounds initdb and the start (with
// Options.StartTimeout). The caller must Close it: New is for TestMain
// and other places without a testing.TB.
func New(ctx context.Context, opts Options) (*Server, error) {
	opts = withDefaults(opts)
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	acct, err := setup()
	if err != nil {
		return nil, err
	}
	base, err := makeBase(acct)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, acct: acct, base: base,
		data: filepath.Join(base, "data"), sock: filepath.Join(base, "sock")}
	if err := s.init(ctx); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

func (s *Server) init(ctx context.Context) error {
	if n := len(s.sock) + len("/.s.PGSQL.5432"); n > 107 {
		return fmt.Errorf("pgtest: socket path under %s is %d bytes, over the 107 a unix socket allows: use a shorter TMPDIR", s.base, n)
	}
	if err := mkdirOwned(s.sock, s.acct); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(s.base, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	s.logf = f
	if err := s.initCluster(ctx); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(s.data)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	s.dataReal = real
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked(ctx)
}

func withDefaults(o Options) Options {
	if o.StartTimeout <= 0 {
		o.StartTimeout = 2 * time.Minute
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 2 * time.Minute
	}
	return o
}

// testContext is t's context bounded by d and by t's deadline, less a
// margin so that the failure is reported before the test binary panics.
func testContext(t testing.TB, d time.Duration) (context.Context, context.CancelFunc) {
	ctx := t.Context()
	if dt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if end, ok := dt.Deadline(); ok {
			if margin := time.Until(end) / 10; d > time.Until(end)-margin {
				d = time.Until(end) - margin
			}
		}
	}
	return context.WithTimeout(ctx, d)
}

// ConnString returns a connection string (keyword=value form, as pgx and
// libpq read it) for database dbname as the superuser.
func (s *Server) ConnString(dbname string) string {
	q := func(v string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", q(s.sock), Port, Superuser, q(dbname))
}

// SocketDir is the directory of the server's unix socket.
func (s *Server) SocketDir() string { return s.sock }

// DataDir is the server's data directory.
func (s *Server) DataDir() string { return s.data }

// Pid is the postmaster's process id (also its process group), 0 when the
// server is stopped.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Log returns the server's log so far (all its starts), for diagnostics.
func (s *Server) Log() string {
	b, err := os.ReadFile(filepath.Join(s.base, "server.log"))
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	return string(b)
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase creates an empty database with a name unique on this server
// and returns its connection string; the database is dropped at t's
// cleanup (its connections terminated) if the server is running and not
// paused then.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("t_%s_%d", name, s.dbs.Add(1))
	ctx, cancel := testContext(t, s.opts.StartTimeout)
	defer cancel()
	if err := s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if !s.running() {
			return // stopped, killed or paused: the database goes with the server
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.StopTimeout)
		defer cancel()
		if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.ConnString(name)
}

func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.ConnString(Superuser))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// TerminateBackends ends the client connections to the databases of the
// given connection strings (as NewDatabase returns them), or to every
// database when none is given, with pg_terminate_backend, and waits until
// those backends have exited. It returns how many it ended (a client that
// disconnected meanwhile is not counted). New connections are accepted as
// before.
func (s *Server) TerminateBackends(t testing.TB, dsns ...string) int {
	t.Helper()
	var dbs []string
	for _, dsn := range dsns {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		dbs = append(dbs, cfg.Database)
	}
	ctx, cancel := testContext(t, s.opts.StopTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.ConnString(Superuser))
	if err != nil {
		t.Fatalf("pgtest: terminate backends: %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `
		SELECT pid, pg_terminate_backend(pid, $1) FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
		  AND ($2::text[] IS NULL OR datname = ANY($2::text[]))`,
		s.opts.StopTimeout.Milliseconds(), dbs)
	if err != nil {
		t.Fatalf("pgtest: terminate backends: %v", err)
	}
	var ended int
	var failed []int32 // not ended by us: exited on their own, or did not exit in time
	var pid int32
	var ok bool
	if _, err := pgx.ForEachRow(rows, []any{&pid, &ok}, func() error {
		if ok {
			ended++
		} else {
			failed = append(failed, pid)
		}
		return nil
	}); err != nil {
		t.Fatalf("pgtest: terminate backends: %v", err)
	}
	if len(failed) > 0 {
		var alive []int32
		rows, _ := conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE pid = ANY($1)", failed)
		if alive, err = pgx.CollectRows(rows, pgx.RowTo[int32]); err != nil {
			t.Fatalf("pgtest: terminate backends: %v", err)
		}
		if len(alive) > 0 {
			t.Fatalf("pgtest: terminate backends: %v did not exit within %v", alive, s.opts.StopTimeout)
		}
	}
	return ended
}

// Start starts the stopped or killed server again on its data directory
// (after a Kill, PostgreSQL recovers from its write-ahead log) and waits
// until it accepts connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := testContext(t, s.opts.StartTimeout)
	defer cancel()
	if err := s.StartContext(ctx); err != nil {
		t.Fatal(err)
	}
}

// StartContext is Start for goroutines other than the test's; ctx bounds
// the wait (with Options.StartTimeout).
func (s *Server) StartContext(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.StartTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked(ctx)
}

// Restart stops the server with a fast shutdown (open transactions rolled
// back, clients disconnected) and starts it again on the same data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	s.Start(t)
}

// Stop stops the server with a fast shutdown and waits until all its
// processes have exited. Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGINT)
}

// Kill SIGKILLs the postmaster and then every process it started, as a
// crash of the database host would (nothing is flushed or shut down), and
// waits until they are gone. Start recovers.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.killLocked()
}

// Pause SIGSTOPs every process of the server: connections stay open but
// nothing answers, as when the database host is cut off. Resume undoes it;
// Stop, Kill and Close work on a paused server.
func (s *Server) Pause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errNotRunning
	}
	if s.paused {
		return nil
	}
	return s.pauseLocked()
}

// Resume SIGCONTs the processes Pause stopped.
func (s *Server) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errNotRunning
	}
	s.signalAllLocked(syscall.SIGCONT)
	s.paused = false
	return nil
}

var errNotRunning = errors.New("pgtest: the server is not running")

// running reports whether the server is started and not paused.
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil && !s.paused
}

// Close stops the server (killing it if it does not stop in time) and
// removes its directory. It may be called more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.stopLocked(syscall.SIGINT)
	err = errors.Join(err, s.removeStaleShm())
	if s.logf != nil {
		s.logf.Close()
	}
	return errors.Join(err, os.RemoveAll(s.base))
}
