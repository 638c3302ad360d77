package filemedium

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge/filemedium/mediumtest"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
)

// fileBridge is a FileWriter and a FileReader on one directory, with a
// fixed clock.
type fileBridge struct {
	dir     string
	w       *FileWriter
	r       *FileReader
	rejects *frametest.RejectLog
	now     time.Time
}

func mustFileBridge(t *testing.T, opts FileReaderOptions) *fileBridge {
	t.Helper()
	dir := t.TempDir()
	return mustFileBridgeIn(t, dir, opts)
}

func mustFileBridgeIn(t *testing.T, dir string, opts FileReaderOptions) *fileBridge {
	t.Helper()
	b := &fileBridge{dir: dir, rejects: &frametest.RejectLog{}, now: frametest.Time}
	var err error
	if b.w, err = NewFileWriter(dir); err != nil {
		t.Fatal(err)
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return b.now }
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = time.Millisecond
	}
	opts.OnReject = b.rejects.Record
	if b.r, err = NewFileReader(dir, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.r.Close() })
	return b
}

func (b *fileBridge) write(t *testing.T, f *frame.Frame) {
	t.Helper()
	if err := b.w.WriteFrame(context.Background(), f); err != nil {
		t.Fatal(err)
	}
}

// read returns the next frame, failing the test if none comes in 10 s.
func (b *fileBridge) read(t *testing.T) *frame.Received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := b.r.ReadFrame(ctx)
	if err != nil {
		t.Fatalf("ReadFrame: %v", err)
	}
	return rec
}

// nothing checks that the directory holds no frame to read now.
func (b *fileBridge) nothing(t *testing.T) {
	t.Helper()
	if recs := b.r.next(1); len(recs) != 0 {
		t.Fatalf("read %s, want nothing", recs[0].Name)
	}
}

// wantRejected checks that exactly the given names were refused, each
// with a *FrameError of code (0: any code), and returns the errors.
func (b *fileBridge) wantRejected(t *testing.T, code frame.WireError, names ...string) []error {
	t.Helper()
	got, errs := b.rejects.Take()
	if !slices.Equal(got, names) {
		t.Fatalf("rejected %q, want %q (errors %v)", got, names, errs)
	}
	for _, err := range errs {
		var fe *frame.FrameError
		if !errors.As(err, &fe) {
			t.Fatalf("reject error %v is not a *FrameError", err)
		}
		if code != 0 && fe.Code != code {
			t.Fatalf("reject error %v, want code %s", err, code)
		}
	}
	return errs
}

func wantFrame(t *testing.T, rec *frame.Received, f *frame.Frame) {
	t.Helper()
	if !frametest.SameFrame(rec.Frame, f) {
		t.Fatalf("read %s %s created %v, want %s %s created %v", rec.Frame.Type, rec.Frame.RequestID, rec.Frame.Created, f.Type, f.RequestID, f.Created)
	}
	if rec.Name != FileName(f) {
		t.Fatalf("name %q, want %q", rec.Name, FileName(f))
	}
}

func TestFileWriteReadDone(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{})
	req := frametest.RequestFrame(t, "withdrawal-1", frametest.Time)
	b.write(t, req)
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, ""), "withdrawal-1.request.nkb")
	data, err := os.ReadFile(filepath.Join(b.dir, "withdrawal-1.request.nkb"))
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != string(frametest.MustMarshal(t, req)) {
		t.Fatal("the file is not the frame's encoding")
	}

	rec := b.read(t)
	wantFrame(t, rec, req)
	// Handed out but not settled: not handed out again, still in place.
	b.nothing(t)
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, ""), "withdrawal-1.request.nkb")
	if err := rec.Done(); err != nil {
		t.Fatal(err)
	}
	if err := rec.Done(); err != nil { // settling twice does nothing
		t.Fatal(err)
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, ""))
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, DoneDir), "withdrawal-1.request.nkb")
	b.nothing(t)
	b.wantRejected(t, 0)
}

