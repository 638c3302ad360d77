package filemedium

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nanokms/nanokms/bridge/frame"
)

// FileReaderOptions configures a FileReader. The zero value reads every
// frame type, with no age limit, a future skew of DefaultMaxFutureSkew and
// a poll interval of DefaultPollInterval, from a directory whose parent is
// the medium root.
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
	// nothing to read and inotify does not watch it (it is unavailable, or
	// the watch could not be placed). While inotify watches it, the
	// directory is listed when a file appears and at least every second
	// (or PollInterval, if longer). 0 means DefaultPollInterval.
	PollInterval time.Duration
	// OnReject is told of every file the reader quarantines, and of every
	// Received it is asked to Reject.
	OnReject frame.RejectFunc
	// OnError is told of what the reader rides out: I/O errors (the
	// directory or a file cannot be read because the medium was pulled, a
	// file cannot be moved), bad entries it set aside (*EntryError), a
	// full medium (ErrMediumFull), and files it holds because it cannot
	// settle or quarantine them yet. The reader keeps polling; nil
	// discards.
	OnError func(err error)
	// Types lists the frame types this reader takes; frames of other types
	// are quarantined (ErrCodeType). Empty means every type.
	Types []frame.FrameType
	// Root is the trusted medium root the directory lies beneath
	// (FRAMES.md, "Trust on the medium"): it may be a symbolic link;
	// nothing beneath it is followed. "" means the directory's parent.
	Root string
}

// FileReader reads frames from one directory. Frames come out ordered by
// (Created, name) among the files present when the directory was listed.
// A file is handed out once; it stays in place until the consumer settles
// it, so a crash before that leaves it to be read again.
//
// Every name ending in ".nkb" is read as a frame file. Bad ones (see
// FRAMES.md for the checks: a link, a FIFO, a directory, a name beginning
// with "." are among them) are moved into quarantine/ with a .reason file
// and reported to OnReject; they are never returned. Other names (its
// temporary files, done/, quarantine/) are not frames and are left alone.
//
// ReadFrame may be called from one goroutine at a time; Done, Reject and
// Close from any.
type FileReader struct {
	dir    string
	md     mediumDir
	opts   FileReaderOptions
	types  map[frame.FrameType]bool
	closed chan struct{}
	once   sync.Once
	watch  *dirWatch // nil: no inotify, the reader polls only

	mu          sync.Mutex
	pending     []*fileFrame          // read and checked, not yet handed out; sorted
	outstanding map[string]*fileFrame // handed out, not yet settled
	held        map[string]*heldFile
	qnext       map[string]int // the next "~N" to try in quarantine/, per name
}

// fileFrame is a frame read from a file (nil for a file refused before it
// decoded), with the identity of the file it came from.
type fileFrame struct {
	frame *frame.Frame
	name  string
	info  entryStat
}

// NewFileReader returns a reader of dir, which must exist and be a
// directory beneath the medium root (a link there is refused); its done/
// and quarantine/ are made when first needed.
func NewFileReader(dir string, opts FileReaderOptions) (*FileReader, error) {
	md, err := newMediumDir(opts.Root, dir)
	if err != nil {
		return nil, err
	}
	d, err := md.open(dirMode, false, nil)
	if err != nil {
		return nil, fmt.Errorf("filemedium: file reader: %w", err)
	}
	d.close()
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
		dir:         md.dir,
		md:          md,
		opts:        opts,
		closed:      make(chan struct{}),
		outstanding: map[string]*fileFrame{},
		held:        map[string]*heldFile{},
		qnext:       map[string]int{},
	}
	if len(opts.Types) > 0 {
		r.types = map[frame.FrameType]bool{}
		for _, t := range opts.Types {
			r.types[t] = true
		}
	}
	r.watch = newDirWatch(r.ioError)
	return r, nil
}

// Dir returns the reader's directory.
func (r *FileReader) Dir() string { return r.dir }

// Close makes ReadFrame return ErrClosed. It is idempotent. Received
// frames can still be settled.
func (r *FileReader) Close() error {
	r.once.Do(func() {
		close(r.closed)
		if r.watch != nil {
			r.watch.close()
		}
	})
	return nil
}

// Watching reports whether the reader's directory is watched with
// inotify now (else it is only polled).
func (r *FileReader) Watching() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.watch != nil && r.watch.active()
}

