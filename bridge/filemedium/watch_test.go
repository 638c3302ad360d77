//go:build linux

package filemedium

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nanokms/nanokms/bridge/filemedium/mediumtest"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
)

// The reader's inotify watch. In these tests the poll interval is an
// hour: only inotify can wake the reader within the test's time. Each
// test learns that the reader is waiting from readerWaiting, which tells
// it the directory the reader watches during that wait.

// hourly is a poll interval no test outlasts.
const hourly = time.Hour

// waitReport is one wait of a reader: the inode it watched (0: none).
type waitReport struct{ ino uint64 }

// watchWaits installs readerWaiting for the test and returns the channel
// of the waits of r.
func watchWaits(t *testing.T, r **FileReader) <-chan waitReport {
	t.Helper()
	ch := make(chan waitReport, 64)
	readerWaiting = func(got *FileReader) {
		if got != *r {
			return
		}
		var rep waitReport
		if got.watch != nil {
			if _, ino, ok := got.watch.watched(); ok {
				rep.ino = ino
			}
		}
		select {
		case ch <- rep:
		default:
		}
	}
	t.Cleanup(func() { readerWaiting = nil })
	return ch
}

// awaitWait returns the reader's next wait, failing the test after 30 s.
func awaitWait(t *testing.T, waits <-chan waitReport) waitReport {
	t.Helper()
	select {
	case w := <-waits:
		return w
	case <-time.After(30 * time.Second):
		t.Fatal("the reader never waited")
	}
	return waitReport{}
}

// readLoop reads frames from r until the test ends and sends them on the
// channel it returns.
func readLoop(t *testing.T, r *FileReader) <-chan *frame.Received {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan *frame.Received, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			rec, err := r.ReadFrame(ctx)
			if err != nil {
				return
			}
			out <- rec
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return out
}

// awaitFrame returns the next frame read, failing the test after 30 s:
// with an hourly poll, only inotify gets it there in time.
func awaitFrame(t *testing.T, frames <-chan *frame.Received) *frame.Received {
	t.Helper()
	select {
	case rec := <-frames:
		return rec
	case <-time.After(30 * time.Second):
		t.Fatal("the reader did not wake for the new frame (inotify)")
	}
	return nil
}

func inoOf(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestReaderWakesOnInotify: a reader waiting with an hourly poll reads a
// new frame as soon as it is renamed into place.
func TestReaderWakesOnInotify(t *testing.T) {
	var r *FileReader
	waits := watchWaits(t, &r)
	b := mustFileBridge(t, FileReaderOptions{PollInterval: hourly})
	r = b.r
	frames := readLoop(t, r)
	if w := awaitWait(t, waits); w.ino != inoOf(t, b.dir) {
		t.Fatalf("the reader waits watching inode %d, want its directory's %d", w.ino, inoOf(t, b.dir))
	}
	if !r.Watching() {
		t.Fatal("Watching() = false while the reader watches its directory")
	}
	for i := range 3 {
		f := frametest.RequestFrame(t, "woken-"+string(rune('a'+i)), frametest.Time)
		b.write(t, f)
		rec := awaitFrame(t, frames)
		wantFrame(t, rec, f)
		if err := rec.Done(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReaderFollowsAReplacedDirectory: when the directory is replaced
// (the stick pulled and another put in its place), the watch follows the
// directory now at the path, and the reader wakes for a frame there.
func TestReaderFollowsAReplacedDirectory(t *testing.T) {
	var r *FileReader
	waits := watchWaits(t, &r)
	root := t.TempDir()
	dir, other := filepath.Join(root, "in"), filepath.Join(root, "other")
	mediumtest.Mkdir(t, dir)
	mediumtest.Mkdir(t, other)
	b := mustFileBridgeIn(t, dir, FileReaderOptions{PollInterval: hourly})
	r = b.r
	frames := readLoop(t, r)
	first := inoOf(t, dir)
	if w := awaitWait(t, waits); w.ino != first {
		t.Fatalf("watching inode %d, want %d", w.ino, first)
	}
	// Swap the two directories in one step.
	if err := unix.Renameat2(unix.AT_FDCWD, other, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE); err != nil {
		t.Fatal(err)
	}
	second := inoOf(t, dir)
	for {
		if w := awaitWait(t, waits); w.ino == second {
			break
		} else if w.ino != first {
			t.Fatalf("watching inode %d, want %d (the old) or %d (the new)", w.ino, first, second)
		}
	}
	f := frametest.RequestFrame(t, "after-swap", frametest.Time)
	b.write(t, f)
	wantFrame(t, awaitFrame(t, frames), f)
	// The old directory, now at the other path, is not watched: nothing
	// written there is read.
	if _, err := os.Stat(filepath.Join(other, FileName(f))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the frame went to the old directory: %v", err)
	}
}

// TestInotifyHintsChangeNoCheck: an entry planted on the medium wakes the
// reader like a frame, and is quarantined as without inotify; a file not
// named like a frame (a temporary file) is not taken for one.
func TestInotifyHintsChangeNoCheck(t *testing.T) {
	var r *FileReader
	waits := watchWaits(t, &r)
	b := mustFileBridge(t, FileReaderOptions{PollInterval: hourly})
	r = b.r
	frames := readLoop(t, r)
	awaitWait(t, waits)
	outside := filepath.Join(t.TempDir(), "secret")
	mediumtest.WriteFile(t, outside, "not for the reader")
	mediumtest.Symlink(t, outside, filepath.Join(b.dir, "evil.request.nkb"))
	awaitWait(t, waits) // woken, listed, quarantined, waiting again
	got, _ := b.rejects.Take()
	if len(got) != 1 || got[0] != "evil.request.nkb" {
		t.Fatalf("rejected %q, want the planted link", got)
	}
	if st, err := os.Lstat(filepath.Join(b.dir, QuarantineDir, "evil.request.nkb")); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link in quarantine/: %v, %v", st, err)
	}
	if data, err := os.ReadFile(outside); err != nil || string(data) != "not for the reader" {
		t.Fatalf("the link's target changed: %q, %v", data, err)
	}
	// A frame written after it is read: the reader still watches.
	f := frametest.RequestFrame(t, "after-evil", frametest.Time)
	b.write(t, f)
	wantFrame(t, awaitFrame(t, frames), f)
}

// TestReaderPollsWithoutInotify: without inotify the reader says so and
// polls.
func TestReaderPollsWithoutInotify(t *testing.T) {
	inotifyUnavailable = true
	t.Cleanup(func() { inotifyUnavailable = false })
	reports := &mediumtest.Reports{}
	b := mustFileBridge(t, FileReaderOptions{OnError: reports.OnError, PollInterval: time.Millisecond})
	if b.r.Watching() {
		t.Fatal("Watching() = true without inotify")
	}
	if !strings.Contains(reports.String(), "inotify is unavailable") {
		t.Fatalf("reported %s, want that inotify is unavailable", reports.String())
	}
	f := frametest.RequestFrame(t, "polled", frametest.Time)
	b.write(t, f)
	wantFrame(t, b.read(t), f)
}
