// Package mediumtest holds the helpers of the tests that attack a file
// medium: a medium with an "outside" directory that must never change,
// planted entries, a small tmpfs to fill, and the record of what a medium
// reported. It is for tests only and, so that package filemedium's own
// tests can use it, it does not import filemedium: the names it writes
// and looks for are the ones FRAMES.md specifies.
package mediumtest

import (
	"crypto/rand"
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

// The medium's names (FRAMES.md, "Files"), spelt here again so that this
// package need not import filemedium; a test of filemedium checks that
// the two agree.
const (
	DoneDir       = "done"
	QuarantineDir = "quarantine"
	FileSuffix    = ".nkb"
	TempPrefix    = ".tmp-"
	SetAsideMark  = ".bad-"
)

// FileName is the name a frame's file has on the medium.
func FileName(f *frame.Frame) string { return f.RequestID + "." + f.Type.String() + FileSuffix }

// loadFrameFile reads and decodes the frame file at path.
func loadFrameFile(path string) (*frame.Frame, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return frame.DecodeFrame(b)
}

// randomName returns 16 random hex digits.
func randomName() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Attack is a bridge medium an attacker has written to: a root
// with to-cold and to-hot, and an outside directory (not on the medium)
// with sentinel files that every planted link points into. Nothing in
// outside may change.
type Attack struct {
	Root, ToCold, ToHot, Outside string
	before                       map[string]string
}

// OutsideTmp is a sentinel named as a writer names its temporary files:
// a writer that followed a link into outside would delete it.
const OutsideTmp = ".tmp-victim-0123456789abcdef"

// NewAttack returns a fresh attacked medium under t.TempDir().
func NewAttack(t *testing.T) *Attack {
	t.Helper()
	base := t.TempDir()
	m := &Attack{Root: filepath.Join(base, "medium"), Outside: filepath.Join(base, "outside")}
	m.ToCold, m.ToHot = filepath.Join(m.Root, "to-cold"), filepath.Join(m.Root, "to-hot")
	for _, d := range []string{m.Root, m.ToCold, m.ToHot, m.Outside,
		filepath.Join(m.Outside, DoneDir), filepath.Join(m.Outside, QuarantineDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		"victim.txt": "must not change\n", OutsideTmp: "a temporary file of someone else\n",
		"reason-victim": "not a .reason file\n",
	} {
		if err := os.WriteFile(filepath.Join(m.Outside, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A good frame outside, for links named like a frame.
	if err := os.WriteFile(filepath.Join(m.Outside, "outside.request.nkb"), frametest.MustMarshal(t, frametest.RequestFrame(t, "outside", time.Now())), 0o644); err != nil {
		t.Fatal(err)
	}
	m.before = SnapshotTree(t, m.Outside)
	return m
}

// WantOutsideUnchanged checks that nothing was written, moved or removed
// outside the medium.
func (m *Attack) WantOutsideUnchanged(t *testing.T) {
	t.Helper()
	after := SnapshotTree(t, m.Outside)
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

// SnapshotTree describes every entry under dir (links are not followed).
func SnapshotTree(t *testing.T, dir string) map[string]string {
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

// Reports collects what a medium reported: OnError and OnReject.
type Reports struct {
	mu       sync.Mutex
	errs     []error
	rejected []string
}

// OnError records err (a FileReaderOptions.OnError).
func (r *Reports) OnError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

// OnReject records name (a RejectFunc).
func (r *Reports) OnReject(name string, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejected = append(r.rejected, name)
}

// Entry returns the bad entry reported for path (an error for which
// isEntry(err, path) holds), or nil.
func (r *Reports) Entry(isEntry func(err error, path string) bool, path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, err := range r.errs {
		if isEntry(err, path) {
			return err
		}
	}
	return nil
}

// Errs returns the errors reported to OnError, in order.
func (r *Reports) Errs() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

// WasRejected reports whether name was refused.
func (r *Reports) WasRejected(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.rejected, name)
}

// String lists what was reported.
func (r *Reports) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "rejected %q; errors:", r.rejected)
	for _, err := range r.errs {
		fmt.Fprintf(&b, "\n  %v", err)
	}
	return b.String()
}

// WantReported checks that every path was reported as a bad entry (as
// isEntry, filemedium.IsBadEntryAt, tells) and every name as a refused
// frame.
func (r *Reports) WantReported(t *testing.T, isEntry func(err error, path string) bool, paths, names []string) {
	t.Helper()
	for _, p := range paths {
		if r.Entry(isEntry, p) == nil {
			t.Errorf("%s was not reported as a bad entry (%s)", p, r)
		}
	}
	for _, n := range names {
		if !r.WasRejected(n) {
			t.Errorf("%s was not reported as refused (%s)", n, r)
		}
	}
}

// PutFrame writes f into dir as a hot side's writer would (a temporary
// file renamed into place), with plain path calls: dir is a real
// directory of the test's.
func PutFrame(t *testing.T, dir string, f *frame.Frame) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp-test-"+randomName())
	if err := os.WriteFile(tmp, frametest.MustMarshal(t, f), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, FileName(f))); err != nil {
		t.Fatal(err)
	}
}

// RawFrame encodes f with its request id replaced by id, checksum and
// all, bypassing the encoder's checks: what a hostile writer can make.
func RawFrame(t *testing.T, f *frame.Frame, id string) []byte {
	t.Helper()
	g := *f
	g.RequestID = strings.Repeat("x", len(id))
	b := frametest.MustMarshal(t, &g)
	copy(b[7:], id)
	n := len(b) - 4
	return append(b[:n], frametest.CRC(b[:n])...)
}

// AnswerOf waits (up to 30 s) until an answer frame (response or
// refusal) for id is in dir, and returns it. (It looks for the two names
// rather than running a reader, which would quarantine what an attack
// case planted there.)
func AnswerOf(t *testing.T, dir, id string) *frame.Frame {
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
			if f, err := loadFrameFile(path); err == nil && f.RequestID == id && f.Type == typ {
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

// MustTmpfs mounts a tmpfs with opts ("size=…,nr_inodes=…") on a new
// directory and unmounts it at the end. Mounting needs root: the test
// fails, loudly, without it (CI runs as root).
func MustTmpfs(t *testing.T, opts string) string {
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

// FillBytes writes a file in dir until the file system has no space
// left, and returns it.
func FillBytes(t *testing.T, dir string) string {
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

// FillInodes makes empty files in dir until the file system has no
// inode left, and returns their paths.
func FillInodes(t *testing.T, dir string) []string {
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

// TempFiles returns the names of temporary files under dir.
func TempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), TempPrefix) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func Symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func WriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func Mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

func Mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// WantSetAside checks that the entry at path was renamed to
// path.bad-<16 hex digits>, and is still what was planted.
func WantSetAside(t *testing.T, path string, isLink bool) {
	t.Helper()
	matches, _ := filepath.Glob(path + SetAsideMark + "*")
	if len(matches) != 1 {
		t.Fatalf("%s set aside as %q, want one %s%s… entry", path, matches, filepath.Base(path), SetAsideMark)
	}
	st, err := os.Lstat(matches[0])
	if err != nil || (st.Mode()&os.ModeSymlink != 0) != isLink {
		t.Fatalf("the entry set aside as %s: %v, %v", matches[0], st.Mode(), err)
	}
	if st, err := os.Lstat(path); err != nil || !st.IsDir() {
		t.Fatalf("%s is not a directory now: %v", path, err)
	}
}

// BadFrame is a file named like a request frame that is not one: the
// reader must quarantine it.
const BadFrame = "bad.request.nkb"

// Ls returns the names in dir/sub ("" for dir), sorted.
func Ls(t *testing.T, dir, sub string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, sub))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// WantNames fails the test unless got is want.
func WantNames(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Fatalf("names %q, want %q", got, want)
	}
}
