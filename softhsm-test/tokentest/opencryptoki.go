package tokentest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The machine's opencryptoki, as Debian 12's package installs it.
const (
	ockConf      = "/etc/opencryptoki/opencryptoki.conf"
	ockTokenDir  = "/var/lib/opencryptoki/swtok"
	ockShm       = "/dev/shm/var.lib.opencryptoki.swtok"
	ockPIDFile   = "/var/run/pkcsslotd.pid"
	ockDefaultSO = "87654321" // a new software token's SO PIN
	// The suite's own slot: the software token only.
	ockSlotConf = "# written by nanokms's test set-up (softhsm-test/tokentest); the original is restored when the test ends\nslot 3\n{\nstdll = libpkcs11_sw.so\n}\n"
	savedSuffix = ".nanokms-test-saved"
)

// ockSockets are where pkcsslotd listens, by version.
var ockSockets = []string{"/var/run/pkcsslotd.socket", "/run/opencryptoki/pkcsslotd.socket"}

// ockState is the machine-wide record of what a set-up changed, kept while
// it runs, so that a run that was killed can be undone by the next.
const (
	ockLockFile  = "/run/lock/nanokms-test-opencryptoki.lock"
	ockStateFile = "/run/lock/nanokms-test-opencryptoki.json"
)

type ockState struct {
	PID      int    `json:"pid"`       // our pkcsslotd, 0 before it started
	Conf     string `json:"conf"`      // the saved opencryptoki.conf
	TokenDir string `json:"token_dir"` // the saved token directory, "" if there was none
	Shm      string `json:"shm"`       // the saved shared memory file, "" if there was none
	Temp     string `json:"temp"`      // our token directory
}

// OpenCryptokiSetup is this process's use of the machine's opencryptoki: its
// own pkcsslotd serving a software token in a temporary directory.
type OpenCryptokiSetup struct {
	Module string
	lock   *os.File
	state  ockState
	daemon *exec.Cmd
	exited chan struct{}
	stderr *bytes.Buffer

	mu  sync.Mutex // held by the test using the token (Token)
	seq int
}

// OpenCryptokiModule returns the path of opencryptoki's PKCS#11 library,
// installing opencryptoki and opensc (for pkcs11-tool) when missing.
func OpenCryptokiModule(t testing.TB) string {
	t.Helper()
	find := func() string {
		if p := firstFile("/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so", "/usr/lib/aarch64-linux-gnu/pkcs11/libopencryptoki.so", "/usr/lib64/pkcs11/libopencryptoki.so"); p != "" {
			return p
		}
		return fromPackage("libopencryptoki0", "/pkcs11/libopencryptoki.so")
	}
	must(t, ensure(func() bool { return find() != "" && haveCmd("pkcsslotd") }, "opencryptoki"))
	must(t, ensure(func() bool { return haveCmd("pkcs11-tool") }, "opensc"))
	return find()
}

// StartOpenCryptoki gives the test the machine's opencryptoki until it
// ends: it waits for the machine-wide lock, undoes what a killed earlier
// run left, saves the configuration, the token directory and its shared
// memory, points them at a new temporary directory, and starts pkcsslotd.
// The test's cleanup stops that daemon and restores everything. It fails
// the test (never skips it) when opencryptoki cannot be set up, or when a
// pkcsslotd this package did not start is running (the machine's own: stop
// it first, 'systemctl stop pkcsslotd').
func StartOpenCryptoki(t testing.TB) *OpenCryptokiSetup {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal(errNotRoot)
	}
	o := &OpenCryptokiSetup{Module: OpenCryptokiModule(t)}
	lock, err := os.OpenFile(ockLockFile, os.O_RDWR|os.O_CREATE, 0o600)
	must(t, err)
	// Blocks while another test binary uses opencryptoki.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		t.Fatalf("tokentest: locking %s: %v", ockLockFile, err)
	}
	o.lock = lock
	t.Cleanup(o.stop)
	must(t, recoverOCK())
	if pid := otherDaemon(); pid != 0 {
		t.Fatalf("tokentest: a pkcsslotd this test did not start is running (pid %d); the suite needs its own: stop it (systemctl stop pkcsslotd) and run again", pid)
	}
	must(t, o.setup())
	return o
}

