// Package killtest runs the nanokms binaries as subprocesses for the tests
// that kill them: it builds a command once per test binary, starts it with
// its arguments, environment and a log file, waits for it to be ready by a
// real signal (its health service, or a line it logs), SIGKILLs or
// SIGTERMs it, and shows the log's tail when the test fails.
//
// It is for tests only (scripts/test.sh fails if production code imports
// it). It never waits by sleeping: readiness is polled with a bounded
// backoff and fails early when the process exits. Every process it starts
// is killed when the test that made it ends; the test binary's TestMain
// calls Cleanup to remove the binaries it built.
package killtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// BinDirEnv names the environment variable of a directory that holds the
// commands already built (named as the command's directory: nanokms,
// nanokms-cold); Build uses them instead of building.
const BinDirEnv = "NANOKMS_TEST_BINDIR"

// Module is the import path of the nanokms module.
const Module = "github.com/nanokms/nanokms"

var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
}

// Build returns the path of the command cmd of the module (such as
// "cmd/nanokms-cold"), built without -race or the test's other flags. The
// first call in a test binary builds it; later calls reuse it.
func Build(t testing.TB, cmd string) string {
	t.Helper()
	name := path.Base(cmd)
	if dir := os.Getenv(BinDirEnv); dir != "" {
		bin := filepath.Join(dir, name)
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s=%s: %v", BinDirEnv, dir, err)
		}
		return bin
	}
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if bin, ok := builds.bins[cmd]; ok {
		return bin
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building %s needs the go command: %v", cmd, err)
	}
	if builds.dir == "" {
		if builds.dir, err = os.MkdirTemp("", "nanokms-killtest-"); err != nil {
			t.Fatal(err)
		}
		builds.bins = map[string]string{}
	}
	bin := filepath.Join(builds.dir, name)
	start := time.Now()
	c := exec.Command(goBin, "build", "-o", bin, Module+"/"+cmd)
	c.Env = append(os.Environ(), "GOFLAGS=") // no -race or other test flags for the child
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", cmd, err, out)
	}
	t.Logf("built %s in %s", bin, time.Since(start).Round(time.Millisecond))
	builds.bins[cmd] = bin
	return bin
}

// Cleanup removes the binaries Build built. Call it from TestMain after
// the tests have run.
func Cleanup() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
		builds.dir, builds.bins = "", nil
	}
}

// Proc is one command that a test starts, kills and restarts. Its methods
// are safe for concurrent use.
type Proc struct {
	t    testing.TB
	name string
	bin  string
	args []string
	logf string
	env  []string // nil: the test process's environment

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current process has exited
	err    error         // its exit status, once exited is closed
	starts int
	kills  int
}

// New returns the process name (for messages) of the command bin with
// args, logging its standard output and error to logPath. When the test
// ends a process still running is SIGKILLed, and if the test failed the
// log's tail is shown.
func New(t testing.TB, name, logPath, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, name: name, bin: bin, args: args, logf: logPath}
	t.Cleanup(func() {
		p.mu.Lock()
		cmd, exited := p.cmd, p.exited
		p.mu.Unlock()
		if cmd != nil {
			select {
			case <-exited:
			default:
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, p.LogTail(40))
		}
	})
	return p
}

// SetEnv sets the environment of the processes started from now on (nil:
// the test process's).
func (p *Proc) SetEnv(env []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.env = env
}

// Name returns the process's name.
func (p *Proc) Name() string { return p.name }

// LogPath returns the path of the process's log.
func (p *Proc) LogPath() string { return p.logf }

