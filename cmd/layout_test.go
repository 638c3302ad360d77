// Package cmd_test checks what each binary links: the air gap, seen from
// the binaries. The dependency closure of a main package (`go list -deps`,
// test files aside) is what its binary may contain.
package cmd_test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/nanokms/nanokms/"

// deps returns the dependency closure of the package pattern pkg (the
// package itself included), as go list reports it for this platform.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goTool, "list", "-deps", pkg).Output()
	if err != nil {
		var stderr []byte
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
	}
	return strings.Fields(string(out))
}

// forbidden is a package (and, with a trailing slash, everything under
// it) that a closure must not hold, and why.
type forbidden struct {
	path, why string
}

func (f forbidden) matches(p string) bool {
	if prefix, ok := strings.CutSuffix(f.path, "/..."); ok {
		return p == prefix || strings.HasPrefix(p, prefix+"/")
	}
	return p == f.path
}

// The dev tools, which no production binary links.
var devTools = []forbidden{
	{module + "devnode", "the development node"},
	{module + "softhsm-test/...", "throw-away test tokens (softhsmtool runs apt-get)"},
	{"github.com/schollz/progressbar/...", "the benchmarks' progress bar"},
	{module + "cmd/internal/dev", "the dev tools' subcommands"},
}

// The hot side, which the isolated host's binary never links. Enabled
// now: the hot subcommands.
var hotCommands = []forbidden{
	{module + "cmd/internal/hot", "the gateway's and the client's subcommands"},
}

// The hot side's packages, which the isolated host's binary never links.
var hotPackages = []forbidden{
	{module + "node/...", "the Nano node client"},
	{module + "gateway/...", "the hot gateway"},
	{"github.com/coder/websocket/...", "a WebSocket client"},
}

// The token and the signer's internals, which the hot subcommands never
// link (only the signer's contract, signer/signerapi).
var coldInternals = []forbidden{
	{module + "hsm/...", "the PKCS#11 token"},
	{module + "internal/p11uri", "the token's URIs"},
	{module + "signer", "the signer itself"},
	{module + "signer/policy", "the signer's policy"},
	{module + "signer/signerconf", "the signer's service settings"},
}

func TestBinaryDependencies(t *testing.T) {
	for _, c := range []struct {
		pkg    string
		denied [][]forbidden
	}{
		{"./nanokms", [][]forbidden{devTools}},
		{"./nanokms-cold", [][]forbidden{devTools, hotCommands, hotPackages}},
		{"./internal/cold", [][]forbidden{devTools, hotCommands, hotPackages}},
		{"./internal/hot", [][]forbidden{devTools, coldInternals}},
		{"./internal/cli", [][]forbidden{devTools, hotCommands, hotPackages, coldInternals,
			{{module + "cmd/internal/cold", "the cold subcommands"}, {module + "bridge/...", "the bridge"},
				{module + "relay", "the relay"}}}},
	} {
		t.Run(strings.TrimPrefix(c.pkg, "./"), func(t *testing.T) {
			closure := deps(t, c.pkg)
			for _, set := range c.denied {
				for _, f := range set {
					for _, p := range closure {
						if f.matches(p) {
							t.Errorf("%s links %s (%s)", c.pkg, p, f.why)
						}
					}
				}
			}
		})
	}
}

// TestDevBinaryHasTheDevTools keeps TestBinaryDependencies honest: the
// package paths it looks for are the ones the dev binary really links.
func TestDevBinaryHasTheDevTools(t *testing.T) {
	closure := deps(t, "./nanokms-dev")
	for _, f := range devTools {
		if !slices.ContainsFunc(closure, f.matches) {
			t.Errorf("nanokms-dev does not link %s: is the path in devTools right?", f.path)
		}
	}
	op := deps(t, "./nanokms")
	for _, f := range append(slices.Clone(hotCommands), forbidden{module + "node", ""}) {
		if !slices.ContainsFunc(op, f.matches) {
			t.Errorf("nanokms does not link %s: is the path right?", f.path)
		}
	}
}