// ReadFrame returns the next checked frame, waiting until one arrives,
// ctx is done (it returns ctx.Err()) or the reader is closed (ErrClosed).
// It lists the directory when woken by inotify (Linux: a file named like
// a frame appeared in it) and every PollInterval whatever inotify says;
// inotify's events are only hints, and the listing and every check of a
// file are the same either way.
func (r *FileReader) ReadFrame(ctx context.Context) (*frame.Received, error) {
	recs, err := r.read(ctx, 1)
	if err != nil {
		return nil, err
	}
	return recs[0], nil
}

// ReadFrames is ReadFrame for the frames ready together: it waits as
// ReadFrame does for the first, and returns it with those listed with it,
// in the same order, at most max (frame.BatchReader). Each is settled on
// its own (Done, Reject) or together (DoneAll).
func (r *FileReader) ReadFrames(ctx context.Context, n int) ([]*frame.Received, error) {
	return r.read(ctx, max(1, n))
}

// watchedPollInterval is how often a reader whose directory inotify
// watches lists it all the same (PollInterval, if longer): against an
// event lost (the kernel reports a full event queue, which wakes the
// reader, but a file system need not report every change). Without a
// watch the reader lists every PollInterval.
const watchedPollInterval = time.Second

// readerWaiting, when set (by tests), is called each time a reader has
// found nothing to read and is about to wait.
var readerWaiting func(r *FileReader)

func (r *FileReader) read(ctx context.Context, n int) ([]*frame.Received, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var wake <-chan struct{}
	if r.watch != nil {
		wake = r.watch.wake
	}
	for {
		select {
		case <-r.closed:
			return nil, frame.ErrClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// A hint that came before this listing is answered by it.
		select {
		case <-wake:
		default:
		}
		if recs := r.next(n); len(recs) > 0 {
			return recs, nil
		}
		if readerWaiting != nil {
			readerWaiting(r)
		}
		poll := r.opts.PollInterval
		if r.watch != nil && r.watch.active() {
			poll = max(poll, watchedPollInterval)
		}
		if timer == nil {
			timer = time.NewTimer(poll)
		} else {
			timer.Reset(poll)
		}
		select {
		case <-r.closed:
			return nil, frame.ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		case <-timer.C:
		}
	}
}

// openDir opens the reader's directory for one operation. A bad entry
// where it belongs is set aside and reported, and a new one made.
func (r *FileReader) openDir() (*mdir, error) {
	return r.md.open(dirMode, false, r.ioError)
}

// next retries the held files that are due, then hands out the first
// pending frames (at most n) whose files are still the ones read,
// listing the directory when nothing is pending. It keeps the inotify
// watch on the directory it lists.
func (r *FileReader) next(n int) []*frame.Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retryHeld()
	d, err := r.openDir()
	if err != nil {
		r.ioError(fmt.Errorf("filemedium: listing %s: %w", r.dir, err))
		return nil
	}
	defer d.close()
	if r.watch != nil {
		r.watch.follow(d)
	}
	if len(r.pending) == 0 {
		r.scan(d)
	}
	var out []*frame.Received
	for len(r.pending) > 0 && len(out) < n {
		ff := r.pending[0]
		r.pending = r.pending[1:]
		cur, err := d.lstat(ff.name)
		if err != nil || !cur.same(ff.info) {
			continue // moved away, or replaced by a resend the next listing reads
		}
		r.outstanding[ff.name] = ff
		out = append(out, frame.NewReceived(ff.frame, ff.name,
			func() error { return r.settle(ff, DoneDir, "") },
			func(reason string) error { return r.settle(ff, QuarantineDir, reason) }))
	}
	return out
}

// maxPending bounds how many frames one listing reads ahead.
const maxPending = 1024

