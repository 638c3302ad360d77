package pgtest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sys/unix"

	"github.com/nanokms/nanokms/internal/pgtest"
)

// helperEnv selects a helper mode of TestHelperProcess in a child test
// binary, which runs without pgtest.Run (so initdb runs per server).
const helperEnv = "PGTEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(m.Run())
	}
	os.Exit(pgtest.Run(m))
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func show(t *testing.T, conn *pgx.Conn, name string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(t.Context(), "SHOW "+name).Scan(&v); err != nil {
		t.Fatalf("SHOW %s: %v", name, err)
	}
	return v
}

// values returns the kv table's values in key order.
func values(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), "SELECT v FROM kv ORDER BY k")
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	return vs
}

// wantConnError checks that a query on conn fails because the connection
// is gone (terminated, or the server stopped or died), not for any other
// reason.
func wantConnError(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	_, err := conn.Exec(t.Context(), "SELECT 1")
	if err == nil {
		t.Fatal("query on a cut-off connection succeeded")
	}
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		if pgErr.Severity != "FATAL" || !strings.HasPrefix(pgErr.Code, "57P") {
			t.Fatalf("query failed with %v, want a FATAL operator intervention (57P..)", err)
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
	default:
		t.Fatalf("query failed with %v (%T), want a connection error", err, err)
	}
	if !conn.IsClosed() {
		t.Fatalf("after %v the connection is not closed", err)
	}
}

