package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/cmd/internal/cold"
	"github.com/nanokms/nanokms/cmd/internal/dev"
)

// nodeFixtures is the repository's directory of real node documents,
// relative to this package.
const nodeFixtures = "../../testdata/node"

// TestMain lets the test binary double as the three commands, nanokms,
// nanokms-cold and nanokms-dev, so that the scripts run the real CLIs in
// separate processes.
func TestMain(m *testing.M) {
	testscript.Main(softhsmMain{m}, map[string]func(){
		// As their mains do: an interrupt (the scripts' 'kill -INT') or
		// SIGTERM stops a service cleanly.
		"nanokms":      func() { cli.Main(operator) },
		"nanokms-cold": func() { cli.Main(cold.Binary) },
		"nanokms-dev":  func() { cli.Main(dev.Binary) },
	})
}

// TestScripts runs testdata/script/*.txtar. Each script finds the real node
// documents in $WORK/node.
//
// Besides the standard commands the scripts have:
//
//	exits CODE PROG [ARGS...]
//	    run PROG like exec and fail unless it exits with CODE (stdout and
//	    stderr are kept for the following stdout/stderr checks);
//	capture NAME REGEXP
//	    set $NAME to the first submatch of REGEXP in the last stdout.
//	newtoken NAME
//	    set $NAME to the label of another fresh SoftHSM token (same PIN),
//	    in the script's own token directory.
//	flipsealed FILE
//	    flip a bit of the sealed blob in the wallet export FILE.
//	perm FILE MODE
//	    fail unless FILE's permission bits are MODE (octal).
//	legacytoken
//	    add the SoftHSM token of testdata/legacy-v1 (made by nanokms before
//	    seal schemes; label legacy-v1) to the script's token directory, and
//	    its wallet exports to $WORK/legacy.
//	freeport NAME
//	    set $NAME to a free TCP port on 127.0.0.1.
//
// and, for the services (scriptcmds_test.go): waitfor, expand,
// verifyapproval, auditedit and noderpc; pgdb FILE (pgscript_test.go: a
// new database on the scripts' PostgreSQL server, its connection string
// in FILE, mode 0600) and flipbyte FILE OFFSET (flip a bit of a byte);
// fulltmpfs DIR (scriptdisk_test.go: a full 64 KiB tmpfs on DIR);
// textfile FILE SERIES OP VALUE (scripttextfile_test.go: compare a gauge of
// a node_exporter textfile);
// signrpc (suite_test.go: a Sign call on a signer's socket); for large signers
// (scriptfill_test.go): fillaccounts and jsonaccounts. A service
// started in the background ('exec nanokms-cold signer … &signer&') is
// stopped with 'kill -INT signer', which it handles as main does SIGINT
// and SIGTERM.
//
// Each script also gets a SoftHSM token directory and a fresh token of its
// own (setupToken), and $GOVERSION, the Go version of the test binary
// (runtime.Version), which the commands are.
func TestScripts(t *testing.T) {
	prepareScriptTokens(t)
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup:               setupScript,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":       cmdExits,
			"capture":     cmdCapture,
			"newtoken":    cmdNewToken,
			"flipsealed":  cmdFlipSealed,
			"perm":        cmdPerm,
			"legacytoken": cmdLegacyToken,
			"freeport":    cmdFreePort, // tlsscript_test.go
			// scriptcmds_test.go
			"waitfor":        cmdWaitfor,
			"expand":         cmdExpand,
			"verifyapproval": cmdVerifyApproval,
			"auditedit":      cmdAuditEdit,
			"noderpc":        cmdNodeRPC,
			"pgdb":           cmdPGDB,    // pgscript_test.go
			"signrpc":        cmdSignRPC, // suite_test.go
			"flipbyte":       cmdFlipByte,
			"fulltmpfs":      cmdFullTmpfs, // scriptdisk_test.go
			"textfile":       cmdTextfile,  // scripttextfile_test.go
			// scriptfill_test.go
			"fillaccounts": cmdFillAccounts,
			"jsonaccounts": cmdJSONAccounts,
		},
	})
}

// copyNodeFixtures copies the repository's node documents into $WORK/node,
// so scripts use the real fixtures without duplicating them. It is the
// scripts' Setup.
func copyNodeFixtures(env *testscript.Env) error {
	files, err := filepath.Glob(filepath.Join(nodeFixtures, "*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("no node fixtures in " + nodeFixtures)
	}
	// Under -race every child process would otherwise sleep a second at
	// exit (GORACE atexit_sleep_ms defaults to 1000); keep a user's setting.
	if os.Getenv("GORACE") == "" {
		env.Setenv("GORACE", "atexit_sleep_ms=10")
	}
	dst := filepath.Join(env.WorkDir, "node")
	if err := os.MkdirAll(dst, 0o777); err != nil {
		return err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), data, 0o666); err != nil {
			return err
		}
	}
	return nil
}

// cmdExits implements `exits CODE PROG [ARGS...]`.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exits (state the expected code instead)")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad exit code %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with code %d, want %d", args[1], got, want)
	}
}

// cmdCapture implements `capture NAME REGEXP`.
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: capture NAME REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) < 2 {
		ts.Fatalf("capture: no match for %q in stdout", args[1])
	}
	ts.Setenv(args[0], m[1])
}
