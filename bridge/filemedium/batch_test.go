package filemedium

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge/filemedium/mediumtest"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
)

// syncCounter counts the directory syncs of the medium (syncHook) by
// directory, for one test.
type syncCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func countSyncs(t *testing.T) *syncCounter {
	t.Helper()
	c := &syncCounter{n: map[string]int{}}
	syncHook = func(dir string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.n[filepath.Clean(dir)]++
	}
	t.Cleanup(func() { syncHook = nil })
	return c
}

// take returns the syncs of dir since the last take, and forgets them.
func (c *syncCounter) take(dir string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	dir = filepath.Clean(dir)
	n := c.n[dir]
	delete(c.n, dir)
	return n
}

func batchFrames(t *testing.T, n int, prefix string) []*frame.Frame {
	t.Helper()
	fs := make([]*frame.Frame, n)
	for i := range fs {
		fs[i] = frametest.RequestFrame(t, fmt.Sprintf("%s-%02d", prefix, i), frametest.Time.Add(time.Duration(i)*time.Millisecond))
	}
	return fs
}

// TestWriteFramesSyncsTheDirectoryOnce: a batch of frames costs one sync
// of the directory (WriteFrame costs one per frame), and every frame is
// in place, whole, under its name.
func TestWriteFramesSyncsTheDirectoryOnce(t *testing.T) {
	const n = 8
	b := mustFileBridge(t, FileReaderOptions{})
	syncs := countSyncs(t)
	fs := batchFrames(t, n, "batch")
	got, err := b.w.WriteFrames(context.Background(), fs)
	if err != nil || got != n {
		t.Fatalf("WriteFrames = %d, %v; want %d, nil", got, err, n)
	}
	if s := syncs.take(b.dir); s != 1 {
		t.Fatalf("%d syncs of the directory for a batch of %d, want 1", s, n)
	}
	for _, f := range batchFrames(t, n, "single") {
		b.write(t, f)
	}
	if s := syncs.take(b.dir); s != n {
		t.Fatalf("%d syncs of the directory for %d WriteFrame calls, want %d", s, n, n)
	}
	names := mediumtest.Ls(t, b.dir, "")
	if len(names) != 2*n {
		t.Fatalf("the directory holds %q, want %d frame files", names, 2*n)
	}
	for _, f := range fs {
		got, err := LoadFrameFile(filepath.Join(b.dir, FileName(f)))
		if err != nil || !frametest.SameFrame(got, f) {
			t.Fatalf("%s: %v", FileName(f), err)
		}
	}
}

// TestWriteFramesStopsAtABadFrame: a frame that cannot be written stops
// the batch; the frames before it are durable (the directory synced once),
// it and those after it leave nothing on the medium.
func TestWriteFramesStopsAtABadFrame(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{})
	syncs := countSyncs(t)
	fs := batchFrames(t, 5, "stop")
	fs[2] = &frame.Frame{Type: frame.TypeRequest, RequestID: "bad/id", Created: frametest.Time, Payload: []byte{1}}
	n, err := b.w.WriteFrames(context.Background(), fs)
	var fe *frame.FrameError
	if n != 2 || !errors.As(err, &fe) || fe.Code != frame.ErrCodeRequestID {
		t.Fatalf("WriteFrames = %d, %v; want 2 and a bad request id", n, err)
	}
	if s := syncs.take(b.dir); s != 1 {
		t.Fatalf("%d syncs of the directory, want 1 (for the two written)", s)
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, ""), FileName(fs[0]), FileName(fs[1]))

	// A batch stopped at its first frame writes and syncs nothing.
	n, err = b.w.WriteFrames(context.Background(), fs[2:])
	if n != 0 || err == nil {
		t.Fatalf("WriteFrames = %d, %v; want 0 and an error", n, err)
	}
	if s := syncs.take(b.dir); s != 0 {
		t.Fatalf("%d syncs of the directory for nothing written", s)
	}
}

// TestWriteFramesCrashBeforeTheDirectorySync: a crash after the renames
// and before the one sync leaves every frame in place (the power going
// could lose them; the hot side resends until answered) and reports none
// durable.
func TestWriteFramesCrashBeforeTheDirectorySync(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{})
	crash := errors.New("crash")
	renamesBefore := 0
	crashHook = func(p string) error {
		switch p {
		case "write:before-rename":
			renamesBefore++
		case "write:before-dirsync":
			return crash
		}
		return nil
	}
	t.Cleanup(func() { crashHook = nil })
	fs := batchFrames(t, 3, "crashy")
	n, err := b.w.WriteFrames(context.Background(), fs)
	if n != 0 || !errors.Is(err, crash) {
		t.Fatalf("WriteFrames = %d, %v; want 0 and the crash", n, err)
	}
	if renamesBefore != 3 {
		t.Fatalf("%d renames before the crash, want 3", renamesBefore)
	}
	crashHook = nil
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, ""), FileName(fs[0]), FileName(fs[1]), FileName(fs[2]))
}

