package coldbridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The file transport (FRAMES.md, "File transport"): one directory per
// direction; a frame is one file named <request-id>.<type>.nkb, put in
// place atomically (write a dot-named temporary file, fsync it, rename it,
// fsync the directory). The reader moves handled files into done/ and bad
// ones into quarantine/ with a .reason file beside them.

// FileSuffix ends every frame file's name.
const FileSuffix = ".nkb"

// Subdirectories of a reader's directory.
const (
	DoneDir       = "done"
	QuarantineDir = "quarantine"
)

// DefaultPollInterval is how often a FileReader looks for new files unless
// told otherwise.
const DefaultPollInterval = 200 * time.Millisecond

// DefaultMaxFutureSkew is how far ahead of the reader's clock a frame's
// creation time may be unless told otherwise.
const DefaultMaxFutureSkew = 5 * time.Minute

const (
	tempPrefix = ".tmp-"
	dirMode    = 0o755
	fileMode   = 0o644 // frames hold no secrets (doc.go); integrity is the CRC's and the approvals' job
)

// FileName returns the name f is written under: <request-id>.<type>.nkb.
func FileName(f *Frame) string {
	return f.RequestID + "." + f.Type.String() + FileSuffix
}

// CheckFileName checks that name is the name f is written under. It fails
// with a *FrameError with ErrCodeFileName.
func CheckFileName(name string, f *Frame) error {
	if want := FileName(f); name != want {
		return frameErr(ErrCodeFileName, "named %q, holds %q", name, want)
	}
	return nil
}

// crashHook, when set (by tests), is called at each crash point of the
// file transport; an error it returns is returned as if the process had
// died there (nothing after it runs). The points:
//
//	"write:before-rename"   the temporary file is written and synced
//	"write:before-dirsync"  the frame is renamed into place, the directory not yet synced
//	"settle:before-rename"  a read file is about to move into done/ or quarantine/
//	"settle:before-reason"  a file is in quarantine/, its .reason not yet written
var crashHook func(point string) error

func crashPoint(point string) error {
	if crashHook == nil {
		return nil
	}
	return crashHook(point)
}

// FileWriter writes frames into one directory. It is safe for concurrent
// use. One writer owns a directory: NewFileWriter removes the temporary
// files a crashed writer left behind.
type FileWriter struct {
	dir string
}

// NewFileWriter returns a writer into dir, creating dir if needed, and
// removes leftover temporary files (names starting with ".tmp-") from an
// earlier writer that crashed before renaming them.
func NewFileWriter(dir string) (*FileWriter, error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("coldbridge: file writer: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("coldbridge: file writer: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) && e.Type().IsRegular() {
			_ = os.Remove(filepath.Join(dir, e.Name())) // garbage either way
		}
	}
	return &FileWriter{dir: dir}, nil
}

// Dir returns the writer's directory.
func (w *FileWriter) Dir() string { return w.dir }

// WriteFrame writes f as dir/<request-id>.<type>.nkb and returns once the
// file and its name are durable: it writes a temporary file (a name
// starting with "."), fsyncs it, renames it into place and fsyncs the
// directory. A file of the same name is replaced (it is a resend). After a
// crash or an error nothing but a temporary file is left, which readers
// ignore.
func (w *FileWriter) WriteFrame(ctx context.Context, f *Frame) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	name := FileName(f)
	if err := writeFileAtomic(w.dir, name, tempPrefix+f.RequestID+"-", data, "write:"); err != nil {
		return fmt.Errorf("coldbridge: writing %s: %w", name, err)
	}
	return nil
}

