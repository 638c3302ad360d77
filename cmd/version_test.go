package cmd_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// goTool returns the go command that runs the tests.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// stamped is what the toolchain recorded in a binary (go version -m):
// the main module's version and the VCS settings.
type stamped struct {
	version, revision, time, modified string
}

func readStamp(t *testing.T, bin string) stamped {
	t.Helper()
	out, err := exec.Command(goTool(), "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m %s: %v", bin, err)
	}
	var s stamped
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(strings.TrimSpace(sc.Text()), "\t")
		switch {
		case len(f) >= 3 && f[0] == "mod":
			s.version = f[2]
		case len(f) == 2 && f[0] == "build":
			k, v, _ := strings.Cut(f[1], "=")
			switch k {
			case "vcs.revision":
				s.revision = v
			case "vcs.time":
				s.time = v
			case "vcs.modified":
				s.modified = v
			}
		}
	}
	return s
}

// TestVersionOfRealBuilds builds nanokms-cold as an operator does, with
// cgo and with CGO_ENABLED=0, with VCS stamping asked for, and checks that
// `version --json` reports what the toolchain recorded in each binary
// (go version -m), the toolchain's Go version, and PKCS#11 support exactly
// in the cgo build. In a git checkout that Go stamps (a clone; Go does not
// stamp from a linked worktree) the revision is the checkout's HEAD.
func TestVersionOfRealBuilds(t *testing.T) {
	dir := t.TempDir()
	goVersion, err := exec.Command(goTool(), "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cgo    string
		pkcs11 bool
	}{{"1", true}, {"0", false}} {
		t.Run("CGO_ENABLED="+c.cgo, func(t *testing.T) {
			bin := filepath.Join(dir, "nanokms-cold-cgo"+c.cgo)
			build := exec.Command(goTool(), "build", "-buildvcs=auto", "-o", bin, "./nanokms-cold")
			build.Env = append(os.Environ(), "CGO_ENABLED="+c.cgo)
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
			out, err := exec.Command(bin, "version", "--json").Output()
			if err != nil {
				t.Fatalf("nanokms-cold version --json: %v", err)
			}
			var got struct {
				Binary    string `json:"binary"`
				Version   string `json:"version"`
				Revision  string `json:"revision"`
				Time      string `json:"time"`
				Modified  bool   `json:"modified"`
				GoVersion string `json:"go_version"`
				PKCS11    bool   `json:"pkcs11"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("version --json: %v\n%s", err, out)
			}

			want := readStamp(t, bin)
			if want.version == "(devel)" || want.version == "" {
				want.version = "devel"
			}
			if want.revision == "" {
				want.revision, want.time = "unknown", "unknown"
			}
			if got.Binary != "nanokms-cold" || got.Version != want.version || got.Revision != want.revision ||
				got.Time != want.time || got.Modified != (want.modified == "true") {
				t.Errorf("version --json = %s\nthe toolchain recorded %+v", out, want)
			}
			if got.GoVersion != strings.TrimSpace(string(goVersion)) {
				t.Errorf("go_version %q, built by %q", got.GoVersion, goVersion)
			}
			if got.PKCS11 != c.pkcs11 {
				t.Errorf("pkcs11 = %v in a CGO_ENABLED=%s build", got.PKCS11, c.cgo)
			}
			if want.revision != "unknown" {
				head, err := exec.Command("git", "rev-parse", "HEAD").Output()
				if err != nil {
					t.Fatalf("the binary is stamped with a revision, but git rev-parse HEAD fails: %v", err)
				}
				if got.Revision != strings.TrimSpace(string(head)) {
					t.Errorf("revision %s, HEAD is %s", got.Revision, head)
				}
			}
			human, err := exec.Command(bin, "--version").Output()
			if err != nil {
				t.Fatalf("nanokms-cold --version: %v", err)
			}
			if !strings.HasPrefix(string(human), "nanokms-cold "+want.version+"\n") ||
				!strings.Contains(string(human), "\nrevision:    "+want.revision) {
				t.Errorf("--version:\n%s", human)
			}
		})
	}
}
