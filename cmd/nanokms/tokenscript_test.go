package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

// softhsmMain runs the tests through softhsmtest.Run, which removes the
// test binary's SoftHSM token directory when they end, and stops the
// scripts' PostgreSQL server (pgdb) then.
type softhsmMain struct{ m *testing.M }

func (s softhsmMain) Run() int {
	code := softhsmtest.Run(s.m)
	if err := closeScriptPG(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	return code
}

// setupScript is the scripts' Setup: the node fixtures, a fresh token,
// and $GOVERSION, the Go version that built the commands.
func setupScript(env *testscript.Env) error {
	if err := copyNodeFixtures(env); err != nil {
		return err
	}
	env.Setenv("GOVERSION", runtime.Version())
	return setupToken(env)
}

// scriptModule is the SoftHSM module the scripts use; set by
// prepareScriptTokens.
var scriptModule string

// prepareScriptTokens makes sure SoftHSM and softhsm2-util are installed
// (installing them as softhsmtest does, never skipping) before the scripts
// run.
func prepareScriptTokens(t *testing.T) {
	t.Helper()
	scriptModule = softhsmtest.Module(t)
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		t.Fatalf("softhsm2-util (package softhsm2) is needed to make the scripts' tokens: %v", err)
	}
}

// setupToken gives the script a SoftHSM token directory of its own,
// $WORK/softhsm, with one fresh token in it, and points the script's
// environment at it:
//
//	SOFTHSM2_CONF          $WORK/softhsm/softhsm2.conf
//	NANOKMS_PKCS11_MODULE  libsofthsm2.so
//	NANOKMS_TOKEN          the token's label
//	USER_PIN               its user PIN, for checks that it is never printed
//	$WORK/pin              a PIN file holding it, mode 0600
//
// The PIN itself is not in the environment: scripts pass --pin-file pin,
// or set NANOKMS_PIN themselves.
//
// Each script has its own directory because scripts run in parallel, and
// SoftHSM processes sharing a token directory see each other's tokens half
// written: C_GetTokenInfo on a token another process is writing can fail
// with CKR_GENERAL_ERROR, and hsm.Open gives up when any slot fails so.
// The tokens are made with softhsm2-util, in the directory's own process.
func setupToken(env *testscript.Env) error {
	dir := filepath.Join(env.WorkDir, "softhsm")
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		return err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "directories.tokendir = " + filepath.Join(dir, "tokens") + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return err
	}
	label := softhsmtest.UniqueLabel("script")
	if err := initScriptToken(conf, label); err != nil {
		return err
	}
	pin := filepath.Join(env.WorkDir, "pin")
	if err := os.WriteFile(pin, []byte(softhsmtest.UserPIN+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Chmod(pin, 0o600); err != nil {
		return err
	}
	env.Setenv("SOFTHSM2_CONF", conf)
	env.Setenv("NANOKMS_PKCS11_MODULE", scriptModule)
	env.Setenv("NANOKMS_TOKEN", label)
	env.Setenv("USER_PIN", softhsmtest.UserPIN)
	return nil
}

// initScriptToken initialises a token labelled label in the SoftHSM
// configuration conf, with softhsmtest's PINs. (softhsm2-util takes PINs
// as arguments: acceptable for throw-away test tokens only; nanokms never
// takes a PIN from argv.)
func initScriptToken(conf, label string) error {
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label,
		"--so-pin", softhsmtest.SOPIN, "--pin", softhsmtest.UserPIN)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("softhsm2-util --init-token --label %s: %v\n%s", label, err, out)
	}
	return nil
}

// cmdNewToken implements `newtoken NAME`: another fresh token in the
// script's token directory, with the same user PIN, whose label goes to
// $NAME.
func cmdNewToken(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: newtoken NAME")
	}
	label := softhsmtest.UniqueLabel("script-" + strings.ToLower(args[0]))
	ts.Check(initScriptToken(ts.Getenv("SOFTHSM2_CONF"), label))
	ts.Setenv(args[0], label)
}

// legacyDir holds a SoftHSM token made by nanokms before seal schemes:
// its master key, and the wallets det1 (seed_det1) and bip (the BIP39
// test mnemonic "abandon … about", no passphrase), with their exports.
const legacyDir = "testdata/legacy-v1"

// cmdLegacyToken implements `legacytoken`: it copies the legacy token into
// the script's SoftHSM token directory (label legacy-v1, the scripts' user
// PIN) and its exports into $WORK/legacy.
func cmdLegacyToken(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: legacytoken")
	}
	conf := ts.Getenv("SOFTHSM2_CONF")
	tokens := filepath.Join(filepath.Dir(conf), "tokens")
	src := filepath.Join(legacyDir, "tokens")
	ts.Check(filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(tokens, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o600)
	}))
	ts.Check(os.MkdirAll(ts.MkAbs("legacy"), 0o700))
	for _, f := range []string{"det1.export", "bip.export"} {
		data, err := os.ReadFile(filepath.Join(legacyDir, f))
		ts.Check(err)
		ts.Check(os.WriteFile(ts.MkAbs(filepath.Join("legacy", f)), data, 0o600))
	}
}

// cmdFlipSealed implements `flipsealed FILE`: it flips one bit of the last
// byte (the GCM tag) of the sealed blob in the wallet export FILE, keeping
// the document well formed, as an attacker altering a backup would.
func cmdFlipSealed(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: flipsealed FILE")
	}
	path := ts.MkAbs(args[0])
	var doc map[string]any
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[0])), &doc))
	s, ok := doc["sealed"].(string)
	if !ok {
		ts.Fatalf("flipsealed: %s has no \"sealed\" string", args[0])
	}
	blob, err := base64.StdEncoding.DecodeString(s)
	ts.Check(err)
	blob[len(blob)-1] ^= 0x01
	doc["sealed"] = base64.StdEncoding.EncodeToString(blob)
	out, err := json.MarshalIndent(doc, "", "  ")
	ts.Check(err)
	ts.Check(os.WriteFile(path, append(out, '\n'), 0o600))
}

// cmdPerm implements `perm FILE MODE`: fail unless FILE's permission bits
// are MODE (octal).
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	st, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if got := st.Mode().Perm(); uint64(got) != want {
		ts.Fatalf("%s has mode %04o, want %04o", args[0], got, want)
	}
}