// Start starts a new process; the previous one must have exited.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.exited:
		default:
			return fmt.Errorf("%s: started while the previous process runs", p.name)
		}
	}
	logf, err := os.OpenFile(p.logf, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	p.starts++
	fmt.Fprintf(logf, "--- start %d\n", p.starts)
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies (a panic, a timeout), the child goes too:
	// Pdeathsig where the platform has it (Linux), set by name so that
	// the package builds everywhere.
	attr := &syscall.SysProcAttr{}
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.err = cmd, exited, nil
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

// MustStart is Start that fails the test on an error. Call it from the
// test's goroutine only.
func (p *Proc) MustStart() {
	p.t.Helper()
	if err := p.Start(); err != nil {
		p.t.Fatal(err)
	}
}

// Exited returns a channel closed when the current process has exited (a
// closed channel if none was started).
func (p *Proc) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.exited
}

// HasExited reports whether the current process has exited, and how.
func (p *Proc) HasExited() (bool, error) {
	select {
	case <-p.Exited():
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.err
	default:
		return false, nil
	}
}

// Kill SIGKILLs the process and waits until it is gone. A process that
// had exited by itself is an error.
func (p *Proc) Kill() error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s: killed before it was started", p.name)
	}
	if gone, err := p.HasExited(); gone {
		return fmt.Errorf("%s exited by itself (%v) before it was killed", p.name, err)
	}
	p.mu.Lock()
	p.kills++
	p.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-exited
	return nil
}

// MustKill is Kill that fails the test on an error. Call it from the
// test's goroutine only.
func (p *Proc) MustKill() {
	p.t.Helper()
	if err := p.Kill(); err != nil {
		p.t.Fatal(err)
	}
}

// Terminate stops the process with SIGTERM and returns its exit status. If
// it has not exited within timeout it is SIGKILLed and the error says so.
func (p *Proc) Terminate(timeout time.Duration) error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s: terminated before it was started", p.name)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-exited:
		_, err := p.HasExited()
		return err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%s did not stop within %s of SIGTERM", p.name, timeout)
	}
}

// Starts returns how many processes were started.
func (p *Proc) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Kills returns how many processes were SIGKILLed.
func (p *Proc) Kills() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kills
}

// LogCount counts the occurrences of s in the process's log.
func (p *Proc) LogCount(s string) int {
	data, _ := os.ReadFile(p.logf)
	return bytes.Count(data, []byte(s))
}

// LogTail returns the last n lines of the process's log.
func (p *Proc) LogTail(n int) string {
	data, err := os.ReadFile(p.logf)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// ErrExited is returned by WaitReady when the process exits before it is
// ready.
var ErrExited = errors.New("exited before it was ready")

// WaitReady calls ready with a bounded backoff until it returns true, the
// process exits (ErrExited, with the exit status and the log's tail) or
// limit passes.
func (p *Proc) WaitReady(limit time.Duration, what string, ready func() bool) error {
	exited := p.Exited()
	deadline := time.Now().Add(limit)
	pause := time.Millisecond
	for !ready() {
		if gone, err := p.HasExited(); gone {
			return fmt.Errorf("%s %w (%v) (waiting until %s):\n%s", p.name, ErrExited, err, what, p.LogTail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not %s within %s", p.name, what, limit)
		}
		select {
		case <-exited:
		case <-time.After(pause):
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
	return nil
}

// WaitLogged waits until the log holds at least n occurrences of s (a
// line the process logs once per start when it is ready: pass Starts()).
func (p *Proc) WaitLogged(limit time.Duration, s string, n int) error {
	return p.WaitReady(limit, fmt.Sprintf("logged %q %d times", s, n), func() bool { return p.LogCount(s) >= n })
}

// WaitServing waits until the gRPC health service reached through health
// answers SERVING.
func (p *Proc) WaitServing(limit time.Duration, health healthpb.HealthClient) error {
	return p.WaitReady(limit, "serving (gRPC health)", func() bool { return Serving(health) })
}

// Serving reports whether health answers SERVING within a short timeout.
func Serving(health healthpb.HealthClient) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
}

// Dial returns a client connection to the Unix socket sock that outlives
// the processes serving it: it reconnects within milliseconds of a
// restart. It is closed when the test ends.
func Dial(t testing.TB, sock string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 2 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 50 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