func TestDatabases(t *testing.T) {
	srv := pgtest.Start(t)
	a, b := srv.NewDatabase(t), srv.NewDatabase(t)
	if a == b {
		t.Fatalf("two databases with one connection string %q", a)
	}
	ca, cb := connect(t, a), connect(t, b)
	mustExec(t, ca, "CREATE TABLE kv (k int PRIMARY KEY, v text NOT NULL)")
	mustExec(t, ca, "INSERT INTO kv VALUES (1, 'one'), (2, 'two')")
	if got := values(t, ca); strings.Join(got, ",") != "one,two" {
		t.Fatalf("read back %q", got)
	}
	var pgErr *pgconn.PgError
	if _, err := cb.Exec(t.Context(), "SELECT * FROM kv"); !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Fatalf("table of database a seen from b: %v, want undefined_table", err)
	}

	for name, want := range map[string]string{
		"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on",
		"listen_addresses": "", "max_connections": "200",
		"unix_socket_directories": srv.SocketDir(),
	} {
		if got := show(t, ca, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if uid, owner := procUid(t, srv.Pid()), uidOf(t, srv.DataDir()); uid == 0 || uid != owner {
		t.Errorf("postmaster runs as uid %d; want the data directory's owner %d, not root", uid, owner)
	}

	var name string
	var inner *pgx.Conn
	t.Run("dropped at cleanup", func(t *testing.T) {
		var err error
		inner, err = pgx.Connect(t.Context(), srv.NewDatabase(t)) // left open: the drop ends it
		if err != nil {
			t.Fatal(err)
		}
		if err := inner.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	defer inner.Close(context.Background())
	var n int
	if err := ca.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil || n != 0 {
		t.Fatalf("database %q after its test: count %d, %v", name, n, err)
	}
	wantConnError(t, inner)
}

func procUid(t *testing.T, pid int) int {
	t.Helper()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return uid
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return -1
}

func uidOf(t *testing.T, path string) int {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}

func TestOptions(t *testing.T) {
	srv := pgtest.StartWith(t, pgtest.Options{NoFsync: true, Settings: map[string]string{"work_mem": "8MB"}})
	c := connect(t, srv.NewDatabase(t))
	for name, want := range map[string]string{
		"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "work_mem": "8MB",
	} {
		if got := show(t, c, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

// writeAndOpen commits row 1 and leaves row 2 in an open transaction, on
// two connections; it returns the connection of the open transaction.
func writeAndOpen(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c := connect(t, dsn)
	mustExec(t, c, "CREATE TABLE kv (k int PRIMARY KEY, v text NOT NULL)")
	mustExec(t, c, "INSERT INTO kv VALUES (1, 'committed')")
	open := connect(t, dsn)
	mustExec(t, open, "BEGIN")
	mustExec(t, open, "INSERT INTO kv VALUES (2, 'never committed')")
	return open
}

const crashed = "database system was not properly shut down"

func TestRestartKeepsData(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	open := writeAndOpen(t, dsn)
	before := srv.Pid()
	pids := serverPids(t, srv, connect(t, dsn))

	srv.Restart(t)
	if srv.Pid() == before || srv.Pid() == 0 {
		t.Fatalf("postmaster %d before the restart, %d after", before, srv.Pid())
	}
	if left := stillAlive(pids, dataDir(t, srv)); len(left) != 0 {
		t.Fatalf("processes %v of the first start outlived the restart", left)
	}
	wantConnError(t, open)
	if got := values(t, connect(t, dsn)); strings.Join(got, ",") != "committed" {
		t.Fatalf("after restart: %q, want only the committed row", got)
	}
	if strings.Contains(srv.Log(), crashed) {
		t.Fatalf("a fast shutdown needed crash recovery:\n%s", srv.Log())
	}
}

func TestKillRecovers(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	open := writeAndOpen(t, dsn)
	pids := serverPids(t, srv, connect(t, dsn))
	if got := srv.Processes(); !subset(pids, got) {
		t.Fatalf("Processes() = %v, missing some of %v", got, pids)
	}

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if srv.Pid() != 0 {
		t.Fatalf("Pid after Kill = %d", srv.Pid())
	}
	if left := procsIn(dataDir(t, srv)); len(left) != 0 {
		t.Fatalf("processes %v left after Kill", left)
	}
	if left := stillAlive(pids, dataDir(t, srv)); len(left) != 0 {
		t.Fatalf("processes %v alive after Kill", left)
	}
	wantConnError(t, open)

	srv.Start(t)
	if got := values(t, connect(t, dsn)); strings.Join(got, ",") != "committed" {
		t.Fatalf("after crash recovery: %q, want only the committed row", got)
	}
	if !strings.Contains(srv.Log(), crashed) {
		t.Fatalf("no crash recovery after Kill; log:\n%s", srv.Log())
	}
}

func TestTerminateBackends(t *testing.T) {
	srv := pgtest.Start(t)
	a, b := srv.NewDatabase(t), srv.NewDatabase(t)
	ca, cb := connect(t, a), connect(t, b)

	if n := srv.TerminateBackends(t, a); n != 1 {
		t.Fatalf("TerminateBackends(a) ended %d backends, want 1", n)
	}
	wantConnError(t, ca)
	mustExec(t, cb, "SELECT 1") // another database's connection is untouched

	if n := srv.TerminateBackends(t); n != 1 {
		t.Fatalf("TerminateBackends() ended %d backends, want 1", n)
	}
	wantConnError(t, cb)
	mustExec(t, connect(t, a), "SELECT 1") // new connections are accepted
}

func TestPauseResume(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	c := connect(t, dsn)
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	// A paused server cannot answer, however long the wait: the deadline
	// only bounds the test.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Exec(ctx, "SELECT 1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("query on a paused server: %v, want the deadline to pass", err)
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, connect(t, dsn), "SELECT 1")
	if err := srv.Pause(); err != nil { // left paused: Close must still stop it
		t.Fatal(err)
	}
}

// serverPids returns the postmaster's pid and every pid pg_stat_activity
// lists (client backends and PostgreSQL's own processes).
func serverPids(t *testing.T, srv *pgtest.Server, c *pgx.Conn) []int {
	t.Helper()
	rows, err := c.Query(t.Context(), "SELECT pid FROM pg_stat_activity")
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil || len(pids) < 3 {
		t.Fatalf("pg_stat_activity pids %v, %v", pids, err)
	}
	return append(pids, srv.Pid())
}

func subset(a, b []int) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func dataDir(t *testing.T, srv *pgtest.Server) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(srv.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// aliveIn reports whether pid is a live process whose working directory
// is in dir (PostgreSQL's processes work in their data directory). This
// check is the test's own, independent of the package's.
func aliveIn(pid int, dir string) bool {
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	return err == nil && (cwd == dir || strings.HasPrefix(cwd, dir+"/") || strings.HasPrefix(cwd, dir+" "))
}

func stillAlive(pids []int, dir string) []int {
	var left []int
	for _, pid := range pids {
		if aliveIn(pid, dir) {
			left = append(left, pid)
		}
	}
	return left
}

// procsIn lists every live process working in dir.
func procsIn(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && aliveIn(pid, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestCleanupLeavesNothing(t *testing.T) {
	var pids []int
	var dir string
	t.Run("server", func(t *testing.T) {
		srv := pgtest.Start(t)
		dir = dataDir(t, srv)
		pids = serverPids(t, srv, connect(t, srv.NewDatabase(t)))
		leaked, err := pgx.Connect(context.Background(), srv.ConnString(pgtest.Superuser))
		if err != nil {
			t.Fatal(err)
		}
		_ = leaked // never closed: cleanup must not wait for it
	})
	checkGone(t, pids, dir)

	// A test that fails: its cleanup still stops the server.
	out, pids, dir := helper(t, "fail", false)
	if !strings.Contains(out, "deliberate failure") {
		t.Fatalf("helper output:\n%s", out)
	}
	checkGone(t, pids, dir)

	// A test binary killed outright (no cleanup at all): the kernel's
	// parent-death signal kills the postmaster, and its children exit
	// when they see it gone.
	_, pids, dir = helper(t, "hang", true)
	waitGone(t, pids, dir)
	removeKilled(t, filepath.Dir(dir))
}

// checkGone checks that no process is left of a server that worked in
// data directory dir, and that its directory is removed.
func checkGone(t *testing.T, pids []int, dir string) {
	t.Helper()
	if len(pids) == 0 {
		t.Fatal("no processes recorded")
	}
	if left := stillAlive(pids, dir); len(left) != 0 {
		t.Errorf("processes %v of the server left after cleanup", left)
	}
	if left := procsIn(dir); len(left) != 0 {
		t.Errorf("processes %v working in %s after cleanup", left, dir)
	}
	if _, err := os.Stat(filepath.Dir(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("server directory %s after cleanup: %v", filepath.Dir(dir), err)
	}
}

// helper runs TestHelperProcess in a child test binary in mode and returns
// its output, its server's processes and data directory. With kill, the
// child is SIGKILLed once its server runs.
func helper(t *testing.T, mode string, kill bool) (string, []int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	stdin, err := cmd.StdinPipe() // held open: the hanging child waits on it
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	var pids []int
	var dir string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "SERVER" {
			continue
		}
		dir = f[1]
		for _, p := range f[2:] {
			pid, err := strconv.Atoi(p)
			if err != nil {
				t.Fatalf("helper line %q", sc.Text())
			}
			pids = append(pids, pid)
		}
		if kill {
			cmd.Process.Kill()
		}
	}
	err = cmd.Wait()
	if len(pids) == 0 {
		t.Fatalf("helper %s printed no server (%v):\n%s", mode, err, out.String())
	}
	if err == nil {
		t.Fatalf("helper %s succeeded, want it to fail:\n%s", mode, out.String())
	}
	return out.String(), pids, dir
}

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return // run by TestCleanupLeavesNothing in a child process only
	}
	srv := pgtest.Start(t)
	pids := serverPids(t, srv, connect(t, srv.NewDatabase(t)))
	fmt.Println("SERVER", dataDir(t, srv), strings.Trim(fmt.Sprint(pids), "[]"))
	if mode == "hang" {
		io.Copy(io.Discard, os.Stdin) // until the parent kills us
	}
	t.Fatal("deliberate failure")
}

// waitGone waits until none of pids is alive in dir (at most 2 minutes:
// a bound, not an expected time).
func waitGone(t *testing.T, pids []int, dir string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone
		}
		if aliveIn(pid, dir) {
			ms := int(time.Until(deadline).Milliseconds())
			for ms > 0 {
				n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
				if n != 0 || (err != nil && !errors.Is(err, unix.EINTR)) {
					break
				}
				ms = int(time.Until(deadline).Milliseconds())
			}
		}
		unix.Close(fd)
	}
	if left := procsIn(dir); len(left) != 0 {
		t.Fatalf("processes %v outlived their killed test binary", left)
	}
}

// removeKilled removes what a killed test binary's server left: its
// directory and its System V shared memory segment (line 7 of
// postmaster.pid: key and id).
func removeKilled(t *testing.T, dir string) {
	t.Helper()
	pidFile, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatalf("the killed server left no postmaster.pid: %v", err)
	}
	if lines := strings.Split(string(pidFile), "\n"); len(lines) > 6 {
		if f := strings.Fields(lines[6]); len(f) == 2 {
			if id, err := strconv.Atoi(f[1]); err == nil {
				unix.SysvShmCtl(id, unix.IPC_RMID, nil)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
}
