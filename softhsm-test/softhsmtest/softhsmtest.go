//go:build cgo

// Package softhsmtest gives tests real SoftHSM tokens.
//
// The first call in a test binary creates a throw-away token directory with
// its own softhsm2.conf, points SOFTHSM2_CONF at it for the whole process,
// and loads the SoftHSM module, installing the softhsm2 package with
// apt-get when it is missing and the process runs as root. If SoftHSM can
// be neither found nor installed the test fails: it is never skipped.
//
// SoftHSM reads SOFTHSM2_CONF once, at C_Initialize, and a process does not
// see tokens that another process (softhsm2-util) creates after that. So
// one token directory serves the whole test binary, and MustToken
// initialises each token in-process, through the same module, as
// softhsm2-util --init-token --free would: C_InitToken on the free slot,
// then C_InitPIN as the security officer.
//
// Use Run in TestMain so the directory is removed when the tests end:
//
//	func TestMain(m *testing.M) { os.Exit(softhsmtest.Run(m)) }
package softhsmtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nanokms/nanokms/internal/p11slots"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtool"

	"github.com/miekg/pkcs11"
)

// PINs of every token MustToken creates.
const (
	UserPIN = "nanokms-user-1234"
	SOPIN   = "nanokms-so-12345678"
)

// Token describes a token made by MustToken.
type Token struct {
	Module string // path of libsofthsm2.so
	Label  string
	Serial string
	PIN    string // the user PIN (UserPIN)
	SOPIN  string
}

var env struct {
	once   sync.Once
	err    error
	dir    string
	conf   string
	module string
	ctx    *pkcs11.Ctx

	mu sync.Mutex // serialises token creation
}

// FindModule returns the path of libsofthsm2.so, or "" if none is installed.
func FindModule() string { return softhsmtool.FindModule() }

// install installs softhsm2 with apt-get.
func install() error {
	if os.Geteuid() != 0 {
		return errors.New("softhsm2 is not installed and this process is not root: run softhsm-test/setup.sh as root, or apt-get install softhsm2")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return errors.New("softhsm2 is not installed and apt-get is not available: install SoftHSM 2 by hand")
	}
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", "softhsm2"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tail(out))
		}
	}
	return nil
}

func tail(b []byte) []byte {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return bytes.TrimSpace(b)
}

func setup() error {
	env.once.Do(func() {
		module := FindModule()
		if module == "" {
			if err := install(); err != nil {
				env.err = err
				return
			}
			if module = FindModule(); module == "" {
				env.err = errors.New("softhsm2 installed but libsofthsm2.so not found")
				return
			}
		}
		dir, err := os.MkdirTemp("", "nanokms-softhsm-")
		if err != nil {
			env.err = err
			return
		}
		tokens := filepath.Join(dir, "tokens")
		if err := os.Mkdir(tokens, 0o700); err != nil {
			env.err = err
			return
		}
		conf := filepath.Join(dir, "softhsm2.conf")
		body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			env.err = err
			return
		}
		if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
			env.err = err
			return
		}
		ctx := pkcs11.New(module)
		if ctx == nil {
			env.err = fmt.Errorf("cannot load %s", module)
			return
		}
		if err := ctx.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
			env.err = fmt.Errorf("C_Initialize(%s) with SOFTHSM2_CONF=%s: %w", module, conf, err)
			return
		}
		env.dir, env.conf, env.module, env.ctx = dir, conf, module, ctx
	})
	return env.err
}

// Run runs the tests and then removes the token directory. Call it from
// TestMain.
func Run(m *testing.M) int {
	code := m.Run()
	if env.dir != "" {
		_ = os.RemoveAll(env.dir)
	}
	return code
}

// Module returns the SoftHSM module path, setting SoftHSM up on first use.
func Module(t testing.TB) string {
	t.Helper()
	if err := setup(); err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	return env.module
}

// Dir returns the token directory of this test binary.
func Dir(t testing.TB) string {
	t.Helper()
	Module(t)
	return env.dir
}

var labelSeq atomic.Uint64

// UniqueLabel returns prefix followed by a number unique in the process,
// cut to the 32 bytes a token label holds.
func UniqueLabel(prefix string) string {
	suffix := fmt.Sprintf("-%d", labelSeq.Add(1))
	if len(prefix)+len(suffix) > 32 {
		prefix = prefix[:32-len(suffix)]
	}
	return prefix + suffix
}

// MustToken initialises a new token labelled label (used as given; see
// UniqueLabel) with the user PIN UserPIN and returns it. Labels need not be
// unique: two tokens may share one, which is how ambiguity is tested.
func MustToken(t testing.TB, label string) Token {
	t.Helper()
	if len(label) == 0 || len(label) > 32 {
		t.Fatalf("softhsmtest: token label %q must be 1 to 32 bytes", label)
	}
	module := Module(t)
	env.mu.Lock()
	defer env.mu.Unlock()
	c := env.ctx
	slot, err := freeSlot(c)
	if err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	if err := c.InitToken(slot, SOPIN, label); err != nil {
		t.Fatalf("softhsmtest: C_InitToken(%q): %v", label, err)
	}
	sh, err := c.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatalf("softhsmtest: C_OpenSession: %v", err)
	}
	defer c.CloseSession(sh)
	if err := c.Login(sh, pkcs11.CKU_SO, SOPIN); err != nil {
		t.Fatalf("softhsmtest: C_Login(SO): %v", err)
	}
	if err := c.InitPIN(sh, UserPIN); err != nil {
		t.Fatalf("softhsmtest: C_InitPIN: %v", err)
	}
	// Setting the token up as the SO is done; leave the SO state so the
	// user can log in. (nanokms itself never logs out.)
	if err := c.Logout(sh); err != nil {
		t.Fatalf("softhsmtest: C_Logout(SO): %v", err)
	}
	ti, err := c.GetTokenInfo(slot)
	if err != nil {
		t.Fatalf("softhsmtest: C_GetTokenInfo: %v", err)
	}
	return Token{Module: module, Label: label, Serial: ti.SerialNumber, PIN: UserPIN, SOPIN: SOPIN}
}

func freeSlot(c *pkcs11.Ctx) (uint, error) {
	slots, err := p11slots.List(c.GetSlotList, true) // beside the hsm package's listings
	if err != nil {
		return 0, fmt.Errorf("C_GetSlotList: %w", err)
	}
	for _, s := range slots {
		ti, err := c.GetTokenInfo(s)
		if err != nil {
			return 0, fmt.Errorf("C_GetTokenInfo: %w", err)
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			return s, nil
		}
	}
	return 0, errors.New("SoftHSM offers no free slot")
}
