// Package tokentest sets up throw-away PKCS#11 tokens of the three kinds
// the integration suite runs against, for other processes (the nanokms
// command under test) to use: SoftHSM 2, opencryptoki's software token
// behind pkcsslotd, and NSS softokn. Each kind installs its Debian
// packages with apt-get when they are missing (as root), and lives in a
// temporary directory the test owns. A kind that cannot be set up fails
// the test; it is never skipped.
//
// The test process itself never loads these modules (package softhsmtest
// gives in-process SoftHSM tokens): the tokens are made with the vendors'
// tools (softhsm2-util, pkcs11-tool, certutil), whose command lines carry
// the throw-away PINs. That is acceptable for test tokens only; nanokms
// never takes a PIN from argv.
//
// opencryptoki has one daemon per machine, with a fixed socket, that reads
// its slot list only when it starts, and one software token whose store is
// a fixed directory. StartOpenCryptoki takes a machine-wide lock (a file
// lock, as several test binaries run at once under go test ./...), saves
// /etc/opencryptoki/opencryptoki.conf, the token directory and the token's
// shared memory, points them at a temporary directory, and starts its own
// pkcsslotd; the test's cleanup stops that daemon by its PID and puts
// everything back. A run that was killed leaves a record that the next
// one uses to put things back first.
package tokentest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// Kind is a kind of token.
type Kind string

// The kinds of token.
const (
	SoftHSM      Kind = "softhsm"
	OpenCryptoki Kind = "opencryptoki"
	NSS          Kind = "nss"
)

// Kinds lists every kind, in the order the suite runs them.
var Kinds = []Kind{SoftHSM, OpenCryptoki, NSS}

// PIN is the user PIN of every token this package makes: 8 characters,
// within every kind's limits (opencryptoki's software token takes 4 to 8).
const PIN = "tk-12345"

// Token is a token made for another process.
type Token struct {
	Kind         Kind
	Module       string // the PKCS#11 library
	ModuleParams string // its initialisation parameters (NSS), or ""
	Label        string
	PIN          string
	// WalletDir is a directory for wallets beside the token, for a kind
	// that keeps no data objects (NSS); "" otherwise.
	WalletDir string
	// Env is what a process needs in its environment to see the token
	// (SOFTHSM2_CONF for SoftHSM).
	Env []string
}

// installMu serialises apt-get within the process.
var installMu sync.Mutex

// ensure installs the Debian packages pkgs unless have reports they are
// there.
func ensure(have func() bool, pkgs ...string) error {
	installMu.Lock()
	defer installMu.Unlock()
	if have() {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s not installed and this process is not root: apt-get install %s", strings.Join(pkgs, ", "), strings.Join(pkgs, " "))
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%s not installed and apt-get is not available", strings.Join(pkgs, ", "))
	}
	for _, args := range [][]string{{"update"}, append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tail(out))
		}
	}
	if !have() {
		return fmt.Errorf("%s installed, but still not found", strings.Join(pkgs, ", "))
	}
	return nil
}

func tail(b []byte) []byte {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return bytes.TrimSpace(b)
}

func haveCmd(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// firstFile returns the first of paths that is a regular file, or "".
func firstFile(paths ...string) string {
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// fromPackage returns the first file of the Debian package pkg whose path
// ends in suffix, or "".
func fromPackage(pkg, suffix string) string {
	out, err := exec.Command("dpkg", "-L", pkg).Output()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(line, suffix) {
			if p := firstFile(line); p != "" {
				return p
			}
		}
	}
	return ""
}

// run runs a tool and returns an error with its output when it fails.
func run(env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(redact(args), " "), err, tail(out))
	}
	return out, nil
}

// redact hides the values of PIN flags in messages.
func redact(args []string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if i > 0 && strings.Contains(out[i-1], "pin") && !strings.HasPrefix(out[i], "-") {
			out[i] = "…"
		}
	}
	return out
}

// must fails t with err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("tokentest: %v", err)
	}
}

var errNotRoot = errors.New("tokentest: opencryptoki's daemon and token directory need root")