// writeFileAtomic writes data to dir/name through a temporary file named
// tmpPrefix + random, with the crash points prefixed by point.
func writeFileAtomic(dir, name, tmpPrefix string, data []byte, point string) (err error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:]) // never fails (crypto/rand)
	tmp := filepath.Join(dir, tmpPrefix+hex.EncodeToString(rnd[:]))
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			fh.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := fh.Write(data); err != nil {
		return err
	}
	if err := fh.Sync(); err != nil {
		return err
	}
	if err := fh.Close(); err != nil {
		return err
	}
	if err := crashPoint(point + "before-rename"); err != nil {
		renamed = true // a crash leaves the temporary file behind
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	renamed = true
	if err := crashPoint(point + "before-dirsync"); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// FileReaderOptions configures a FileReader. The zero value reads every
// frame type, with no age limit, a future skew of DefaultMaxFutureSkew and
// a poll interval of DefaultPollInterval.
type FileReaderOptions struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxAge quarantines (ErrCodeExpired) frames created longer ago than
	// this. 0 means no limit.
	MaxAge time.Duration
	// MaxFutureSkew quarantines (ErrCodeFuture) frames created further
	// than this ahead of Now. 0 means DefaultMaxFutureSkew; a negative
	// value means no limit.
	MaxFutureSkew time.Duration
	// PollInterval is how often the directory is listed while there is
	// nothing to read. 0 means DefaultPollInterval.
	PollInterval time.Duration
	// OnReject is told of every file the reader quarantines, and of every
	// Received it is asked to Reject.
	OnReject RejectFunc
	// OnError is told of I/O errors the reader rides out: the directory or
	// a file cannot be read (the medium was pulled), a file cannot be
	// moved. The reader keeps polling; nil discards.
	OnError func(err error)
	// Types lists the frame types this reader takes; frames of other types
	// are quarantined (ErrCodeType). Empty means every type.
	Types []FrameType
}

// FileReader reads frames from one directory. Frames come out ordered by
// (Created, name) among the files present when the directory was listed.
// A file is handed out once; it stays in place until the consumer settles
// it, so a crash before that leaves it to be read again.
//
// Bad files (see FRAMES.md for the checks) are moved into quarantine/ with
// a .reason file and reported to OnReject; they are never returned. Files
// whose names start with "." (temporary files) or do not end in ".nkb",
// and subdirectories, are ignored.
//
// ReadFrame may be called from one goroutine at a time; Done, Reject and
// Close from any.
type FileReader struct {
	dir    string
	opts   FileReaderOptions
	types  map[FrameType]bool
	closed chan struct{}
	once   sync.Once

	mu          sync.Mutex
	pending     []*fileFrame        // read and checked, not yet handed out; sorted
	outstanding map[string]struct{} // handed out, not yet settled
	qnext       map[string]int      // the next "~N" to try in quarantine/, per name
}

// fileFrame is a checked frame read from a file, with the identity of the
// file it came from.
type fileFrame struct {
	frame *Frame
	name  string
	info  fs.FileInfo
}

// NewFileReader returns a reader of dir, which must exist (its done/ and
// quarantine/ are created when first needed).
func NewFileReader(dir string, opts FileReaderOptions) (*FileReader, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("coldbridge: file reader: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("coldbridge: file reader: %s is not a directory", dir)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.MaxFutureSkew == 0 {
		opts.MaxFutureSkew = DefaultMaxFutureSkew
	}
	r := &FileReader{
		dir:         dir,
		opts:        opts,
		closed:      make(chan struct{}),
		outstanding: map[string]struct{}{},
		qnext:       map[string]int{},
	}
	if len(opts.Types) > 0 {
		r.types = map[FrameType]bool{}
		for _, t := range opts.Types {
			r.types[t] = true
		}
	}
	return r, nil
}

// Dir returns the reader's directory.
func (r *FileReader) Dir() string { return r.dir }

// Close makes ReadFrame return ErrClosed. It is idempotent. Received
// frames can still be settled.
func (r *FileReader) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}

