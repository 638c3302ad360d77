package layout

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The module's path and the roles of its packages (README, "Layout").
const module = "github.com/nanokms/nanokms"

// cold are the packages that run on the isolated host.
var cold = []string{"signer/...", "relay/...", "hsm/...", "metrics/relaymetrics/...", "metrics/signermetrics/..."}

// hot are the packages that run on the online host.
var hot = []string{"gateway/...", "node/...", "metrics/gatewaymetrics/..."}

// shared are the packages both sides link: they must link neither side.
var shared = []string{"bridge/...", "nano/...", "intent/...", "proto/...", "internal/conffile/...",
	"internal/mtls/...", "internal/grpcserve/...", "internal/health/...", "internal/backoff/...", "internal/buildinfo/...", "internal/pgmigrate/...", "internal/pgerr/...",
	"signer/signerapi/...", "metrics"}

// coldForbidden may not be in the closure of a cold package: the hot
// side's code, the dev tools, the throw-away tokens and a WebSocket
// client. (net/http cannot be refused by package: gRPC links it. The
// cold side makes no HTTP request: it has no node client, and its
// metrics go to a file.)
var coldForbidden = []string{module + "/node", module + "/gateway", module + "/devnode", module + "/softhsm-test/",
	"github.com/coder/websocket", "github.com/schollz/progressbar"}

// hotForbidden may not be in the closure of a hot package: the token (and
// its URIs) and the signer's internals (the signer, its store and its policy). The
// signer's contract, signer/signerapi, is allowed.
var hotForbidden = []string{module + "/hsm", module + "/internal/p11uri", module + "/signer", module + "/signer/policy", module + "/signer/signertest",
	module + "/devnode", module + "/softhsm-test/", "github.com/schollz/progressbar"}

// sharedForbidden is both.
var sharedForbidden = append(slices.Clone(coldForbidden), hotForbidden...)

// allowed are exceptions to the prefixes above.
var allowed = []string{module + "/signer/signerapi"}

type pkg struct {
	ImportPath string
	Deps       []string
	Error      *struct{ Err string }
}

// list runs `go list -deps=false -json` on patterns and returns each
// matched package with its dependency closure (test files excluded: a test
// may link both sides).
func list(t *testing.T, patterns []string) []pkg {
	t.Helper()
	args := []string{"list", "-e", "-json=ImportPath,Deps,Error"}
	for _, p := range patterns {
		args = append(args, "./"+p)
	}
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), args...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Error != nil {
			t.Fatalf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatalf("go list %q matched no package", patterns)
	}
	return pkgs
}

// matches reports whether path is forbidden by one of forbidden (an
// entry ending in "/" forbids everything beneath it; any other forbids
// the path and what is beneath it) and not allowed.
func matches(path string, forbidden []string) bool {
	if slices.Contains(allowed, path) {
		return false
	}
	for _, f := range forbidden {
		if strings.HasSuffix(f, "/") && strings.HasPrefix(path, f) {
			return true
		}
		if path == f || strings.HasPrefix(path, f+"/") && !slices.Contains(allowed, path) {
			return true
		}
	}
	return false
}

// check fails for every package of patterns (but those in skip) whose
// closure holds a forbidden package.
func check(t *testing.T, side string, patterns, forbidden, skip []string) {
	t.Helper()
	for _, p := range list(t, patterns) {
		if matches(p.ImportPath, skip) {
			continue
		}
		for _, d := range p.Deps {
			if matches(d, forbidden) {
				t.Errorf("%s package %s links %s", side, p.ImportPath, d)
			}
		}
	}
}

// TestColdLinksNothingHot: no cold package links the hot side, a dev tool,
// a throw-away token or a WebSocket client. (signer/signertest, a test
// helper that makes tokens, is the one cold package allowed the tokens.)
func TestColdLinksNothingHot(t *testing.T) {
	skip := []string{module + "/signer/signertest", module + "/signer/custodytest"}
	check(t, "cold", cold, coldForbidden, skip)
	// signertest still must not link the hot side.
	check(t, "cold (test helper)", []string{"signer/signertest"}, []string{module + "/node", module + "/gateway", module + "/devnode", "github.com/coder/websocket"}, nil)
}

// TestHotLinksNothingCold: no hot package links hsm or the signer's
// internals; the signer's contract (signerapi) is all it may know.
func TestHotLinksNothingCold(t *testing.T) {
	check(t, "hot", hot, hotForbidden, nil)
}

// signerForbidden may not be in the closure of the signer package: the
// token's code. The signer decides through its key store contract
// (internal/keystore), whose errors and status package hsm matches; only
// the binary wires an *hsm.Token in. The signer's token settings check a
// token's URI with internal/p11uri, which links no token code.
var signerForbidden = []string{module + "/hsm"}

// TestSignerLinksNoToken: the signer's packages (its key store contract
// and its settings among them) and its metrics link nothing of hsm.
// signer/signertest, a test helper that opens tokens, is the exception.
func TestSignerLinksNoToken(t *testing.T) {
	skip := []string{module + "/signer/signertest", module + "/signer/custodytest"}
	check(t, "signer", []string{"signer/...", "metrics/signermetrics"}, signerForbidden, skip)
	check(t, "token URI parser", []string{"internal/p11uri"}, signerForbidden, nil)
	// The contract is there to be checked (a pattern matching nothing fails in list).
	list(t, []string{"internal/keystore"})
}

// TestSharedLinksNeitherSide: what both sides link links neither.
func TestSharedLinksNeitherSide(t *testing.T) {
	check(t, "shared", shared, sharedForbidden, nil)
}

// TestMatches: the checker itself catches what it must (so that the tests
// above cannot pass by matching nothing).
func TestMatches(t *testing.T) {
	for _, c := range []struct {
		path      string
		forbidden []string
		want      bool
	}{
		{module + "/node", coldForbidden, true},
		{module + "/gateway", coldForbidden, true},
		{module + "/softhsm-test/softhsmtool", coldForbidden, true},
		{"github.com/coder/websocket/internal/util", coldForbidden, true},
		{module + "/nodeish", coldForbidden, false},
		{module + "/hsm", hotForbidden, true},
		{module + "/internal/p11uri", hotForbidden, true},
		{module + "/signer", hotForbidden, true},
		{module + "/signer/policy", hotForbidden, true},
		{module + "/signer/signerconf", hotForbidden, true},
		{module + "/signer/signerapi", hotForbidden, false},
		{module + "/nano", sharedForbidden, false},
	} {
		if got := matches(c.path, c.forbidden); got != c.want {
			t.Errorf("matches(%s) = %v, want %v", c.path, got, c.want)
		}
	}
}
