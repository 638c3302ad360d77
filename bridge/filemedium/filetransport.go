package filemedium

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nanokms/nanokms/bridge/frame"
)

// The file transport (FRAMES.md, "File transport"): one directory per
// direction; a frame is one file named <request-id>.<type>.nkb, put in
// place atomically (write a dot-named temporary file, fsync it, rename it,
// fsync the directory). The reader moves handled files into done/ and bad
// ones into quarantine/ with a .reason file beside them. No operation
// beneath the medium root follows a symbolic link (mediumfs.go).

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
	TempPrefix = ".tmp-"
	dirMode    = 0o755
	fileMode   = 0o644 // frames hold no secrets (doc.go); integrity is the CRC's and the approvals' job
)

// FileName returns the name f is written under: <request-id>.<type>.nkb.
func FileName(f *frame.Frame) string {
	return f.RequestID + "." + f.Type.String() + FileSuffix
}

// CheckFileName checks that name is the name f is written under. It fails
// with a *FrameError with ErrCodeFileName.
func CheckFileName(name string, f *frame.Frame) error {
	if want := FileName(f); name != want {
		return frame.Errorf(frame.ErrCodeFileName, "named %q, holds %q", name, want)
	}
	return nil
}

// tempName returns a new temporary file name: ".tmp-<id>-<16 hex digits>"
// for a frame, ".tmp-<16 hex digits>" when id is "" (a quarantined copy or
// a .reason file).
func tempName(id string) string {
	if id == "" {
		return TempPrefix + randomHex()
	}
	return TempPrefix + id + "-" + randomHex()
}

