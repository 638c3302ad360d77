package filemedium

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge/filemedium/mediumtest"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
)

// inBothOpenModes runs f with openat2 (where the kernel has it: this one
// must) and with the O_NOFOLLOW fallback.
func inBothOpenModes(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, openat2 := range []bool{true, false} {
		name := "openat2"
		if !openat2 {
			name = "O_NOFOLLOW"
		}
		t.Run(name, func(t *testing.T) {
			if openat2 && !probeOpenat2() {
				t.Fatal("this kernel has no openat2(2) (Linux 5.6); the test expects it")
			}
			saved := useOpenat2
			useOpenat2 = func() bool { return openat2 }
			t.Cleanup(func() { useOpenat2 = saved })
			f(t)
		})
	}
}

// swapForLink renames path to path.orig and puts a link to target in
// its place: what a hostile writer does between two steps of ours.
func swapForLink(t *testing.T, path, target string) {
	t.Helper()
	if err := os.Rename(path, path+".orig"); err != nil {
		t.Error(err)
		return
	}
	if err := os.Symlink(target, path); err != nil {
		t.Error(err)
	}
}

// at runs swap once, when the transport reaches crash point point, and
// lets the transport go on.
func at(t *testing.T, point string, swap func()) {
	t.Helper()
	done := false
	crashHook = func(p string) error {
		if p == point && !done {
			done = true
			swap()
		}
		return nil
	}
	t.Cleanup(func() {
		crashHook = nil
		if !done {
			t.Errorf("crash point %s was never reached", point)
		}
	})
}

// TestFileSwapDuringOperation swaps a directory of the medium for a link
// outside at each crash point between a check and the operation it
// guards: every operation stays on the directory it opened, and nothing
// outside the medium changes.
func TestFileSwapDuringOperation(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, m *mediumtest.Attack, b *fileBridge)
		// where the frame must be afterwards, relative to the medium root
		want []string
	}{
		{"done/ swapped before the file moves into it", func(t *testing.T, m *mediumtest.Attack, b *fileBridge) {
			rec := b.read(t)
			at(t, "settle:before-rename", func() { swapForLink(t, filepath.Join(m.ToCold, DoneDir), filepath.Join(m.Outside, DoneDir)) })
			if err := rec.Done(); err != nil {
				t.Fatal(err)
			}
		}, []string{"to-cold/done.orig/outside.request.nkb"}},
		{"quarantine/ swapped before the file moves into it", func(t *testing.T, m *mediumtest.Attack, b *fileBridge) {
			rec := b.read(t)
			at(t, "settle:before-rename", func() {
				swapForLink(t, filepath.Join(m.ToCold, QuarantineDir), filepath.Join(m.Outside, QuarantineDir))
			})
			if err := rec.Reject("no"); err != nil {
				t.Fatal(err)
			}
		}, []string{"to-cold/quarantine.orig/outside.request.nkb", "to-cold/quarantine.orig/outside.request.nkb.reason"}},
		{"quarantine/ swapped before the .reason is written", func(t *testing.T, m *mediumtest.Attack, b *fileBridge) {
			rec := b.read(t)
			at(t, "settle:before-reason", func() {
				swapForLink(t, filepath.Join(m.ToCold, QuarantineDir), filepath.Join(m.Outside, QuarantineDir))
			})
			if err := rec.Reject("no"); err != nil {
				t.Fatal(err)
			}
		}, []string{"to-cold/quarantine.orig/outside.request.nkb", "to-cold/quarantine.orig/outside.request.nkb.reason"}},
		{"the reader's directory swapped before the file moves", func(t *testing.T, m *mediumtest.Attack, b *fileBridge) {
			// outside holds a file of the frame's name: a path-based move
			// would take it into outside/done/.
			rec := b.read(t)
			at(t, "settle:before-rename", func() { swapForLink(t, m.ToCold, m.Outside) })
			if err := rec.Done(); err != nil {
				t.Fatal(err)
			}
		}, []string{"to-cold.orig/done/outside.request.nkb"}},
		{"the writer's directory swapped before the rename", func(t *testing.T, m *mediumtest.Attack, b *fileBridge) {
			at(t, "write:before-rename", func() { swapForLink(t, m.ToCold, m.Outside) })
			if err := b.w.WriteFrame(context.Background(), frametest.RequestFrame(t, "second", frametest.Time)); err != nil {
				t.Fatal(err)
			}
		}, []string{"to-cold.orig/second.request.nkb"}},
	}
	inBothOpenModes(t, func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				m := mediumtest.NewAttack(t)
				b := mustFileBridgeIn(t, m.ToCold, FileReaderOptions{})
				b.write(t, frametest.RequestFrame(t, "outside", frametest.Time))
				c.run(t, m, b)
				crashHook = nil
				m.WantOutsideUnchanged(t)
				for _, p := range c.want {
					if _, err := os.Lstat(filepath.Join(m.Root, p)); err != nil {
						t.Errorf("want %s: %v", p, err)
					}
				}
			})
		}
	})
}