// ReadFrame returns the next checked frame, polling the directory until
// one arrives, ctx is done (it returns ctx.Err()) or the reader is closed
// (ErrClosed).
func (r *FileReader) ReadFrame(ctx context.Context) (*Received, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-r.closed:
			return nil, ErrClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if rec := r.next(); rec != nil {
			return rec, nil
		}
		if timer == nil {
			timer = time.NewTimer(r.opts.PollInterval)
		} else {
			timer.Reset(r.opts.PollInterval)
		}
		select {
		case <-r.closed:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// next hands out the first pending frame whose file is still the one read,
// listing the directory when nothing is pending.
func (r *FileReader) next() *Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		r.scan()
	}
	for len(r.pending) > 0 {
		ff := r.pending[0]
		r.pending = r.pending[1:]
		cur, err := os.Lstat(filepath.Join(r.dir, ff.name))
		if err != nil || !sameFile(cur, ff.info) {
			continue // moved away, or replaced by a resend the next listing reads
		}
		r.outstanding[ff.name] = struct{}{}
		return NewReceived(ff.frame, ff.name,
			func() error { return r.settle(ff, DoneDir, "") },
			func(reason string) error { return r.settle(ff, QuarantineDir, reason) })
	}
	return nil
}

// maxPending bounds how many frames one listing reads ahead.
const maxPending = 1024

// scan lists the directory and reads every new frame file into pending,
// quarantining bad ones. r.mu is held.
func (r *FileReader) scan() {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		r.ioError(fmt.Errorf("coldbridge: listing %s: %w", r.dir, err))
		return
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, FileSuffix) || e.IsDir() {
			continue
		}
		if _, out := r.outstanding[name]; out {
			continue
		}
		if ff := r.load(name); ff != nil {
			r.pending = append(r.pending, ff)
			if len(r.pending) >= maxPending {
				break
			}
		}
	}
	slices.SortFunc(r.pending, func(a, b *fileFrame) int {
		if c := a.frame.Created.Compare(b.frame.Created); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
}

// load reads and checks one file. It returns nil when the file is bad
// (then it is quarantined) or cannot be read now.
func (r *FileReader) load(name string) *fileFrame {
	path := filepath.Join(r.dir, name)
	lst, err := os.Lstat(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.ioError(err)
		}
		return nil
	}
	if !lst.Mode().IsRegular() {
		r.refuse(name, lst, nil, frameErr(ErrCodeFileName, "not a regular file (%s)", lst.Mode().Type()))
		return nil
	}
	if lst.Size() > MaxFrameLength {
		r.refuse(name, lst, nil, frameErr(ErrCodeLength, "file of %d bytes, at most %d", lst.Size(), MaxFrameLength))
		return nil
	}
	fh, err := openNoBlock(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.ioError(err)
		}
		return nil
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		r.ioError(err)
		return nil
	}
	if !sameFile(lst, info) {
		return nil // replaced between Lstat and Open: the next listing reads it
	}
	data, err := io.ReadAll(io.LimitReader(fh, MaxFrameLength+1))
	if err != nil {
		r.ioError(fmt.Errorf("coldbridge: reading %s: %w", path, err))
		return nil
	}
	if len(data) > MaxFrameLength {
		r.refuse(name, info, nil, frameErr(ErrCodeLength, "file grew past %d bytes", MaxFrameLength))
		return nil
	}
	f, err := DecodeFrame(data)
	if err == nil {
		err = r.check(name, f)
	}
	if err != nil {
		r.refuse(name, info, nil, err)
		return nil
	}
	return &fileFrame{frame: f, name: name, info: info}
}

// check applies the reader's checks beyond DecodeFrame's.
func (r *FileReader) check(name string, f *Frame) error {
	if err := CheckFileName(name, f); err != nil {
		return err
	}
	if r.types != nil && !r.types[f.Type] {
		return frameErr(ErrCodeType, "a %s frame; this reader does not take them", f.Type)
	}
	now := r.opts.Now()
	if r.opts.MaxAge > 0 && f.Created.Before(now.Add(-r.opts.MaxAge)) {
		return frameErr(ErrCodeExpired, "created %s, more than %s ago", f.Created.UTC().Format(time.RFC3339Nano), r.opts.MaxAge)
	}
	if r.opts.MaxFutureSkew > 0 && f.Created.After(now.Add(r.opts.MaxFutureSkew)) {
		return frameErr(ErrCodeFuture, "created %s, more than %s ahead", f.Created.UTC().Format(time.RFC3339Nano), r.opts.MaxFutureSkew)
	}
	return nil
}

