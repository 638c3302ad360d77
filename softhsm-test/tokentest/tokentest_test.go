package tokentest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The machine's opencryptoki is taken over for the test and put back as
// it was; the token is fresh for each use, and real (pkcs11-tool lists it).
func TestOpenCryptoki(t *testing.T) {
	before, err := os.ReadFile(ockConf)
	if err != nil {
		t.Fatal(err)
	}
	beforeDir, err := os.Lstat(ockTokenDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("use", func(t *testing.T) {
		o := StartOpenCryptoki(t)
		if conf, _ := os.ReadFile(ockConf); string(conf) != ockSlotConf {
			t.Fatalf("opencryptoki.conf during the test:\n%s", conf)
		}
		for _, label := range []string{"tokentest-a", "tokentest-b"} {
			t.Run(label, func(t *testing.T) {
				tok := o.Token(t, label)
				out, err := exec.Command("pkcs11-tool", "--module", tok.Module, "-L").CombinedOutput()
				if err != nil {
					t.Fatalf("pkcs11-tool -L: %v\n%s", err, out)
				}
				if !strings.Contains(string(out), "token label        : "+label) {
					t.Fatalf("pkcs11-tool -L does not list %s:\n%s", label, out)
				}
			})
		}
	})
	if conf, _ := os.ReadFile(ockConf); string(conf) != string(before) {
		t.Errorf("opencryptoki.conf not restored:\n%s", conf)
	}
	if after, err := os.Lstat(ockTokenDir); err != nil || after.Mode() != beforeDir.Mode() || after.Mode()&os.ModeSymlink != 0 {
		t.Errorf("token directory not restored: %v %v", after, err)
	}
	if _, err := os.Stat(ockStateFile); !os.IsNotExist(err) {
		t.Errorf("state file left behind: %v", err)
	}
	if pid := otherDaemon(); pid != 0 {
		t.Errorf("pkcsslotd %d still running", pid)
	}
}

func TestNSS(t *testing.T) {
	tok := NewNSS(t, t.TempDir())
	if tok.Label != NSSTokenLabel || !strings.Contains(tok.ModuleParams, "configdir='sql:") {
		t.Fatalf("token %+v", tok)
	}
	db := strings.TrimSuffix(strings.TrimPrefix(tok.ModuleParams[strings.Index(tok.ModuleParams, "sql:"):], "sql:"), "' certPrefix='' keyPrefix='' secmod='secmod.db' flags=")
	for _, f := range []string{"cert9.db", "key4.db"} {
		if _, err := os.Stat(filepath.Join(db, f)); err != nil {
			t.Fatalf("NSS database: %v", err)
		}
	}
}

func TestSoftHSM(t *testing.T) {
	dir := t.TempDir()
	a := NewSoftHSM(t, dir, "tokentest-1")
	NewSoftHSM(t, dir, "tokentest-2")
	cmd := exec.Command("softhsm2-util", "--show-slots")
	cmd.Env = append(os.Environ(), a.Env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, l := range []string{"tokentest-1", "tokentest-2"} {
		if !strings.Contains(string(out), l) {
			t.Errorf("softhsm2-util does not list %s", l)
		}
	}
}

// A run killed while it holds opencryptoki (its daemon still running, the
// configuration and token directory still switched) is undone by the next
// set-up, which then works, and the machine ends as it began.
func TestOpenCryptokiAfterKilledRun(t *testing.T) {
	if os.Getenv("TOKENTEST_KILLED_RUN") == "1" {
		return // the child's part is in TestOpenCryptokiKilledChild
	}
	before, err := os.ReadFile(ockConf)
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestOpenCryptokiKilledChild$", "-test.count=1")
	child.Env = append(os.Environ(), "TOKENTEST_KILLED_RUN=1")
	out, err := child.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed: %v\n%s", err, out)
	}
	if _, err := os.Stat(ockStateFile); err != nil {
		t.Fatalf("the killed run left no record: %v", err)
	}
	if otherDaemon() == 0 {
		t.Fatal("the killed run's pkcsslotd is not running")
	}
	t.Run("again", func(t *testing.T) {
		o := StartOpenCryptoki(t)
		tok := o.Token(t, "tokentest-again")
		if out, err := exec.Command("pkcs11-tool", "--module", tok.Module, "-L").CombinedOutput(); err != nil || !strings.Contains(string(out), "tokentest-again") {
			t.Fatalf("pkcs11-tool -L: %v\n%s", err, out)
		}
	})
	if conf, _ := os.ReadFile(ockConf); string(conf) != string(before) {
		t.Errorf("opencryptoki.conf not restored:\n%s", conf)
	}
	if fi, err := os.Lstat(ockTokenDir); err != nil || fi.Mode()&os.ModeSymlink != 0 || !fi.IsDir() {
		t.Errorf("token directory not restored: %v %v", fi, err)
	}
	if pid := otherDaemon(); pid != 0 {
		t.Errorf("pkcsslotd %d still running", pid)
	}
}

// TestOpenCryptokiKilledChild is the child of TestOpenCryptokiAfterKilledRun:
// it takes opencryptoki and is killed without cleaning up.
func TestOpenCryptokiKilledChild(t *testing.T) {
	if os.Getenv("TOKENTEST_KILLED_RUN") != "1" {
		return
	}
	o := StartOpenCryptoki(t)
	o.Token(t, "tokentest-killed")
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // not reached
}
