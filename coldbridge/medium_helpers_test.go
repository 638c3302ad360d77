package coldbridge

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
)

// attackMedium is a bridge medium an attacker has written to: a root
// with to-cold and to-hot, and an outside directory (not on the medium)
// with sentinel files that every planted link points into. Nothing in
// outside may change.
type attackMedium struct {
	root, toCold, toHot, outside string
	before                       map[string]string
}

// outsideTmp is a sentinel named as a writer names its temporary files:
// a writer that followed a link into outside would delete it.
const outsideTmp = ".tmp-victim-0123456789abcdef"

func newAttackMedium(t *testing.T) *attackMedium {
	t.Helper()
	base := t.TempDir()
	m := &attackMedium{root: filepath.Join(base, "medium"), outside: filepath.Join(base, "outside")}
	m.toCold, m.toHot = filepath.Join(m.root, "to-cold"), filepath.Join(m.root, "to-hot")
	for _, d := range []string{m.root, m.toCold, m.toHot, m.outside,
		filepath.Join(m.outside, DoneDir), filepath.Join(m.outside, QuarantineDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		"victim.txt": "must not change\n", outsideTmp: "a temporary file of someone else\n",
		"reason-victim": "not a .reason file\n",
	} {
		if err := os.WriteFile(filepath.Join(m.outside, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A good frame outside, for links named like a frame.
	if err := os.WriteFile(filepath.Join(m.outside, "outside.request.nkb"), frametest.MustMarshal(t, frametest.RequestFrame(t, "outside", time.Now())), 0o644); err != nil {
		t.Fatal(err)
	}
	m.before = snapshotTree(t, m.outside)
	return m
}

// wantOutsideUnchanged checks that nothing was written, moved or removed
// outside the medium.
func (m *attackMedium) wantOutsideUnchanged(t *testing.T) {
	t.Helper()
	after := snapshotTree(t, m.outside)
	for p, was := range m.before {
		if now, ok := after[p]; !ok {
			t.Errorf("outside the medium: %s was removed or moved", p)
		} else if now != was {
			t.Errorf("outside the medium: %s changed: %s → %s", p, was, now)
		}
	}
	for p, now := range after {
		if _, ok := m.before[p]; !ok {
			t.Errorf("outside the medium: %s (%s) appeared", p, now)
		}
	}
}

// snapshotTree describes every entry under dir (links are not followed).
func snapshotTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := st.Mode().String()
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " → " + target
		case st.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			desc += " " + hex.EncodeToString(sum[:8])
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mediumReports collects what a medium reported: OnError and OnReject.
type mediumReports struct {
	mu       sync.Mutex
	errs     []error
	rejected []string
}

func (r *mediumReports) onError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *mediumReports) onReject(name string, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejected = append(r.rejected, name)
}

// entry returns the *EntryError reported for path, or nil.
func (r *mediumReports) entry(path string) *EntryError {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, err := range r.errs {
		var ee *EntryError
		if errors.As(err, &ee) && ee.Path == path && errors.Is(err, ErrBadEntry) {
			return ee
		}
	}
	return nil
}

func (r *mediumReports) wasRejected(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.rejected, name)
}

func (r *mediumReports) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "rejected %q; errors:", r.rejected)
	for _, err := range r.errs {
		fmt.Fprintf(&b, "\n  %v", err)
	}
	return b.String()
}

// wantReported checks that every path was reported as a bad entry and
// every name as a refused frame.
func (r *mediumReports) wantReported(t *testing.T, paths, names []string) {
	t.Helper()
	for _, p := range paths {
		if r.entry(p) == nil {
			t.Errorf("%s was not reported as a bad entry (%s)", p, r)
		}
	}
	for _, n := range names {
		if !r.wasRejected(n) {
			t.Errorf("%s was not reported as refused (%s)", n, r)
		}
	}
}

// putFrame writes f into dir as a hot side's writer would (a temporary
// file renamed into place), with plain path calls: dir is a real
// directory of the test's.
func putFrame(t *testing.T, dir string, f *frame.Frame) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp-test-"+randomHex())
	if err := os.WriteFile(tmp, frametest.MustMarshal(t, f), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, FileName(f))); err != nil {
		t.Fatal(err)
	}
}

// rawFrame encodes f with its request id replaced by id, checksum and
// all, bypassing the encoder's checks: what a hostile writer can make.
func rawFrame(t *testing.T, f *frame.Frame, id string) []byte {
	t.Helper()
	g := *f
	g.RequestID = strings.Repeat("x", len(id))
	b := frametest.MustMarshal(t, &g)
	copy(b[7:], id)
	n := len(b) - 4
	return append(b[:n], frametest.CRC(b[:n])...)
}

// answerOf waits (up to 30 s) until an answer frame (response or
// refusal) for id is in dir, and returns it. (It looks for the two names
// rather than running a reader, which would quarantine what an attack
// case planted there.)
func answerOf(t *testing.T, dir, id string) *frame.Frame {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		for _, typ := range []frame.FrameType{frame.TypeResponse, frame.TypeRefusal} {
			path := filepath.Join(dir, id+"."+typ.String()+FileSuffix)
			if st, err := os.Lstat(path); err != nil || !st.Mode().IsRegular() {
				continue
			}
			if f, err := LoadFrameFile(path); err == nil && f.RequestID == id && f.Type == typ {
				return f
			}
		}
		select {
		case <-deadline:
			t.Fatalf("no answer to %s in %s", id, dir)
		case <-tick.C:
		}
	}
}

// mustTmpfs mounts a tmpfs with opts ("size=…,nr_inodes=…") on a new
// directory and unmounts it at the end. Mounting needs root: the test
// fails, loudly, without it (CI runs as root).
func mustTmpfs(t *testing.T, opts string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test fills a small tmpfs, which it must mount: run it as root (CI does); running as uid %d", os.Geteuid())
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		t.Fatalf("mounting a tmpfs (%s) on %s: %v (the test needs root with CAP_SYS_ADMIN)", opts, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// fillBytes writes a file in dir until the file system has no space
// left, and returns it.
func fillBytes(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := fh.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return path
		}
	}
}

// fillInodes makes empty files in dir until the file system has no
// inode left, and returns their paths.
func fillInodes(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	for i := 0; ; i++ {
		p := filepath.Join(dir, fmt.Sprintf("inode-%d", i))
		fh, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return paths
		}
		fh.Close()
		paths = append(paths, p)
	}
}

// tempFiles returns the names of temporary files under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), tempPrefix) {
			out = append(out, p)
		}
		return nil
	})
	return out
}