// scan lists d and reads every new frame file into pending, quarantining
// bad ones. r.mu is held.
func (r *FileReader) scan(d *mdir) {
	names, err := d.names()
	if err != nil {
		r.ioError(fmt.Errorf("filemedium: listing %s: %w", r.dir, err))
		return
	}
	for _, name := range names {
		if !strings.HasSuffix(name, FileSuffix) {
			continue // not a frame's name: temporary files, done/, quarantine/, set-aside entries
		}
		if ff, out := r.outstanding[name]; out {
			if st, err := d.lstat(name); err != nil || st.same(ff.info) {
				continue // still the file handed out
			}
			// A resend replaced the file handed out (whose consumer may
			// never settle it: a gateway whose term ended): read it.
		}
		if h, ok := r.held[name]; ok {
			if st, err := d.lstat(name); err == nil && st.same(h.ff.info) {
				continue // still the file held for quarantine
			}
			delete(r.held, name) // gone or replaced: read what is there now
		}
		if ff := r.load(d, name); ff != nil {
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
func (r *FileReader) load(d *mdir, name string) *fileFrame {
	lst, err := d.lstat(name)
	if err != nil {
		if !errors.Is(err, syscall.ENOENT) {
			r.ioError(err)
		}
		return nil
	}
	data, info, err := readFrameFile(d, name, lst)
	var fe *frame.FrameError
	switch {
	case errors.As(err, &fe):
		r.refuse(d, name, info, nil, err)
		return nil
	case errors.Is(err, errReplaced), errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ELOOP):
		return nil // changed since it was listed: the next listing reads it
	case err != nil:
		r.ioError(err)
		return nil
	}
	f, err := frame.DecodeFrame(data)
	if err == nil {
		err = r.check(name, f)
	}
	if err != nil {
		r.refuse(d, name, info, nil, err)
		return nil
	}
	return &fileFrame{frame: f, name: name, info: info}
}

// readFrameFile reads the frame file name in d, which lstat described as
// lst: it must be a regular file (not a link, a FIFO, a directory) of at
// most MaxFrameLength bytes, checked before it is opened; it is opened
// without following a link and without waiting on a FIFO swapped in, and
// must still be the file lst describes (else errReplaced). Errors about
// the file itself are *FrameError; info describes what was read.
func readFrameFile(d *mdir, name string, lst entryStat) (data []byte, info entryStat, err error) {
	if !lst.isRegular() {
		return nil, lst, frame.Errorf(frame.ErrCodeFileName, "not a regular file (%s)", lst.kind())
	}
	if lst.size > frame.MaxFrameLength {
		return nil, lst, frame.Errorf(frame.ErrCodeLength, "file of %d bytes, at most %d", lst.size, frame.MaxFrameLength)
	}
	fh, err := d.openFile(name, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, lst, err
	}
	defer fh.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(fh.Fd()), &st); err != nil {
		return nil, lst, &os.PathError{Op: "fstat", Path: d.join(name), Err: err}
	}
	if info = statOf(&st); !info.same(lst) {
		return nil, lst, errReplaced
	}
	data, err = io.ReadAll(io.LimitReader(fh, frame.MaxFrameLength+1))
	if err != nil {
		return nil, info, fmt.Errorf("filemedium: reading %s: %w", d.join(name), err)
	}
	if len(data) > frame.MaxFrameLength {
		return nil, info, frame.Errorf(frame.ErrCodeLength, "file grew past %d bytes", frame.MaxFrameLength)
	}
	return data, info, nil
}

// check applies the reader's checks beyond DecodeFrame's.
func (r *FileReader) check(name string, f *frame.Frame) error {
	if err := CheckFileName(name, f); err != nil {
		return err
	}
	if r.types != nil && !r.types[f.Type] {
		return frame.Errorf(frame.ErrCodeType, "a %s frame; this reader does not take them", f.Type)
	}
	now := r.opts.Now()
	if r.opts.MaxAge > 0 && f.Created.Before(now.Add(-r.opts.MaxAge)) {
		return frame.Errorf(frame.ErrCodeExpired, "created %s, more than %s ago", f.Created.UTC().Format(time.RFC3339Nano), r.opts.MaxAge)
	}
	if r.opts.MaxFutureSkew > 0 && f.Created.After(now.Add(r.opts.MaxFutureSkew)) {
		return frame.Errorf(frame.ErrCodeFuture, "created %s, more than %s ahead", f.Created.UTC().Format(time.RFC3339Nano), r.opts.MaxFutureSkew)
	}
	return nil
}

// ioError reports an error the reader rides out.
func (r *FileReader) ioError(err error) {
	if r.opts.OnError != nil {
		r.opts.OnError(err)
	}
}

// LoadFrameFile reads and decodes the frame file at path: it must be a
// regular file of at most MaxFrameLength bytes (checked before reading)
// holding exactly one frame. The directory holding it is trusted (it is
// the caller's); the file itself is opened without following a link. It
// does not check the name or the payload (see CheckFileName and
// DecodePayload). Errors about the content are *FrameError.
func LoadFrameFile(path string) (*frame.Frame, error) {
	d, err := openRoot(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer d.close()
	return loadFrameAt(d, filepath.Base(path))
}

func loadFrameAt(d *mdir, name string) (*frame.Frame, error) {
	lst, err := d.lstat(name)
	if err != nil {
		return nil, err
	}
	data, _, err := readFrameFile(d, name, lst)
	if errors.Is(err, errReplaced) {
		return nil, frame.Errorf(frame.ErrCodeFileName, "replaced while being opened")
	}
	if err != nil {
		return nil, err
	}
	return frame.DecodeFrame(data)
}