// refuse quarantines a file the reader will not hand out, and reports it.
func (r *FileReader) refuse(name string, info fs.FileInfo, f *Frame, err error) {
	if qerr := r.quarantine(name, info, f, err.Error(), err); qerr != nil {
		r.ioError(qerr)
	}
	if r.opts.OnReject != nil {
		r.opts.OnReject(name, err)
	}
}

// settle moves a handed-out frame's file into sub (done/ or quarantine/).
func (r *FileReader) settle(ff *fileFrame, sub, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, out := r.outstanding[ff.name]; !out {
		return nil // settled already
	}
	delete(r.outstanding, ff.name)
	if sub == DoneDir {
		err := r.move(ff.name, ff.info, DoneDir, ff.name)
		if errors.Is(err, errReplaced) || errors.Is(err, fs.ErrNotExist) {
			return nil // a resend took the name: it is read again (and answered identically)
		}
		if err != nil {
			return fmt.Errorf("coldbridge: settling %s: %w", ff.name, err)
		}
		return nil
	}
	rejectErr := &RejectedError{Reason: reason}
	if err := r.quarantine(ff.name, ff.info, ff.frame, reason, rejectErr); err != nil {
		return fmt.Errorf("coldbridge: rejecting %s: %w", ff.name, err)
	}
	if r.opts.OnReject != nil {
		r.opts.OnReject(ff.name, rejectErr)
	}
	return nil
}

// RejectedError is what OnReject is told when the consumer rejects a frame.
type RejectedError struct {
	Reason string
}

// Error implements error.
func (e *RejectedError) Error() string { return "coldbridge: frame rejected: " + e.Reason }

var errReplaced = errors.New("coldbridge: the file was replaced")

// move renames dir/name into dir/sub/target if it is still the file info
// describes; errReplaced if another file took the name.
func (r *FileReader) move(name string, info fs.FileInfo, sub, target string) error {
	path := filepath.Join(r.dir, name)
	cur, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !sameFile(cur, info) {
		return errReplaced
	}
	subdir := filepath.Join(r.dir, sub)
	if err := os.MkdirAll(subdir, dirMode); err != nil {
		return err
	}
	if err := crashPoint("settle:before-rename"); err != nil {
		return err
	}
	if err := os.Rename(path, filepath.Join(subdir, target)); err != nil {
		return err
	}
	if err := syncDir(subdir); err != nil {
		return err
	}
	return syncDir(r.dir)
}

// quarantine moves dir/name into quarantine/ under a free name and writes
// its .reason file. When a resend has replaced the file, f (if known) is
// written there instead and the resend is left to be read.
func (r *FileReader) quarantine(name string, info fs.FileInfo, f *Frame, reason string, cause error) error {
	qdir := filepath.Join(r.dir, QuarantineDir)
	if err := os.MkdirAll(qdir, dirMode); err != nil {
		return err
	}
	target := r.freeQuarantineName(qdir, name)
	err := r.move(name, info, QuarantineDir, target)
	switch {
	case errors.Is(err, errReplaced) && f != nil:
		data, merr := f.MarshalBinary()
		if merr != nil {
			return merr
		}
		if err := writeFileAtomic(qdir, target, tempPrefix, data, "quarantine-copy:"); err != nil {
			return err
		}
	case errors.Is(err, errReplaced) || errors.Is(err, fs.ErrNotExist):
		return nil // gone, or a new file we have not read: nothing to quarantine
	case err != nil:
		return err
	}
	if err := crashPoint("settle:before-reason"); err != nil {
		return err
	}
	return writeFileAtomic(qdir, target+".reason", tempPrefix, reasonFile(name, reason, cause, r.opts.Now()), "reason:")
}