// TestFileHeldWhenDoneUnusable: a regular file named done is set aside,
// but the medium has no inode left for a new done/: the frame cannot be
// settled. Done returns nil (the consumer goes on), the failure is
// reported, the frame stays in place and is not handed out again (a
// restarted reader reads it: it is not lost), and once an inode is free
// and the pause is over it moves into done/.
func TestFileHeldWhenDoneUnusable(t *testing.T) {
	mnt := mediumtest.MustTmpfs(t, "size=1m,nr_inodes=64")
	dir := filepath.Join(mnt, "to-cold")
	mediumtest.Mkdir(t, dir)
	reports := &mediumtest.Reports{}
	b := mustFileBridgeIn(t, dir, FileReaderOptions{OnError: reports.OnError})
	f := frametest.RequestFrame(t, "held", frametest.Time)
	b.write(t, f)
	rec := b.read(t)
	mediumtest.WriteFile(t, filepath.Join(dir, DoneDir), "a file where done/ belongs")
	fillers := mediumtest.FillInodes(t, mnt)
	if err := rec.Done(); err != nil {
		t.Fatalf("Done: %v, want nil (the reader holds the frame)", err)
	}
	reports.WantReported(t, IsBadEntryAt, []string{filepath.Join(dir, DoneDir)}, nil)

	var full bool
	for _, err := range reports.Errs() {
		full = full || errors.Is(err, ErrMediumFull) && errors.Is(err, syscall.ENOSPC)
	}

	if !full {
		t.Fatalf("the full medium was not reported: %s", reports)
	}
	for range 3 {
		b.nothing(t) // held: not handed out again, however often the reader looks
	}
	if _, err := os.Lstat(filepath.Join(dir, "held.request.nkb")); err != nil {
		t.Fatalf("the held frame is not in place: %v", err)
	}
	// Not lost: a reader started afresh (the relay restarted) reads it.
	b2, err := NewFileReader(dir, FileReaderOptions{Now: func() time.Time { return frametest.Time }})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if r2 := b2.next(1); len(r2) != 1 || r2[0].Name != "held.request.nkb" {
		t.Fatalf("a new reader read %v, want the held frame", r2)
	}
	// An inode is free, but the pause is not over: no retry yet.
	if err := os.Remove(fillers[0]); err != nil {
		t.Fatal(err)
	}
	b.nothing(t)
	mediumtest.WantNames(t, mediumtest.Ls(t, dir, DoneDir))
	b.now = b.now.Add(heldRetryMin)
	b.nothing(t)
	mediumtest.WantNames(t, mediumtest.Ls(t, dir, DoneDir), "held.request.nkb")
	if _, err := os.Lstat(filepath.Join(dir, "held.request.nkb")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the frame is still in place after the retry: %v", err)
	}
}

// TestFileWriterMediumFull: on a full medium WriteFrame returns an error
// wrapping ErrMediumFull and ENOSPC and leaves nothing behind (no
// temporary file, no partial frame); once space is back it writes.
func TestFileWriterMediumFull(t *testing.T) {
	mnt := mediumtest.MustTmpfs(t, "size=256k")
	dir := filepath.Join(mnt, "to-hot")
	w, err := NewFileWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	filler := mediumtest.FillBytes(t, mnt)
	f := frametest.RequestFrame(t, "full", frametest.Time)
	err = w.WriteFrame(context.Background(), f)
	if !errors.Is(err, ErrMediumFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteFrame on a full medium: %v, want ErrMediumFull and ENOSPC", err)
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, dir, ""))
	if tmp := mediumtest.TempFiles(t, mnt); len(tmp) != 0 {
		t.Fatalf("left %q", tmp)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(context.Background(), f); err != nil {
		t.Fatalf("WriteFrame with space back: %v", err)
	}
	g, err := LoadFrameFile(filepath.Join(dir, FileName(f)))
	if err != nil || !frametest.SameFrame(f, g) {
		t.Fatalf("the frame written: %v", err)
	}
}

// TestFileReasonMediumFull: a bad frame quarantined on a full medium is
// moved into quarantine/ (never read again) but its .reason cannot be
// written: nothing half-written is left, and the failure is reported.
func TestFileReasonMediumFull(t *testing.T) {
	mnt := mediumtest.MustTmpfs(t, "size=256k")
	dir := filepath.Join(mnt, "to-cold")
	mediumtest.Mkdir(t, filepath.Join(dir, QuarantineDir))
	reports := &mediumtest.Reports{}
	b := mustFileBridgeIn(t, dir, FileReaderOptions{OnError: reports.OnError})
	mediumtest.WriteFile(t, filepath.Join(dir, mediumtest.BadFrame), "not a frame")
	mediumtest.FillBytes(t, mnt)
	b.nothing(t)
	b.wantRejected(t, frame.ErrCodeTruncated, mediumtest.BadFrame)
	mediumtest.WantNames(t, mediumtest.Ls(t, dir, QuarantineDir), mediumtest.BadFrame)
	if tmp := mediumtest.TempFiles(t, mnt); len(tmp) != 0 {
		t.Fatalf("left %q", tmp)
	}
	for _, err := range reports.Errs() {
		if errors.Is(err, ErrMediumFull) && strings.Contains(err.Error(), ".reason") {
			return
		}
	}
	t.Fatalf("the .reason that could not be written was not reported: %v", reports.Errs())
}
