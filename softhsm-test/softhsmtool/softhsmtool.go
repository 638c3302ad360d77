// Package softhsmtool makes throw-away SoftHSM 2 tokens outside `go test`:
// for development and benchmarks only (`nanokms bench`). Its tokens live in
// temporary directories, their PINs pass through softhsm2-util's command
// line, and Close deletes them. Never use it for a token that is meant to
// hold real keys. (Tests use package softhsmtest, which takes a
// testing.TB.)
//
// SoftHSM reads SOFTHSM2_CONF once, at C_Initialize, and then never sees
// tokens that another process creates. NewToken therefore sets SOFTHSM2_CONF
// before this process makes any PKCS#11 call, creates the token with
// `softhsm2-util --init-token --free`, and only then initialises the module.
// When the module is already initialised (a second NewToken, or another
// part of the process loaded SoftHSM first), the token is created
// in-process instead, as softhsm2-util would: C_InitToken on the free slot,
// then C_InitPIN as the security officer.
package softhsmtool

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// ConfEnv is the environment variable SoftHSM reads its configuration from.
const ConfEnv = "SOFTHSM2_CONF"

// ErrNotInstalled is returned when SoftHSM is missing and cannot be
// installed here (not root, or no apt-get).
var ErrNotInstalled = errors.New("softhsmtool: SoftHSM 2 is not installed")

// moduleCandidates are where distributions put libsofthsm2.so.
var moduleCandidates = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/lib64/softhsm/libsofthsm2.so",
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",
	"/usr/local/opt/softhsm/lib/softhsm/libsofthsm2.so",
}

// FindModule returns the path of libsofthsm2.so, or "" when none is found.
func FindModule() string {
	for _, c := range moduleCandidates {
		if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() {
			return c
		}
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		return ""
	}
	for _, pkg := range []string{"softhsm2", "libsofthsm2"} {
		out, err := exec.Command("dpkg", "-L", pkg).Output()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasSuffix(line, "/libsofthsm2.so") {
				if st, err := os.Stat(line); err == nil && st.Mode().IsRegular() {
					return line
				}
			}
		}
	}
	return ""
}

// EnsureInstalled returns the module path, installing the softhsm2 package
// with apt-get first when the module or softhsm2-util is missing and the
// process runs as root. Otherwise a missing SoftHSM is ErrNotInstalled.
// apt-get is not tied to a context: interrupting dpkg halfway would leave
// the system's package database broken.
func EnsureInstalled() (string, error) {
	module := FindModule()
	_, utilErr := exec.LookPath("softhsm2-util")
	if module != "" && utilErr == nil {
		return module, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%w and this process is not root to install it", ErrNotInstalled)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", fmt.Errorf("%w and apt-get is not available", ErrNotInstalled)
	}
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", "softhsm2"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("softhsmtool: apt-get %s: %w\n%s", strings.Join(args, " "), err, tail(out))
		}
	}
	module = FindModule()
	if module == "" {
		return "", fmt.Errorf("%w: softhsm2 was installed but libsofthsm2.so was not found", ErrNotInstalled)
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return "", fmt.Errorf("%w: softhsm2 was installed but softhsm2-util is not on PATH", ErrNotInstalled)
	}
	return module, nil
}

func tail(b []byte) []byte {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return bytes.TrimSpace(b)
}