func TestFileOrder(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{})
	// Written in one order, created in another; two share a time.
	frames := []*frame.Frame{
		frametest.RequestFrame(t, "c", frametest.Time.Add(2*time.Second)),
		frametest.RequestFrame(t, "b", frametest.Time),
		frametest.Heartbeat(t, "gateway", 1, frametest.Time.Add(-time.Second)),
		frametest.RequestFrame(t, "a", frametest.Time),
		frametest.RequestFrame(t, "d", frametest.Time.Add(time.Second)),
	}
	for _, f := range frames {
		b.write(t, f)
	}
	var got []string
	for range frames {
		rec := b.read(t)
		got = append(got, rec.Name)
		if err := rec.Done(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"gateway.heartbeat.nkb", "a.request.nkb", "b.request.nkb", "d.request.nkb", "c.request.nkb"}
	if !slices.Equal(got, want) {
		t.Fatalf("order %q, want %q", got, want)
	}
}

// TestFileTruncated writes every proper prefix of a real request frame
// under its final name (a medium pulled mid-copy, or a copy still in
// progress): each is quarantined, and the good resend is then delivered.
func TestFileTruncated(t *testing.T) {
	b := mustFileBridgeIn(t, fastTempDir(t), FileReaderOptions{})
	f := frametest.RequestFrame(t, "withdrawal-2026-0001", frametest.Time)
	full := frametest.MustMarshal(t, f)
	name := FileName(f)
	for n := range len(full) {
		if err := os.WriteFile(filepath.Join(b.dir, name), full[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		b.nothing(t)
		b.wantRejected(t, frame.ErrCodeTruncated, name)
	}
	q := mediumtest.Ls(t, b.dir, QuarantineDir)
	if len(q) != 2*len(full) {
		t.Fatalf("quarantine holds %d files, want %d frames and their reasons", len(q), len(full))
	}
	reason, err := os.ReadFile(filepath.Join(b.dir, QuarantineDir, "withdrawal-2026-0001.request~7.nkb.reason"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(reason), "reason: truncated\n") || !strings.Contains(string(reason), "code: 1\n") {
		t.Fatalf("reason file:\n%s", reason)
	}
	kept, err := os.ReadFile(filepath.Join(b.dir, QuarantineDir, "withdrawal-2026-0001.request~7.nkb"))
	if err != nil || string(kept) != string(full[:6]) {
		t.Fatalf("quarantined copy %x, %v; want the 6-byte prefix", kept, err)
	}
	// Nothing lost: the resend arrives.
	b.write(t, f)
	rec := b.read(t)
	wantFrame(t, rec, f)
	if err := rec.Done(); err != nil {
		t.Fatal(err)
	}
}

// TestFileBitFlips flips one bit at every byte position of a real
// request frame: every copy is quarantined, the resend is delivered.
func TestFileBitFlips(t *testing.T) {
	b := mustFileBridgeIn(t, fastTempDir(t), FileReaderOptions{})
	f := frametest.RequestFrame(t, "withdrawal-2026-0002", frametest.Time)
	full := frametest.MustMarshal(t, f)
	name := FileName(f)
	codes := map[frame.WireError]int{}
	for i := range full {
		c := append([]byte(nil), full...)
		c[i] ^= 1 << (i % 8)
		if err := os.WriteFile(filepath.Join(b.dir, name), c, 0o644); err != nil {
			t.Fatal(err)
		}
		b.nothing(t)
		errs := b.wantRejected(t, 0, name)
		var fe *frame.FrameError
		errors.As(errs[0], &fe)
		codes[fe.Code]++
	}
	t.Logf("refusals by code: %v", codes)
	b.write(t, f)
	wantFrame(t, b.read(t), f)
}

func TestFileDuplicates(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{})
	f := frametest.RequestFrame(t, "dup", frametest.Time)
	for range 3 {
		// The hot side resends until it sees the answer; the reader hands
		// every copy out (the signer answers repeats identically).
		b.write(t, f)
		rec := b.read(t)
		wantFrame(t, rec, f)
		if err := rec.Done(); err != nil {
			t.Fatal(err)
		}
		mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, DoneDir), "dup.request.nkb")
	}
	// A resend with a later attempt number replaces the unread first copy.
	req := frametest.SendRequest(t, "dup")
	b.write(t, f)
	req.Attempt = 2
	f2, err := frame.NewRequestFrame(req, frametest.Time.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	b.write(t, f2)
	rec := b.read(t)
	wantFrame(t, rec, f2)
	if err := rec.Done(); err != nil {
		t.Fatal(err)
	}
	b.nothing(t)
	b.wantRejected(t, 0)
}

func TestFileExpiry(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{MaxAge: time.Hour, MaxFutureSkew: 5 * time.Minute})
	old := frametest.RequestFrame(t, "old", frametest.Time.Add(-time.Hour-time.Millisecond))
	edge := frametest.RequestFrame(t, "edge", frametest.Time.Add(-time.Hour))
	future := frametest.RequestFrame(t, "future", frametest.Time.Add(5*time.Minute+time.Millisecond))
	soon := frametest.RequestFrame(t, "soon", frametest.Time.Add(5*time.Minute))
	for _, f := range []*frame.Frame{old, edge, future, soon} {
		b.write(t, f)
	}
	wantFrame(t, b.read(t), edge)
	wantFrame(t, b.read(t), soon)
	b.wantRejected(t, 0, "future.request.nkb", "old.request.nkb")
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, QuarantineDir), "future.request.nkb", "future.request.nkb.reason", "old.request.nkb", "old.request.nkb.reason")
	reason, _ := os.ReadFile(filepath.Join(b.dir, QuarantineDir, "future.request.nkb.reason"))
	if !strings.Contains(string(reason), "reason: from the future\n") {
		t.Fatalf("reason file:\n%s", reason)
	}
	reason, _ = os.ReadFile(filepath.Join(b.dir, QuarantineDir, "old.request.nkb.reason"))
	if !strings.Contains(string(reason), "reason: expired\n") {
		t.Fatalf("reason file:\n%s", reason)
	}

	// Limits off: a negative skew and no MaxAge take anything.
	b2 := mustFileBridge(t, FileReaderOptions{MaxFutureSkew: -1})
	far := frametest.RequestFrame(t, "far", frametest.Time.Add(24*365*time.Hour))
	ancient := frametest.RequestFrame(t, "ancient", time.UnixMilli(0))
	b2.write(t, far)
	b2.write(t, ancient)
	wantFrame(t, b2.read(t), ancient)
	wantFrame(t, b2.read(t), far)
	// The default skew is 5 minutes.
	b3 := mustFileBridge(t, FileReaderOptions{})
	b3.write(t, far)
	b3.nothing(t)
	b3.wantRejected(t, frame.ErrCodeFuture, "far.request.nkb")
}