// recoverOCK undoes what a killed earlier run recorded.
func recoverOCK() error {
	data, err := os.ReadFile(ockStateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st ockState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("%s: %w (remove it after checking %s and %s by hand)", ockStateFile, err, ockConf, ockTokenDir)
	}
	if st.PID > 0 && isPkcsslotd(st.PID) {
		_ = syscall.Kill(st.PID, syscall.SIGTERM)
		waitGone(st.PID)
	}
	o := &OpenCryptokiSetup{state: st}
	return o.restore()
}

func isPkcsslotd(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(comm)) == "pkcsslotd"
}

// waitGone waits (at most 10 s) for a process that is not our child to
// go; it polls /proc because it cannot wait for it.
func waitGone(pid int) {
	deadline := time.Now().Add(10 * time.Second)
	for isPkcsslotd(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if isPkcsslotd(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// otherDaemon returns the PID of a running pkcsslotd, or 0.
func otherDaemon() int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && isPkcsslotd(pid) {
			return pid
		}
	}
	return 0
}

func (o *OpenCryptokiSetup) writeState() error {
	data, err := json.Marshal(o.state)
	if err != nil {
		return err
	}
	tmp := ockStateFile + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, ockStateFile)
}

// setup saves the machine's state and starts the daemon on a new token
// directory. Each change is recorded before it is made.
func (o *OpenCryptokiSetup) setup() error {
	temp, err := os.MkdirTemp("", "nanokms-opencryptoki-")
	if err != nil {
		return err
	}
	o.state = ockState{Temp: temp, Conf: ockConf + savedSuffix}
	grp, err := user.LookupGroup("pkcs11")
	if err != nil {
		return fmt.Errorf("the pkcs11 group (made by the opencryptoki package): %w", err)
	}
	gid, _ := strconv.Atoi(grp.Gid)
	tok := filepath.Join(temp, "swtok")
	for _, d := range []string{tok, filepath.Join(tok, "TOK_OBJ")} {
		if err := os.MkdirAll(d, 0o770); err != nil {
			return err
		}
	}
	for _, d := range []string{temp, tok, filepath.Join(tok, "TOK_OBJ")} {
		if err := os.Chown(d, 0, gid); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o770); err != nil {
			return err
		}
	}
	// The configuration.
	conf, err := os.ReadFile(ockConf)
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.state.Conf, conf, 0o644); err != nil {
		return err
	}
	if err := o.writeState(); err != nil {
		return err
	}
	if err := os.WriteFile(ockConf, []byte(ockSlotConf), 0o644); err != nil {
		return err
	}
	// The token directory.
	if _, err := os.Lstat(ockTokenDir); err == nil {
		o.state.TokenDir = ockTokenDir + savedSuffix
		if err := o.writeState(); err != nil {
			return err
		}
		if err := os.Rename(ockTokenDir, o.state.TokenDir); err != nil {
			return err
		}
	}
	if err := os.Symlink(tok, ockTokenDir); err != nil {
		return err
	}
	// The token's shared memory: a copy of the token's state that the
	// library would otherwise take for this token's.
	if _, err := os.Lstat(ockShm); err == nil {
		o.state.Shm = ockShm + savedSuffix
		if err := o.writeState(); err != nil {
			return err
		}
		if err := os.Rename(ockShm, o.state.Shm); err != nil {
			return err
		}
	}
	return o.startDaemon()
}