// RandomSecret returns n random bytes as lower-case hex, for throw-away PINs.
func RandomSecret(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// Token is a throw-away token made by NewToken.
type Token struct {
	Module string // path of libsofthsm2.so
	Label  string
	PIN    string // the user PIN
	SOPIN  string
	// Dir is the directory holding the token directory and softhsm2.conf,
	// when this package made it; empty when the token was made in-process
	// in a directory another part of the process chose.
	Dir string
	// InProcess is true when the token was made through the module
	// in-process rather than by softhsm2-util (see the package doc).
	InProcess bool

	once sync.Once
	ours bool // the token lives in proc.dir
}

// ErrDirDeleted is returned by NewToken after Close deleted the directory
// this process's SoftHSM was loaded with: SoftHSM cannot load another
// configuration in the same process, and it still lists the deleted
// tokens, whose C_GetTokenInfo fails (so hsm.Open would fail too).
var ErrDirDeleted = errors.New("softhsmtool: this process's SoftHSM token directory was deleted by Close; SoftHSM cannot be set up again in the same process")

// proc is what this process did to SoftHSM.
var proc struct {
	sync.Mutex
	initialised bool   // the module is initialised in this process
	dir         string // the directory it was initialised with, when this package made it
	deleted     bool   // dir was deleted
	users       int    // open Tokens in dir
	restoreEnv  func() // puts SOFTHSM2_CONF back as it was
}

// NewToken initialises a new token labelled label (1 to 32 bytes) with
// random user and security-officer PINs.
//
// The first call in a process makes a directory under parent ("" means
// os.TempDir()) with a softhsm2.conf and a token directory, points
// SOFTHSM2_CONF at it, runs softhsm2-util --init-token --free, and then
// initialises the module, which reads that configuration for the rest of
// the process. Later calls, and a first call in a process whose SoftHSM was
// already loaded by something else, make the token in-process (see the
// package doc).
//
// Close the Tokens when done: the last Close of a token in this package's
// directory deletes the directory and restores SOFTHSM2_CONF, after which
// NewToken returns ErrDirDeleted for the rest of the process. A process
// that needs tokens again and again (a test binary) should load SoftHSM
// from a directory that lives as long as it does before the first NewToken
// (as package softhsmtest does); its tokens are then made there, and Close
// deletes nothing.
func NewToken(ctx context.Context, parent, label string) (*Token, error) {
	if len(label) == 0 || len(label) > 32 {
		return nil, fmt.Errorf("softhsmtool: token label %q must be 1 to 32 bytes", label)
	}
	module, err := EnsureInstalled()
	if err != nil {
		return nil, err
	}
	pin, err := RandomSecret(12)
	if err != nil {
		return nil, err
	}
	so, err := RandomSecret(12)
	if err != nil {
		return nil, err
	}
	t := &Token{Module: module, Label: label, PIN: pin, SOPIN: so}

	proc.Lock()
	defer proc.Unlock()
	switch {
	case !proc.initialised:
		if err := t.first(ctx, parent); err != nil {
			return nil, err
		}
		return t, nil
	case proc.deleted:
		return nil, ErrDirDeleted
	}
	// The module is initialised: only a token made in-process is visible.
	if err := initTokenInProcess(module, label, so, pin); err != nil {
		return nil, err
	}
	t.InProcess = true
	if proc.dir != "" {
		t.Dir, t.ours = proc.dir, true
		proc.users++
	}
	return t, nil
}

// first makes the process's first token: a new directory, SOFTHSM2_CONF,
// softhsm2-util, then C_Initialize with that configuration.
func (t *Token) first(ctx context.Context, parent string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(parent, "softhsm-")
	if err != nil {
		return fmt.Errorf("softhsmtool: %w", err)
	}
	fail := func(err error) error {
		_ = os.RemoveAll(dir)
		return err
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return fail(fmt.Errorf("softhsmtool: %w", err))
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return fail(fmt.Errorf("softhsmtool: %w", err))
	}
	prev, hadPrev := os.LookupEnv(ConfEnv)
	restore := func() {
		if hadPrev {
			_ = os.Setenv(ConfEnv, prev)
		} else {
			_ = os.Unsetenv(ConfEnv)
		}
	}
	if err := os.Setenv(ConfEnv, conf); err != nil {
		return fail(fmt.Errorf("softhsmtool: %w", err))
	}
	cmd := exec.CommandContext(ctx, "softhsm2-util", "--init-token", "--free",
		"--label", t.Label, "--so-pin", t.SOPIN, "--pin", t.PIN)
	cmd.Env = append(os.Environ(), ConfEnv+"="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		restore()
		return fail(fmt.Errorf("softhsmtool: softhsm2-util --init-token: %w\n%s", err, tail(out)))
	}
	fresh, err := initialise(t.Module)
	if err != nil {
		restore()
		return fail(err)
	}
	proc.initialised = true
	if fresh {
		// The module now reads this directory for the rest of the process.
		proc.dir, proc.users, proc.restoreEnv = dir, 1, restore
		t.Dir, t.ours = dir, true
		return nil
	}
	// Something else initialised the module first: the token softhsm2-util
	// just made is invisible to this process, and this directory useless.
	// Make the token in-process, in whatever directory that was.
	restore()
	_ = os.RemoveAll(dir)
	if err := initTokenInProcess(t.Module, t.Label, t.SOPIN, t.PIN); err != nil {
		return err
	}
	t.InProcess = true
	return nil
}

// Close deletes the token's directory when this package made it and no
// other Token of this package lives in it, and then restores SOFTHSM2_CONF.
// A token made in a directory that someone else chose is left there. Close
// the hsm.Token opened on the token first. It is safe to call twice.
func (t *Token) Close() error {
	var err error
	t.once.Do(func() {
		if !t.ours {
			return
		}
		proc.Lock()
		defer proc.Unlock()
		proc.users--
		if proc.users > 0 {
			return
		}
		err = os.RemoveAll(proc.dir)
		proc.deleted = true
		proc.restoreEnv()
	})
	return err
}