// freeQuarantineName returns name, or name with "~N" before ".nkb", so
// that an earlier bad copy is not overwritten. r.mu is held.
func (r *FileReader) freeQuarantineName(qdir, name string) string {
	base := strings.TrimSuffix(name, FileSuffix)
	for n := max(1, r.qnext[name]); ; n++ {
		cand := name
		if n > 1 {
			cand = base + "~" + strconv.Itoa(n) + FileSuffix
		}
		if !exists(filepath.Join(qdir, cand)) && !exists(filepath.Join(qdir, cand+".reason")) {
			if len(r.qnext) > maxPending {
				clear(r.qnext)
			}
			r.qnext[name] = n + 1
			return cand
		}
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// QuarantineBase returns the name a quarantined file was read under:
// name without the "~N" that keeps copies apart ("a.request~2.nkb" →
// "a.request.nkb").
func QuarantineBase(name string) string {
	base, ok := strings.CutSuffix(name, FileSuffix)
	if !ok {
		return name
	}
	if i := strings.LastIndexByte(base, '~'); i >= 0 {
		if _, err := strconv.ParseUint(base[i+1:], 10, 32); err == nil {
			return base[:i] + FileSuffix
		}
	}
	return name
}

// reasonFile is the content of a .reason file (FRAMES.md, "Quarantine").
func reasonFile(name, reason string, cause error, now time.Time) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "file: %s\n", name)
	var fe *FrameError
	if errors.As(cause, &fe) {
		fmt.Fprintf(&b, "code: %d\n", uint8(fe.Code))
		fmt.Fprintf(&b, "reason: %s\n", fe.Code)
		fmt.Fprintf(&b, "error: %s\n", oneLine(reason))
	} else {
		fmt.Fprintf(&b, "reason: %s\n", oneLine(reason))
	}
	fmt.Fprintf(&b, "quarantined: %s\n", now.UTC().Format(time.RFC3339))
	return []byte(b.String())
}

// oneLine keeps a reason on one line.
func oneLine(s string) string {
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}

// ioError reports an error the reader rides out.
func (r *FileReader) ioError(err error) {
	if r.opts.OnError != nil {
		r.opts.OnError(err)
	}
}

// openNoBlock opens path for reading without blocking if it was swapped
// for a FIFO after it was checked to be a regular file (O_NONBLOCK does
// nothing to a regular file).
func openNoBlock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// sameFile reports whether a and b describe the same file, unchanged.
func sameFile(a, b fs.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// LoadFrameFile reads and decodes the frame file at path: it must be a
// regular file of at most MaxFrameLength bytes (checked before reading)
// holding exactly one frame. It does not check the name or the payload
// (see CheckFileName and DecodePayload). Errors about the content are
// *FrameError.
func LoadFrameFile(path string) (*Frame, error) {
	lst, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !lst.Mode().IsRegular() {
		return nil, frameErr(ErrCodeFileName, "not a regular file (%s)", lst.Mode().Type())
	}
	if lst.Size() > MaxFrameLength {
		return nil, frameErr(ErrCodeLength, "file of %d bytes, at most %d", lst.Size(), MaxFrameLength)
	}
	fh, err := openNoBlock(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	if info, err := fh.Stat(); err != nil {
		return nil, err
	} else if !sameFile(lst, info) {
		return nil, frameErr(ErrCodeFileName, "replaced while being opened")
	}
	data, err := io.ReadAll(io.LimitReader(fh, MaxFrameLength+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFrameLength {
		return nil, frameErr(ErrCodeLength, "file grew past %d bytes", MaxFrameLength)
	}
	return DecodeFrame(data)
}
