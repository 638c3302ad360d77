package dev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// The bench's PostgreSQL server: the same approach as the tests'
// (internal/pgtest, which only tests may link): Debian's PostgreSQL 15,
// installed with apt-get when missing (as root), a cluster made by initdb
// in a temporary directory and served on a Unix socket only, as an
// unprivileged system user when the bench runs as root (PostgreSQL refuses
// to run as root). Its settings are the defaults but for the socket and
// the logging: fsync and synchronous_commit stay on, as bbolt's commits
// are synced.
const (
	benchPGBin  = "/usr/lib/postgresql/15/bin"
	benchPGUser = "nanokms-pgtest" // the account the tests' servers run as too
	benchPGPort = 5432
)

// benchPG is a running PostgreSQL server of the bench.
type benchPG struct {
	base   string // owned by the server's user, mode 0700
	sock   string
	cmd    *exec.Cmd
	exited chan struct{}
	dbs    int
}

// startBenchPG installs PostgreSQL if it must, makes a cluster under dir
// ("" for the system's temporary directory) and starts it.
func startBenchPG(ctx context.Context, dir string, prog *benchProgress) (*benchPG, error) {
	if err := installBenchPG(prog); err != nil {
		return nil, err
	}
	cred, uid, gid, err := benchPGAccount()
	if err != nil {
		return nil, err
	}
	base, err := os.MkdirTemp(dir, "nanokms-bench-pg-")
	if err != nil {
		return nil, cli.WithHint(fmt.Errorf("making PostgreSQL's directory: %w", err), "choose another place with --dir")
	}
	p := &benchPG{base: base, sock: filepath.Join(base, "sock")}
	fail := func(err error) (*benchPG, error) { return nil, errors.Join(err, p.close()) }
	if err := os.Chown(base, uid, gid); err != nil {
		return fail(err)
	}
	if err := os.Mkdir(p.sock, 0o700); err != nil {
		return fail(err)
	}
	if err := os.Chown(p.sock, uid, gid); err != nil {
		return fail(err)
	}
	if n := len(p.sock) + len("/.s.PGSQL.5432"); n > benchSocketMax {
		return fail(cli.WithHint(fmt.Errorf("PostgreSQL's socket path would be %d bytes, over %d", n, benchSocketMax), "use a shorter --dir, such as /tmp"))
	}
	command := func(ctx context.Context, name string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, filepath.Join(benchPGBin, name), args...)
		cmd.Dir = base
		cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "TZ=UTC"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
		return cmd
	}
	data := filepath.Join(base, "data")
	prog.say("starting PostgreSQL 15 in %s", base)
	if out, err := command(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions").CombinedOutput(); err != nil {
		return fail(cli.WithHint(fmt.Errorf("initdb: %w\n%s", err, lastLines(out)), fmt.Sprintf("the server's user must be able to reach %s", base)))
	}
	// The postmaster outlives ctx: close stops it.
	p.cmd = command(context.Background(), "postgres", "-D", data, "-c", "listen_addresses=", "-c", "unix_socket_directories="+p.sock,
		"-c", "unix_socket_permissions=0700", "-c", "port="+strconv.Itoa(benchPGPort), "-c", "logging_collector=off", "-c", "log_min_messages=warning")
	logf, err := os.Create(filepath.Join(base, "server.log"))
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		p.cmd = nil
		return fail(fmt.Errorf("starting postgres: %w", err))
	}
	p.exited = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.exited) }()
	if err := p.waitReady(ctx); err != nil {
		log, _ := os.ReadFile(filepath.Join(base, "server.log"))
		return fail(fmt.Errorf("%w\nserver log (end):\n%s", err, lastLines(log)))
	}
	return p, nil
}

