package tokentest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nanokms/nanokms/softhsm-test/softhsmtool"
)

// soPIN is the security officer's PIN of the SoftHSM and NSS tokens.
const soPIN = "tk-so-12345678"

// NewSoftHSM makes a SoftHSM token labelled label for other processes, in
// the SoftHSM configuration of dir (dir/softhsm2.conf and dir/tokens, made
// on first use). Tokens of one dir see each other, as tokens of one
// SoftHSM installation do.
func NewSoftHSM(t testing.TB, dir, label string) Token {
	t.Helper()
	module, err := softhsmtool.EnsureInstalled()
	must(t, err)
	conf := filepath.Join(dir, "softhsm2.conf")
	if _, err := os.Stat(conf); err != nil {
		must(t, os.MkdirAll(filepath.Join(dir, "tokens"), 0o700))
		body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", filepath.Join(dir, "tokens"))
		must(t, os.WriteFile(conf, []byte(body), 0o600))
	}
	env := []string{softhsmtool.ConfEnv + "=" + conf}
	_, err = run(env, "softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", soPIN, "--pin", PIN)
	must(t, err)
	return Token{Kind: SoftHSM, Module: module, Label: label, PIN: PIN, Env: env}
}
