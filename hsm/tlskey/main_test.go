//go:build cgo

package tlskey

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtool"
)

// The tests' SoftHSM set-up. crypto11 must be the first in the process to
// C_Initialize the module (see the package doc), and SoftHSM does not see
// tokens made after C_Initialize by another process. So TestMain makes
// every token the tests use with softhsm2-util, in a directory of this
// test binary's own, before anything in the process loads SoftHSM. (That
// is why these tests do not use package softhsmtest, whose helpers load
// the module in-process first.)
const (
	userPIN = "tlskey-user-1234"
	soPIN   = "tlskey-so-12345678"
)

// The tokens, by role. Each test uses key labels of its own.
var tokenLabels = []string{"server", "client", "misc", "wrongpin", "keystore", "child", "conc"}

var (
	module   string            // libsofthsm2.so
	tokenDir string            // removed when the tests end
	tokens   map[string]string // role → token label
)

// childEnv, when set, makes the test binary run hsmFirstChild instead of
// the tests.
const childEnv = "TLSKEY_TEST_HSM_FIRST"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(hsmFirstChild())
	}
	if err := setupTokens(); err != nil {
		fmt.Fprintln(os.Stderr, "tlskey tests: setting up SoftHSM:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tokenDir)
	os.Exit(code)
}

func setupTokens() error {
	var err error
	if module, err = softhsmtool.EnsureInstalled(); err != nil {
		return err
	}
	if tokenDir, err = os.MkdirTemp("", "tlskey-softhsm-"); err != nil {
		return err
	}
	dir := filepath.Join(tokenDir, "tokens")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	conf := filepath.Join(tokenDir, "softhsm2.conf")
	body := "directories.tokendir = " + dir + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return err
	}
	if err := os.Setenv(softhsmtool.ConfEnv, conf); err != nil {
		return err
	}
	tokens = map[string]string{}
	for i, role := range tokenLabels {
		label := fmt.Sprintf("tls-%s-%d-%d", role, os.Getpid(), i)
		// softhsm2-util takes the PINs as arguments: acceptable for
		// throw-away test tokens only.
		out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", userPIN, "--so-pin", soPIN).CombinedOutput()
		if err != nil {
			return fmt.Errorf("softhsm2-util --init-token %s: %w\n%s", label, err, out)
		}
		tokens[role] = label
	}
	return nil
}

// mustPIN returns a PIN, wiped when the test ends.
func mustPIN(t testing.TB, s string) *hsm.PIN {
	t.Helper()
	p, err := hsm.NewPIN([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Wipe)
	return p
}

// config names the key label on the token of role, with the user PIN.
func config(t testing.TB, role, label string) Config {
	t.Helper()
	tok, ok := tokens[role]
	if !ok {
		t.Fatalf("no token for role %q", role)
	}
	return Config{Module: module, TokenLabel: tok, PIN: mustPIN(t, userPIN), KeyLabel: label}
}

// mustGenerate makes a key pair and closes it when the test ends.
func mustGenerate(t testing.TB, cfg Config) *Key {
	t.Helper()
	k, err := Generate(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Generate(%s on %s): %v", cfg.KeyLabel, cfg.TokenLabel, err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}