// TestFileMidWrite: a writer that died before its rename leaves a
// temporary file, which readers ignore; a partial file under the final
// name (a non-atomic copy) is quarantined; the resend is delivered.
func TestFileMidWrite(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{})
	f := frametest.RequestFrame(t, "mid", frametest.Time)
	full := frametest.MustMarshal(t, f)
	tmp := filepath.Join(b.dir, ".tmp-mid-0123456789abcdef")
	if err := os.WriteFile(tmp, full[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	b.nothing(t)
	b.wantRejected(t, 0)
	if err := os.WriteFile(filepath.Join(b.dir, "mid.request.nkb"), full[:len(full)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	b.nothing(t)
	b.wantRejected(t, frame.ErrCodeTruncated, "mid.request.nkb")
	// The hot side restarts: its writer clears the dead temporary file
	// (older than TempGrace).
	backdate(t, tmp)
	w, err := NewFileWriter(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, ""))
	if err := w.WriteFrame(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	wantFrame(t, b.read(t), f)
}

// backdate makes path's times older than TempGrace: a crashed writer's
// leftover, not a live writer's file.
func backdate(t *testing.T, path string) {
	t.Helper()
	old := time.Now().Add(-2 * TempGrace)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// TestFileWriterLeavesYoungTemps: a writer opening a directory leaves a
// temporary file younger than TempGrace alone (another live writer's,
// being written: several gateways open one medium) and removes it once
// it is older.
func TestFileWriterLeavesYoungTemps(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewFileWriter(dir); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".tmp-live-0123456789abcdef")
	if err := os.WriteFile(tmp, []byte("being written"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFileWriter(dir); err != nil {
		t.Fatal(err)
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, dir, ""), ".tmp-live-0123456789abcdef")
	backdate(t, tmp)
	if _, err := NewFileWriter(dir); err != nil {
		t.Fatal(err)
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, dir, ""))
}

func TestFileLyingNames(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{})
	f := frametest.RequestFrame(t, "real", frametest.Time)
	data := frametest.MustMarshal(t, f)
	// A dot-file is never a frame's name (request ids do not begin with
	// "."): it is quarantined like any other lying name, not skipped.
	for _, name := range []string{"other.request.nkb", "real.response.nkb", "real.nkb", "real.request.request.nkb", ".real.request.nkb"} {
		if err := os.WriteFile(filepath.Join(b.dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Not frame files: ignored, left alone.
	for _, name := range []string{"README.txt", "real.request.nkb.part", ".tmp-real-1"} {
		if err := os.WriteFile(filepath.Join(b.dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(b.dir, "dir.request.nkb"), 0o755); err != nil {
		t.Fatal(err)
	}
	b.nothing(t)
	errs := b.wantRejected(t, frame.ErrCodeFileName, ".real.request.nkb", "dir.request.nkb", "other.request.nkb", "real.nkb", "real.request.request.nkb", "real.response.nkb")
	if !strings.Contains(errs[2].Error(), `named "other.request.nkb", holds "real.request.nkb"`) {
		t.Fatalf("error %v", errs[2])
	}
	if !strings.Contains(errs[1].Error(), "not a regular file (directory)") {
		t.Fatalf("error %v", errs[1])
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, ""), ".tmp-real-1", "README.txt", "real.request.nkb.part")
	if st, err := os.Lstat(filepath.Join(b.dir, QuarantineDir, "dir.request.nkb")); err != nil || !st.IsDir() {
		t.Fatalf("the directory named like a frame is not in quarantine: %v", err)
	}
}

func TestFileTypes(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{Types: []frame.FrameType{frame.TypeRequest, frame.TypeHeartbeat}})
	resp, err := frame.NewResponseFrame(frametest.Response("r"), frametest.Time)
	if err != nil {
		t.Fatal(err)
	}
	b.write(t, resp)
	hb := frametest.Heartbeat(t, "gateway", 1, frametest.Time)
	b.write(t, hb)
	wantFrame(t, b.read(t), hb)
	b.wantRejected(t, frame.ErrCodeType, "r.response.nkb")
}

func TestFileNotRegular(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{})
	f := frametest.RequestFrame(t, "target", frametest.Time)
	// A symbolic link to a good frame elsewhere, a FIFO (which would
	// block a plain open), and an oversized file.
	outside := filepath.Join(t.TempDir(), "target.request.nkb")
	if err := os.WriteFile(outside, frametest.MustMarshal(t, f), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(b.dir, "target.request.nkb")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(b.dir, "fifo.request.nkb"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, frame.MaxFrameLength+1)
	copy(big, frametest.MustMarshal(t, f))
	if err := os.WriteFile(filepath.Join(b.dir, "big.request.nkb"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	b.nothing(t)
	errs := b.wantRejected(t, 0, "big.request.nkb", "fifo.request.nkb", "target.request.nkb")
	frametest.WantCode(t, errs[0], frame.ErrCodeLength)
	frametest.WantCode(t, errs[1], frame.ErrCodeFileName)
	frametest.WantCode(t, errs[2], frame.ErrCodeFileName)
	if _, err := os.Stat(outside); err != nil {
		t.Fatalf("the link's target was touched: %v", err)
	}
	for _, name := range []string{"big.request.nkb", "fifo.request.nkb", "target.request.nkb"} {
		if _, err := os.Lstat(filepath.Join(b.dir, QuarantineDir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFileReject(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{})
	f := frametest.RequestFrame(t, "bad-payload", frametest.Time)
	b.write(t, f)
	rec := b.read(t)
	if err := rec.Reject("the payload is not a BridgeRequest\nfor this id"); err != nil {
		t.Fatal(err)
	}
	names, errs := b.rejects.Take()
	var re *RejectedError
	if !slices.Equal(names, []string{"bad-payload.request.nkb"}) || !errors.As(errs[0], &re) {
		t.Fatalf("OnReject told %q %v", names, errs)
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, ""))
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, QuarantineDir), "bad-payload.request.nkb", "bad-payload.request.nkb.reason")
	reason, _ := os.ReadFile(filepath.Join(b.dir, QuarantineDir, "bad-payload.request.nkb.reason"))
	if !strings.Contains(string(reason), `reason: the payload is not a BridgeRequest\nfor this id`+"\n") {
		t.Fatalf("reason file:\n%s", reason)
	}
	// A second bad copy does not overwrite the first.
	b.write(t, f)
	if err := b.read(t).Reject("again"); err != nil {
		t.Fatal(err)
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, QuarantineDir), "bad-payload.request.nkb", "bad-payload.request.nkb.reason", "bad-payload.request~2.nkb", "bad-payload.request~2.nkb.reason")
}

// TestFileReplacedWhileHandled: a resend renamed over a file that was
// handed out is not swept into done/ or quarantine/ with it.
func TestFileReplacedWhileHandled(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{})
	req := frametest.SendRequest(t, "busy")
	f1, _ := frame.NewRequestFrame(req, frametest.Time)
	req.Attempt = 2
	f2, _ := frame.NewRequestFrame(req, frametest.Time.Add(time.Second))
	req.Attempt = 3
	f3, _ := frame.NewRequestFrame(req, frametest.Time.Add(2*time.Second))

	b.write(t, f1)
	rec := b.read(t)
	b.write(t, f2) // the resend lands while the first copy is being answered
	if err := rec.Done(); err != nil {
		t.Fatal(err)
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, DoneDir))
	rec = b.read(t)
	wantFrame(t, rec, f2)

	b.write(t, f3)
	if err := rec.Reject("consumer says no"); err != nil {
		t.Fatal(err)
	}
	// The rejected copy is kept in quarantine; the resend is still there.
	q, err := LoadFrameFile(filepath.Join(b.dir, QuarantineDir, "busy.request.nkb"))
	if err != nil || !frametest.SameFrame(q, f2) {
		t.Fatalf("quarantined copy: %v", err)
	}
	wantFrame(t, b.read(t), f3)
}

// TestResendOfUnsettledFileIsRead: a resend renamed over a file handed
// out and never settled (its consumer gone: a gateway whose term ended)
// is read and handed out; the old copy's settling then leaves it alone.
func TestResendOfUnsettledFileIsRead(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{})
	req := frametest.SendRequest(t, "orphan")
	f1, _ := frame.NewRequestFrame(req, frametest.Time)
	req.Attempt = 2
	f2, _ := frame.NewRequestFrame(req, frametest.Time.Add(time.Second))

	b.write(t, f1)
	old := b.read(t) // handed out, not settled
	b.write(t, f2)
	rec := b.read(t)
	wantFrame(t, rec, f2)
	b.nothing(t) // handed out: not handed out again
	if err := old.Done(); err != nil {
		t.Fatal(err)
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, DoneDir))
	b.nothing(t) // the resend is still the one handed out
	if err := rec.Done(); err != nil {
		t.Fatal(err)
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, DoneDir), "orphan.request.nkb")
}

func TestFileCrashPoints(t *testing.T) {
	crash := errors.New("crash")
	at := func(t *testing.T, point string) {
		t.Cleanup(func() { crashHook = nil })
		crashHook = func(p string) error {
			if p == point {
				return crash
			}
			return nil
		}
	}
	f := frametest.RequestFrame(t, "crashy", frametest.Time)

	t.Run("write before rename", func(t *testing.T) {
		b := mustFileBridge(t, FileReaderOptions{})
		at(t, "write:before-rename")
		if err := b.w.WriteFrame(context.Background(), f); !errors.Is(err, crash) {
			t.Fatalf("WriteFrame: %v", err)
		}
		names := mediumtest.Ls(t, b.dir, "")
		if len(names) != 1 || !strings.HasPrefix(names[0], ".tmp-crashy-") {
			t.Fatalf("left %q, want one temporary file", names)
		}
		b.nothing(t)
		crashHook = nil
		backdate(t, filepath.Join(b.dir, names[0]))
		b2 := mustFileBridgeIn(t, b.dir, FileReaderOptions{}) // restart: the writer clears it
		mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, ""))
		b2.write(t, f)
		wantFrame(t, b2.read(t), f)
	})
	t.Run("write before dir sync", func(t *testing.T) {
		b := mustFileBridge(t, FileReaderOptions{})
		at(t, "write:before-dirsync")
		if err := b.w.WriteFrame(context.Background(), f); !errors.Is(err, crash) {
			t.Fatalf("WriteFrame: %v", err)
		}
		// The rename happened (if the power had gone, the frame could be
		// lost; the hot side resends until answered).
		wantFrame(t, b.read(t), f)
	})
	t.Run("done before rename", func(t *testing.T) {
		b := mustFileBridge(t, FileReaderOptions{})
		b.write(t, f)
		rec := b.read(t)
		at(t, "settle:before-rename")
		if err := rec.Done(); !errors.Is(err, crash) {
			t.Fatalf("Done: %v", err)
		}
		crashHook = nil
		// After a restart the request is read again.
		b2 := mustFileBridgeIn(t, b.dir, FileReaderOptions{})
		wantFrame(t, b2.read(t), f)
	})
	t.Run("quarantine before reason", func(t *testing.T) {
		b := mustFileBridge(t, FileReaderOptions{})
		b.write(t, f)
		rec := b.read(t)
		at(t, "settle:before-reason")
		if err := rec.Reject("no"); !errors.Is(err, crash) {
			t.Fatalf("Reject: %v", err)
		}
		// The frame is in quarantine without its reason: never read again.
		mediumtest.WantNames(t, mediumtest.Ls(t, b.dir, QuarantineDir), "crashy.request.nkb")
		crashHook = nil
		b2 := mustFileBridgeIn(t, b.dir, FileReaderOptions{})
		b2.nothing(t)
	})
}

