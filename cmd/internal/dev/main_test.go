package dev

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/cmd/internal/cold"
	"github.com/nanokms/nanokms/cmd/internal/hot"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

// softhsmMain runs the tests through softhsmtest.Run, which removes the
// test binary's SoftHSM token directory when they end.
type softhsmMain struct{ m *testing.M }

func (s softhsmMain) Run() int { return softhsmtest.Run(s.m) }

// TestMain lets the test binary double as nanokms-dev, for the tests that
// run it in a process of their own, as nanokms-cold, which bench listing
// and bench pipeline run, and as nanokms, which bench pipeline runs
// (testscript puts the names on PATH). (The command-line suite of all
// three binaries is in cmd/nanokms.)
func TestMain(m *testing.M) {
	testscript.Main(softhsmMain{m}, map[string]func(){
		"nanokms-dev":  func() { cli.Main(Binary) },
		"nanokms-cold": func() { cli.Main(cold.Binary) },
		"nanokms": func() {
			cli.Main(cli.Binary{Name: "nanokms", Short: "the operator's binary (as a test binary)", Commands: cli.Join(cold.Commands, hot.Commands)})
		},
	})
}

// result is what one run of the CLI did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the nanokms-dev command line args in-process and returns
// its exit code and output.
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), Binary, args, strings.NewReader(""), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}
