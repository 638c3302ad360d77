// Package serialtest gives tests real serial lines: pseudo-terminal
// pairs, and pairs of ptys joined by socat (installed with apt-get when
// missing, never skipped). It is for tests only.
package serialtest

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/creack/pty"
)

// MustPTYPair returns a new pseudo-terminal's two sides.
func MustPTYPair(t testing.TB) (ptmx, tty *os.File) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() {
		tty.Close()
		ptmx.Close()
	})
	return ptmx, tty
}

// StartSocatPair runs socat as a null-modem cable between two new
// pseudo-terminals and returns their paths (symbolic links in a temporary
// directory). socat is installed from Debian if it is missing.
func StartSocatPair(t testing.TB) (a, b string) {
	t.Helper()
	socat := MustSocat(t)
	dir := t.TempDir()
	a, b = filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cmd := exec.Command(socat, "-d", "-d", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// socat says "starting data transfer loop" once both ends exist.
	sc := bufio.NewScanner(stderr)
	var log []string
	for sc.Scan() {
		log = append(log, sc.Text())
		if strings.Contains(sc.Text(), "starting data transfer loop") {
			go io.Copy(io.Discard, stderr)
			return a, b
		}
	}
	t.Fatalf("socat did not start:\n%s", strings.Join(log, "\n"))
	return "", ""
}

var socatOnce struct {
	sync.Once
	path string
	err  error
}

// MustSocat returns socat's path, installing the Debian package (as root,
// with apt-get) if it is not there. It never skips: a missing socat that
// cannot be installed fails the test.
func MustSocat(t testing.TB) string {
	t.Helper()
	socatOnce.Do(func() {
		if p, err := exec.LookPath("socat"); err == nil {
			socatOnce.path = p
			return
		}
		out, err := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "socat").CombinedOutput()
		if err != nil {
			upd, uerr := exec.Command("apt-get", "update").CombinedOutput()
			if uerr != nil {
				socatOnce.err = errors.New("apt-get update: " + uerr.Error() + "\n" + string(upd))
				return
			}
			if out, err = exec.Command("apt-get", "install", "-y", "--no-install-recommends", "socat").CombinedOutput(); err != nil {
				socatOnce.err = errors.New("apt-get install socat: " + err.Error() + "\n" + string(out))
				return
			}
		}
		socatOnce.path, socatOnce.err = exec.LookPath("socat")
	})
	if socatOnce.err != nil {
		t.Fatalf("socat is needed: %v", socatOnce.err)
	}
	return socatOnce.path
}