func TestFileReaderBlocksAndCloses(t *testing.T) {
	b := mustFileBridge(t, FileReaderOptions{PollInterval: 5 * time.Millisecond})
	f := frametest.Heartbeat(t, "relay", 1, frametest.Time)
	got := make(chan *frame.Received)
	go func() {
		rec, err := b.r.ReadFrame(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- rec
	}()
	b.write(t, f) // found by a later poll
	wantFrame(t, <-got, f)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := b.r.ReadFrame(ctx)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
	go func() {
		_, err := b.r.ReadFrame(context.Background())
		errc <- err
	}()
	if err := b.r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, frame.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if err := b.r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.r.ReadFrame(context.Background()); !errors.Is(err, frame.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestFileMediumPulled: the reader rides out its directory vanishing (the
// stick pulled) and reads what the next stick brings.
func TestFileMediumPulled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "to-cold")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ioErrs := make(chan error, 100)
	r, err := NewFileReader(dir, FileReaderOptions{PollInterval: time.Millisecond, OnError: func(err error) {
		select {
		case ioErrs <- err:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	got := make(chan *frame.Received)
	go func() {
		rec, err := r.ReadFrame(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- rec
	}()
	if err := <-ioErrs; !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OnError told %v", err)
	}
	w, err := NewFileWriter(dir) // the stick is back
	if err != nil {
		t.Fatal(err)
	}
	f := frametest.RequestFrame(t, "after", time.Now())
	if err := w.WriteFrame(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	wantFrame(t, <-got, f)
}

func TestNewFileReaderNeedsDir(t *testing.T) {
	if _, err := NewFileReader(filepath.Join(t.TempDir(), "missing"), FileReaderOptions{}); err == nil {
		t.Fatal("a missing directory was accepted")
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := NewFileReader(file, FileReaderOptions{}); err == nil {
		t.Fatal("a file was accepted")
	}
	if _, err := NewFileWriter(filepath.Join(file, "sub")); err == nil {
		t.Fatal("a writer under a file was accepted")
	}
}

func TestLoadFrameFile(t *testing.T) {
	dir := t.TempDir()
	f := frametest.RequestFrame(t, "x", frametest.Time)
	path := filepath.Join(dir, "x.request.nkb")
	os.WriteFile(path, frametest.MustMarshal(t, f), 0o644)
	g, err := LoadFrameFile(path)
	if err != nil || !frametest.SameFrame(f, g) {
		t.Fatalf("LoadFrameFile: %v", err)
	}
	os.WriteFile(path, frametest.MustMarshal(t, f)[:30], 0o644)
	_, err = LoadFrameFile(path)
	frametest.WantCode(t, err, frame.ErrCodeTruncated)
	if _, err := LoadFrameFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	_, err = LoadFrameFile(dir)
	frametest.WantCode(t, err, frame.ErrCodeFileName)
}

// fastTempDir returns a temporary directory on tmpfs (/dev/shm) when
// there is one, for tests that write thousands of files: the file
// transport's fsyncs cost nothing there.
func fastTempDir(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "filemedium-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}