func (o *OpenCryptokiSetup) startDaemon() error {
	cmd := exec.Command("pkcsslotd", "-f")
	o.stderr = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = o.stderr, o.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting pkcsslotd: %w", err)
	}
	o.daemon, o.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(o.exited) }()
	o.state.PID = cmd.Process.Pid
	if err := o.writeState(); err != nil {
		return err
	}
	// Ready when its socket answers a connection as it answers the
	// library: with the slot list, then end of file. The answer is read to
	// the end: a client that hangs up first makes pkcsslotd 3.8 die of
	// SIGPIPE. (Bounded; it exits early on a bad configuration.)
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, s := range ockSockets {
			if c, err := net.Dial("unix", s); err == nil {
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, err := io.Copy(io.Discard, c)
				c.Close()
				if err == nil {
					return nil
				}
			}
		}
		select {
		case <-o.exited:
			return fmt.Errorf("pkcsslotd exited at start: %s", tail(o.stderr.Bytes()))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pkcsslotd did not open its socket (%s) within 20s", strings.Join(ockSockets, " or "))
		}
	}
}

// stop stops our daemon and restores the machine, then releases the lock.
func (o *OpenCryptokiSetup) stop() {
	if o.daemon != nil {
		_ = o.daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-o.exited:
		case <-time.After(10 * time.Second):
			_ = o.daemon.Process.Kill()
			<-o.exited
		}
		if pid, err := os.ReadFile(ockPIDFile); err == nil && strings.TrimSpace(string(pid)) == strconv.Itoa(o.state.PID) {
			_ = os.Remove(ockPIDFile)
		}
	}
	if err := o.restore(); err != nil {
		fmt.Fprintf(os.Stderr, "tokentest: restoring opencryptoki: %v (see %s)\n", err, ockStateFile)
	}
	if o.lock != nil {
		_ = syscall.Flock(int(o.lock.Fd()), syscall.LOCK_UN)
		o.lock.Close()
	}
}

// restore puts back what the state records, then removes the record.
func (o *OpenCryptokiSetup) restore() error {
	st := o.state
	var errs []error
	if st.Conf != "" {
		if data, err := os.ReadFile(st.Conf); err == nil {
			if err := os.WriteFile(ockConf, data, 0o644); err != nil {
				errs = append(errs, err)
			} else {
				_ = os.Remove(st.Conf)
			}
		}
	}
	if fi, err := os.Lstat(ockTokenDir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if err := os.Remove(ockTokenDir); err != nil {
			errs = append(errs, err)
		}
	}
	if st.TokenDir != "" {
		if _, err := os.Lstat(st.TokenDir); err == nil {
			if err := os.Rename(st.TokenDir, ockTokenDir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Our token's shared memory goes; the saved one comes back.
	_ = os.Remove(ockShm)
	if st.Shm != "" {
		if _, err := os.Lstat(st.Shm); err == nil {
			if err := os.Rename(st.Shm, ockShm); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if st.Temp != "" && strings.HasPrefix(filepath.Base(st.Temp), "nanokms-opencryptoki-") {
		_ = os.RemoveAll(st.Temp)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.Remove(ockStateFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Token (re)initialises the software token with the label label and the
// user PIN PIN, and gives it to t: other callers wait until t ends (the
// machine has one software token). Every use starts from an empty token.
func (o *OpenCryptokiSetup) Token(t testing.TB, label string) Token {
	t.Helper()
	o.mu.Lock()
	t.Cleanup(o.mu.Unlock)
	if len(label) > 32 {
		t.Fatalf("tokentest: token label %q is longer than 32 bytes", label)
	}
	select {
	case <-o.exited:
		t.Fatalf("tokentest: pkcsslotd has exited: %s", tail(o.stderr.Bytes()))
	default:
	}
	_, err := run(nil, "pkcs11-tool", "--module", o.Module, "--init-token", "--label", label, "--so-pin", ockDefaultSO)
	must(t, err)
	_, err = run(nil, "pkcs11-tool", "--module", o.Module, "--login", "--login-type", "so", "--so-pin", ockDefaultSO, "--init-pin", "--pin", PIN)
	must(t, err)
	return Token{Kind: OpenCryptoki, Module: o.Module, Label: label, PIN: PIN}
}