// waitReady connects until a connection succeeds, the server exits, or
// ctx (bounded to 2 minutes) ends.
func (p *benchPG) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	delay := 5 * time.Millisecond
	for {
		conn, err := pgx.Connect(ctx, p.connString("postgres"))
		if err == nil {
			return conn.Close(context.Background())
		}
		select {
		case <-p.exited:
			return fmt.Errorf("postgres exited during start-up: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready: %w", err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// connString is the connection string of database db.
func (p *benchPG) connString(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", p.sock, benchPGPort, db)
}

// newDatabase makes an empty database and returns its connection string.
func (p *benchPG) newDatabase(ctx context.Context) (string, error) {
	p.dbs++
	name := fmt.Sprintf("bench_%d", p.dbs)
	conn, err := pgx.Connect(ctx, p.connString("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return p.connString(name), nil
}

// cpu is the CPU time (user and system) the server's processes have
// used so far: the postmaster's own, that of its children it has reaped
// (connections closed) and that of its live children, read from /proc; 0
// where that cannot be read.
func (p *benchPG) cpu() time.Duration {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	pid := p.cmd.Process.Pid
	_, own, reaped, ok := procCPU(pid)
	if !ok {
		return 0
	}
	total := own + reaped
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if parent, c, _, ok := procCPU(child); ok && parent == pid {
			total += c
		}
	}
	return total
}

// procCPU reads /proc/pid/stat: the parent's pid, the process's CPU time
// and its reaped children's.
func procCPU(pid int) (ppid int, own, reaped time.Duration, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name, in parentheses, may hold spaces: the fields
	// start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	// f[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
	var v [5]int64
	for k, idx := range []int{1, 11, 12, 13, 14} {
		if v[k], err = strconv.ParseInt(f[idx], 10, 64); err != nil {
			return 0, 0, 0, false
		}
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return int(v[0]), time.Duration(v[1]+v[2]) * tick, time.Duration(v[3]+v[4]) * tick, true
}

// close stops the server (fast shutdown, then SIGKILL after a minute) and
// removes its directory.
func (p *benchPG) close() error {
	var errs []error
	if p.cmd != nil {
		p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.exited:
		case <-time.After(time.Minute):
			errs = append(errs, errors.New("postgres did not stop within a minute: killed"))
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	}
	return errors.Join(append(errs, os.RemoveAll(p.base))...)
}

// installBenchPG installs Debian's postgresql package when PostgreSQL 15
// is missing.
func installBenchPG(prog *benchProgress) error {
	if _, err := os.Stat(filepath.Join(benchPGBin, "postgres")); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return cli.WithHint(fmt.Errorf("PostgreSQL 15 is not installed (%s/postgres is missing)", benchPGBin), "run apt-get install postgresql as root, or run the bench as root")
	}
	prog.say("installing PostgreSQL (apt-get install postgresql)")
	apt := func(args ...string) error {
		cmd := exec.Command("apt-get", append([]string{"-o", "DPkg::Lock::Timeout=600"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, lastLines(out))
		}
		return nil
	}
	inst := []string{"install", "-y", "--no-install-recommends", "postgresql"}
	if err := apt(inst...); err != nil {
		if uerr := apt("update"); uerr != nil {
			return errors.Join(err, uerr)
		}
		return apt(inst...)
	}
	return nil
}

// benchPGAccount returns who the server runs as: this process's user, or,
// as root, benchPGUser (made with useradd --system when missing).
func benchPGAccount() (cred *syscall.Credential, uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return nil, os.Getuid(), os.Getgid(), nil
	}
	u, err := user.Lookup(benchPGUser)
	if err != nil {
		if out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", benchPGUser).CombinedOutput(); err != nil {
			// Another process may have made it meanwhile.
			if _, lerr := user.Lookup(benchPGUser); lerr != nil {
				return nil, 0, 0, fmt.Errorf("useradd %s: %w\n%s", benchPGUser, err, lastLines(out))
			}
		}
		if u, err = user.Lookup(benchPGUser); err != nil {
			return nil, 0, 0, err
		}
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil || uid == 0 {
		return nil, 0, 0, fmt.Errorf("user %s: uid %s: PostgreSQL refuses to run as root (%v)", benchPGUser, u.Uid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, uid, gid, nil
}

// lastLines returns the end of a program's output, trimmed.
func lastLines(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}
