package killtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary is its own subprocess: with KILLTEST_HELPER set it acts
// as the helper command instead of running the tests.
func TestMain(m *testing.M) {
	switch os.Getenv("KILLTEST_HELPER") {
	case "":
		os.Exit(m.Run())
	case "exit":
		fmt.Println("failing at once")
		os.Exit(3)
	case "serve":
		// Ready once it has said so; SIGTERM ends it with status 0.
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("ready")
		<-c
		os.Exit(0)
	case "deaf":
		// Ready, and ignores SIGTERM.
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		select {}
	}
}

func helper(t *testing.T, mode string) *Proc {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := New(t, mode, filepath.Join(t.TempDir(), mode+".log"), bin)
	p.SetEnv(append(os.Environ(), "KILLTEST_HELPER="+mode))
	p.MustStart()
	return p
}

func TestReadyKillRestartTerminate(t *testing.T) {
	p := helper(t, "serve")
	if err := p.WaitLogged(30*time.Second, "ready", p.Starts()); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err == nil {
		t.Fatal("a second Start while the process runs succeeded")
	}
	p.MustKill()
	if gone, err := p.HasExited(); !gone || err == nil {
		t.Fatalf("after Kill: exited %v, status %v; want exited by a signal", gone, err)
	}
	p.MustStart()
	if err := p.WaitLogged(30*time.Second, "ready", 2); err != nil {
		t.Fatal(err)
	}
	if err := p.Terminate(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v, want a clean exit", err)
	}
	if p.Starts() != 2 || p.Kills() != 1 {
		t.Fatalf("%d starts, %d kills; want 2, 1", p.Starts(), p.Kills())
	}
	if log := p.LogTail(10); !strings.Contains(log, "--- start 2\nready") {
		t.Fatalf("log tail %q lacks the second start", log)
	}
}

func TestExitBeforeReady(t *testing.T) {
	p := helper(t, "exit")
	err := p.WaitLogged(30*time.Second, "ready", 1)
	if !errors.Is(err, ErrExited) {
		t.Fatalf("WaitLogged = %v, want ErrExited", err)
	}
	var ee *exec.ExitError
	if _, status := p.HasExited(); !errors.As(status, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exit status %v, want 3", status)
	}
	if err := p.Kill(); err == nil {
		t.Fatal("Kill of a process that exited by itself reported no error")
	}
}

func TestTerminateTimeoutKills(t *testing.T) {
	p := helper(t, "deaf")
	if err := p.WaitLogged(30*time.Second, "ready", 1); err != nil {
		t.Fatal(err)
	}
	if err := p.Terminate(200 * time.Millisecond); err == nil {
		t.Fatal("Terminate of a process that ignores SIGTERM reported no error")
	}
	if gone, _ := p.HasExited(); !gone {
		t.Fatal("the process still runs after Terminate gave up")
	}
}

func TestCleanupKillsTheProcess(t *testing.T) {
	var pid int
	t.Run("inner", func(t *testing.T) {
		p := helper(t, "deaf")
		if err := p.WaitLogged(30*time.Second, "ready", 1); err != nil {
			t.Fatal(err)
		}
		p.mu.Lock()
		pid = p.cmd.Process.Pid
		p.mu.Unlock()
	})
	// The inner test's cleanup has killed and reaped it: the pid is gone.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d after the test's cleanup: kill(0) = %v, want ESRCH", pid, err)
	}
}