// parseTempName reports whether name is one tempName makes, and the
// request id in it ("" for the form without one). Nothing else is ever
// removed as a temporary file.
func parseTempName(name string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(name, TempPrefix)
	if !ok || len(rest) < 16 {
		return "", false
	}
	suffix, head := rest[len(rest)-16:], rest[:len(rest)-16]
	for i := 0; i < len(suffix); i++ {
		if c := suffix[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	if head == "" {
		return "", true
	}
	id, ok = strings.CutSuffix(head, "-")
	if !ok || !frame.ValidRequestID(id) {
		return "", false
	}
	return id, true
}

// parseSetAside reports whether name is one a reader or writer gave a
// bad entry it set aside (mediumfs.go: "<name>.bad-<16 hex digits>"),
// and the name the entry had.
func parseSetAside(name string) (orig string, ok bool) {
	i := strings.LastIndex(name, SetAsideMark)
	if i <= 0 || len(name)-i-len(SetAsideMark) != 16 {
		return "", false
	}
	for _, c := range name[i+len(SetAsideMark):] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	orig = name[:i]
	if !validName(orig) {
		return "", false
	}
	return orig, true
}

// crashHook, when set (by tests), is called at each crash point of the
// file transport; an error it returns is returned as if the process had
// died there (nothing after it runs). The points:
//
//	"write:before-rename"   the temporary file is written and synced
//	"write:before-dirsync"  the frame is renamed into place, the directory not yet synced
//	"settle:before-rename"  a read file is about to move into done/ or quarantine/
//	"settle:before-reason"  a file is in quarantine/, its .reason not yet written
//
// (and "reason:…" and "quarantine-copy:…" for the .reason file and the
// copy of a replaced file, written as frames are.)
var crashHook func(point string) error

// crashError marks an error returned by crashHook.
type crashError struct{ err error }

func (e *crashError) Error() string { return e.err.Error() }
func (e *crashError) Unwrap() error { return e.err }

func crashPoint(point string) error {
	if crashHook == nil {
		return nil
	}
	if err := crashHook(point); err != nil {
		return &crashError{err}
	}
	return nil
}

func isCrash(err error) bool {
	var c *crashError
	return errors.As(err, &c)
}

// FileWriterOptions configures a FileWriter. The zero value writes into
// a directory whose parent is the medium root, and discards reports.
type FileWriterOptions struct {
	// Root is the trusted medium root the directory lies beneath
	// (FRAMES.md, "Trust on the medium"): it may be a symbolic link;
	// nothing beneath it is followed. "" means the directory's parent.
	Root string
	// OnError is told of every bad entry the writer meets (an
	// *EntryError: a link or a file where its directory belongs, a
	// directory where a frame is to go, a foreign file named like one of
	// its temporary files), of temporary files it could not remove, and
	// of every failed write (which WriteFrame also returns). nil discards.
	OnError func(err error)
}

// FileWriter writes frames into one directory. It is safe for concurrent
// use. One writer owns a directory: opening it removes the temporary
// files a crashed writer left behind.
type FileWriter struct {
	dir     string
	md      mediumDir
	onError func(error)
}

// NewFileWriter returns a writer into dir with the default options
// (OpenFileWriter).
func NewFileWriter(dir string) (*FileWriter, error) {
	return OpenFileWriter(dir, FileWriterOptions{})
}

// OpenFileWriter returns a writer into dir, creating dir (and the medium
// root) if needed. It removes leftover temporary files of an earlier
// writer that crashed before renaming them: regular files this process's
// user owns, with one link, named as the writer names them
// (".tmp-<id>-<16 hex digits>"), last written more than TempGrace ago (a
// younger one may be another live writer's, still being written: several
// gateways open one medium, one of them writing); anything else is left
// alone, and reported when it is named like one. A bad entry where dir (or a
// directory between it and the root) belongs is set aside and reported,
// and the directory made; a root that cannot be made or opened is an
// error.
func OpenFileWriter(dir string, opts FileWriterOptions) (*FileWriter, error) {
	md, err := newMediumDir(opts.Root, dir)
	if err != nil {
		return nil, err
	}
	w := &FileWriter{dir: md.dir, md: md, onError: opts.OnError}
	if err := os.MkdirAll(md.root, dirMode); err != nil {
		return nil, fmt.Errorf("filemedium: file writer: %w", err)
	}
	d, err := md.open(dirMode, true, w.report)
	if err != nil {
		return nil, fmt.Errorf("filemedium: file writer: %w", err)
	}
	defer d.close()
	w.removeTemps(d)
	return w, nil
}

// Dir returns the writer's directory.
func (w *FileWriter) Dir() string { return w.dir }

func (w *FileWriter) report(err error) {
	if w.onError != nil {
		w.onError(err)
	}
}

// TempGrace is how old a temporary file must be for OpenFileWriter to
// take it for a crashed writer's: a live writer renames its own within
// milliseconds (seconds on a slow stick).
const TempGrace = time.Minute

// removeTemps removes the temporary files a crashed writer left in d.
func (w *FileWriter) removeTemps(d *mdir) {
	names, err := d.names()
	if err != nil {
		w.report(fmt.Errorf("filemedium: file writer: listing %s: %w", d.path, err))
		return
	}
	euid := os.Geteuid()
	young := time.Now().Add(-TempGrace).UnixNano()
	for _, name := range names {
		if _, ok := parseTempName(name); !ok {
			continue
		}
		st, err := d.lstat(name)
		if err != nil {
			continue // gone
		}
		if st.isRegular() && st.mtime > young {
			continue // perhaps another writer's, being written
		}
		found := ""
		switch {
		case !st.isRegular():
			found = st.kind()
		case int(st.uid) != euid:
			found = fmt.Sprintf("regular file of another user (uid %d)", st.uid)
		case st.nlink != 1:
			found = fmt.Sprintf("regular file with %d links", st.nlink)
		}
		if found != "" {
			w.report(&EntryError{Path: d.join(name), Found: found, Want: "a temporary file of this writer"})
			continue
		}
		if err := d.unlink(name); err != nil && !errors.Is(err, syscall.ENOENT) {
			w.report(fmt.Errorf("filemedium: file writer: removing a temporary file: %w", err))
		}
	}
}

// WriteFrame writes f as dir/<request-id>.<type>.nkb and returns once the
// file and its name are durable: it writes a temporary file (a name
// starting with "."), fsyncs it, renames it into place and fsyncs the
// directory. A file of the same name is replaced (it is a resend); a
// directory of that name is set aside and reported. After a crash nothing
// but a temporary file is left, which readers ignore; after an error,
// not even that. When the medium is full the error wraps ErrMediumFull
// and the system's error (syscall.ENOSPC).
func (w *FileWriter) WriteFrame(ctx context.Context, f *frame.Frame) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	name := FileName(f)
	d, err := w.md.open(dirMode, false, w.report)
	if err == nil {
		err = writeFileAtomic(d, name, f.RequestID, data, "write:", w.report)
		d.close()
	}
	if err != nil {
		err = fmt.Errorf("filemedium: writing %s: %w", name, err)
		if !isCrash(err) {
			w.report(err)
		}
		return err
	}
	return nil
}

// WriteFrames writes fs as WriteFrame writes each (a temporary file
// written and fsynced, renamed into place), then fsyncs the directory
// once for all of them, and returns once the first n are durable
// (frame.BatchWriter). A frame that cannot be written stops the batch:
// the frames before it are made durable (n of them), it and those after
// it leave nothing under their names. When the final directory sync
// fails, n is 0: the frames are in place but not known to be durable, and
// writing them again replaces them.
func (w *FileWriter) WriteFrames(ctx context.Context, fs []*frame.Frame) (int, error) {
	if len(fs) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	fail := func(err error) error {
		if !isCrash(err) {
			w.report(err)
		}
		return err
	}
	d, err := w.md.open(dirMode, false, w.report)
	if err != nil {
		return 0, fail(fmt.Errorf("filemedium: writing %d frames: %w", len(fs), err))
	}
	defer d.close()
	n := 0
	var stop error
	for _, f := range fs {
		data, err := f.MarshalBinary()
		if err == nil {
			err = writeFileNoDirSync(d, FileName(f), f.RequestID, data, "write:", w.report)
		}
		if err != nil {
			stop = fmt.Errorf("filemedium: writing %s: %w", FileName(f), err)
			break
		}
		n++
	}
	if stop != nil && (isCrash(stop) || n == 0) {
		return 0, fail(stop)
	}
	if err := crashPoint("write:before-dirsync"); err != nil {
		return 0, err
	}
	if err := d.sync(); err != nil {
		return 0, fail(fmt.Errorf("filemedium: writing %d frames: %w", n, err))
	}
	if stop != nil {
		return n, fail(stop)
	}
	return n, nil
}

// writeFileAtomic writes data to name in d through a temporary file
// (tempName(tmpID)), with the crash points prefixed by point. On an error
// the temporary file is removed; on a full medium the error wraps
// ErrMediumFull.
func writeFileAtomic(d *mdir, name, tmpID string, data []byte, point string, report func(error)) error {
	if err := writeFileNoDirSync(d, name, tmpID, data, point, report); err != nil {
		return err
	}
	if err := crashPoint(point + "before-dirsync"); err != nil {
		return err
	}
	return d.sync()
}

// writeFileNoDirSync is writeFileAtomic without the final sync of d: the
// file is durable, its name in d is not yet.
func writeFileNoDirSync(d *mdir, name, tmpID string, data []byte, point string, report func(error)) error {
	tmp := tempName(tmpID)
	fh, err := d.openFile(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, fileMode)
	if err != nil {
		return fullErr(err)
	}
	keep := false
	defer func() {
		if !keep {
			fh.Close()
			_ = d.unlink(tmp) // ours: created exclusively above
		}
	}()
	if _, err := fh.Write(data); err != nil {
		return fullErr(err)
	}
	if err := fh.Sync(); err != nil {
		return fullErr(err)
	}
	if err := fh.Close(); err != nil {
		return fullErr(err)
	}
	if err := crashPoint(point + "before-rename"); err != nil {
		keep = true // a crash leaves the temporary file behind
		return err
	}
	if err := d.replace(tmp, d, name, "a frame file", report); err != nil {
		return fullErr(err)
	}
	keep = true
	return nil
}

// replace renames old in d to new in to, replacing a file there. A
// directory there (which a rename cannot replace) is set aside and
// reported first; want says what belongs at new.
func (d *mdir) replace(old string, to *mdir, new, want string, report func(error)) error {
	err := d.rename(old, to, new)
	if err == nil || !(errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)) {
		return err
	}
	st, serr := to.lstat(new)
	if serr != nil || !st.isDir() {
		return err
	}
	aside, aerr := to.setAside(new)
	report(&EntryError{Path: to.join(new), Found: st.kind(), Want: want, SetAside: aside, Err: aerr})
	if aerr != nil {
		return aerr
	}
	return d.rename(old, to, new)
}