// TestReadFramesAndDoneAll: the frames waiting are handed out together,
// in order, up to the bound asked for; DoneAll moves them all into done/
// with one sync of done/ and one of the directory.
func TestReadFramesAndDoneAll(t *testing.T) {
	const n = 6
	b := mustFileBridge(t, FileReaderOptions{})
	fs := batchFrames(t, n, "rd")
	if _, err := b.w.WriteFrames(context.Background(), fs); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := b.r.ReadFrames(ctx, 4)
	if err != nil || len(first) != 4 {
		t.Fatalf("ReadFrames(4) = %d frames, %v; want 4", len(first), err)
	}
	rest, err := b.r.ReadFrames(ctx, 100)
	if err != nil || len(rest) != n-4 {
		t.Fatalf("ReadFrames(100) = %d frames, %v; want %d", len(rest), err, n-4)
	}
	all := append(first, rest...)
	for i, rec := range all {
		wantFrame(t, rec, fs[i])
	}
	mediumtest.Mkdir(t, filepath.Join(b.dir, DoneDir)) // making it costs a sync of its own
	syncs := countSyncs(t)
	if err := b.r.DoneAll(all); err != nil {
		t.Fatal(err)
	}
	if s, d := syncs.take(b.dir), syncs.take(filepath.Join(b.dir, DoneDir)); s != 1 || d != 1 {
		t.Fatalf("DoneAll of %d frames synced the directory %d times and done/ %d times, want 1 and 1", n, s, d)
	}
	var want []string
	for _, f := range fs {
		want = append(want, FileName(f))
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, DoneDir), want...)
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, "")) // Ls lists files only
	// Settled already: a second DoneAll does nothing.
	if err := b.r.DoneAll(all); err != nil {
		t.Fatal(err)
	}
	if s := syncs.take(b.dir); s != 0 {
		t.Fatalf("a repeated DoneAll synced the directory %d times", s)
	}
	b.nothing(t)
}

// TestDoneAllLeavesAResend: a frame replaced by a resend after it was
// read is not moved by DoneAll: the resend is read next.
func TestDoneAllLeavesAResend(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{})
	fs := batchFrames(t, 2, "resent")
	if _, err := b.w.WriteFrames(context.Background(), fs); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := b.r.ReadFrames(ctx, 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("ReadFrames = %d, %v", len(recs), err)
	}
	again := frametest.RequestFrame(t, "resent-01", frametest.Time.Add(time.Second))
	b.write(t, again)
	if err := b.r.DoneAll(recs); err != nil {
		t.Fatal(err)
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, DoneDir), FileName(fs[0]))
	wantFrame(t, b.read(t), again)
}

// TestDoneAllHoldsWhatItCannotMove: when done/ cannot be made (the
// medium has no inode left), the frames stay in place and are not handed
// out again; once it can, they move.
func TestDoneAllHoldsWhatItCannotMove(t *testing.T) {
	mnt := mediumtest.MustTmpfs(t, "size=1m,nr_inodes=64")
	dir := filepath.Join(mnt, "in")
	mediumtest.Mkdir(t, dir)
	now := frametest.Time
	b := mustFileBridgeIn(t, dir, FileReaderOptions{Now: func() time.Time { return now }})
	fs := batchFrames(t, 2, "held")
	if _, err := b.w.WriteFrames(context.Background(), fs); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := b.r.ReadFrames(ctx, 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("ReadFrames = %d, %v", len(recs), err)
	}
	fillers := mediumtest.FillInodes(t, mnt)
	if err := b.r.DoneAll(recs); err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if _, err := os.Lstat(filepath.Join(dir, FileName(f))); err != nil {
			t.Fatalf("%s left its place: %v", FileName(f), err)
		}
	}
	b.nothing(t)
	// An inode is free again and the pause is over: both move.
	if err := os.Remove(fillers[0]); err != nil {
		t.Fatal(err)
	}
	now = now.Add(heldRetryMax)
	b.nothing(t)
	var want []string
	for _, f := range fs {
		want = append(want, FileName(f))
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, dir, DoneDir), want...)
}
