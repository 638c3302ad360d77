package filemedium

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nanokms/nanokms/bridge/frame"
)

// Settling files: done/, quarantine/ and the files a reader holds while
// the medium will not take them (FRAMES.md, "When the medium will not
// take a file").

// heldFile is a file the reader could not settle or quarantine: it stays
// in place, is not handed out again, and is retried with a growing pause.
type heldFile struct {
	ff     *fileFrame
	handed bool   // handed out (settled by the consumer) rather than refused when read
	sub    string // DoneDir or QuarantineDir
	reason string
	cause  error // for a refused file: why (the .reason file's content)
	tries  int
	next   time.Time
}

// The pause before a held file is tried again: heldRetryMin, doubling up
// to heldRetryMax.
const (
	heldRetryMin = time.Second
	heldRetryMax = time.Minute
)

func heldPause(tries int) time.Duration {
	d := heldRetryMin
	for range tries {
		if d *= 2; d >= heldRetryMax {
			return heldRetryMax
		}
	}
	return d
}

// hold keeps h for a later try and reports why. r.mu is held.
func (r *FileReader) hold(h *heldFile, err error) {
	h.next = r.opts.Now().Add(heldPause(h.tries))
	r.held[h.ff.name] = h
	what := "settling"
	if !h.handed {
		what = "quarantining"
	}
	r.ioError(fmt.Errorf("filemedium: %s %s failed; the file stays in place, is not handed out again, and is tried again in %s: %w",
		what, h.ff.name, heldPause(h.tries), err))
}

// retryHeld tries the held files whose pause is over. r.mu is held.
func (r *FileReader) retryHeld() {
	if len(r.held) == 0 {
		return
	}
	now := r.opts.Now()
	var due []*heldFile
	for _, h := range r.held {
		if !now.Before(h.next) {
			due = append(due, h)
		}
	}
	slices.SortFunc(due, func(a, b *heldFile) int { return strings.Compare(a.ff.name, b.ff.name) })
	for _, h := range due {
		var err error
		if h.handed {
			err = r.settleNow(h.ff, h.sub, h.reason)
		} else {
			err = r.quarantineNow(h.ff, h.reason, h.cause)
		}
		if err != nil && !isCrash(err) {
			h.tries++
			r.hold(h, err)
			continue
		}
		delete(r.held, h.ff.name)
		if h.handed {
			delete(r.outstanding, h.ff.name)
		}
	}
}

// refuse quarantines a file the reader will not hand out, and reports it.
// A file the medium will not let it move is held, and tried again.
func (r *FileReader) refuse(d *mdir, name string, info entryStat, f *frame.Frame, err error) {
	ff := &fileFrame{frame: f, name: name, info: info}
	if qerr := r.quarantine(d, name, info, f, err.Error(), err); qerr != nil {
		if isCrash(qerr) {
			r.ioError(qerr)
		} else {
			r.hold(&heldFile{ff: ff, sub: QuarantineDir, reason: err.Error(), cause: err}, qerr)
		}
	}
	if r.opts.OnReject != nil {
		r.opts.OnReject(name, err)
	}
}

// quarantineNow quarantines a refused file, opening the directory.
func (r *FileReader) quarantineNow(ff *fileFrame, reason string, cause error) error {
	d, err := r.openDir()
	if err != nil {
		return err
	}
	defer d.close()
	return r.quarantine(d, ff.name, ff.info, ff.frame, reason, cause)
}

// settle moves a handed-out frame's file into sub (done/ or quarantine/).
// When the medium will not take it (done/ cannot be made, the medium is
// full or gone), the file is held: it stays in place, is not handed out
// again, is reported to OnError and tried again later; settle returns nil.
// Only a crash point (tests) returns an error.
func (r *FileReader) settle(ff *fileFrame, sub, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, out := r.outstanding[ff.name]; !out || cur != ff {
		return nil // settled already, or replaced by a resend handed out since
	}
	if _, held := r.held[ff.name]; held {
		return nil // settled already, and held
	}
	err := r.settleNow(ff, sub, reason)
	switch {
	case err == nil, isCrash(err):
		delete(r.outstanding, ff.name)
		return err
	}
	r.hold(&heldFile{ff: ff, handed: true, sub: sub, reason: reason}, err)
	return nil
}

// DoneAll settles recs as Done settles each of them (frame.BatchReader),
// syncing done/ and the reader's directory once for all: every file still
// the one read is renamed into done/, then both directories are synced.
// Files the medium will not let it move, or whose move cannot be synced,
// are held as Done holds them (they stay in place, are not handed out
// again, and are tried again later). A Received this reader did not hand
// out, or settled already, is settled by its own Done. Only a crash point
// (tests) returns an error.
func (r *FileReader) DoneAll(recs []*frame.Received) error {
	var others []*frame.Received
	err := func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		var batch []*fileFrame
		for _, rec := range recs {
			ff, out := r.outstanding[rec.Name]
			if !out || ff.frame != rec.Frame {
				others = append(others, rec)
				continue
			}
			if _, held := r.held[ff.name]; held {
				continue // settled already, and held
			}
			batch = append(batch, ff)
		}
		return r.settleBatch(batch)
	}()
	if err != nil {
		return err
	}
	for _, rec := range others {
		if err := rec.Done(); err != nil {
			return err
		}
	}
	return nil
}

// settleBatch moves the handed-out frames of batch into done/ with one
// sync of each directory. r.mu is held.
func (r *FileReader) settleBatch(batch []*fileFrame) error {
	if len(batch) == 0 {
		return nil
	}
	holdAll := func(ffs []*fileFrame, err error) {
		for _, ff := range ffs {
			r.hold(&heldFile{ff: ff, handed: true, sub: DoneDir}, err)
		}
	}
	d, err := r.openDir()
	if err != nil {
		holdAll(batch, err)
		return nil
	}
	defer d.close()
	dd, err := d.ensureDir(DoneDir, dirMode, true, r.ioError)
	if err != nil {
		holdAll(batch, err)
		return nil
	}
	defer dd.close()
	var moved []*fileFrame
	for _, ff := range batch {
		err := r.moveNoSync(d, ff.name, ff.info, dd, ff.name)
		switch {
		case err == nil:
			moved = append(moved, ff)
		case errors.Is(err, errReplaced), errors.Is(err, errGone):
			delete(r.outstanding, ff.name) // a resend took the name: it is read again (and answered identically)
		case isCrash(err):
			delete(r.outstanding, ff.name)
			return err
		default:
			r.hold(&heldFile{ff: ff, handed: true, sub: DoneDir}, err)
		}
	}
	if len(moved) == 0 {
		return nil
	}
	if err := dd.sync(); err != nil {
		holdAll(moved, err)
		return nil
	}
	if err := d.sync(); err != nil {
		holdAll(moved, err)
		return nil
	}
	for _, ff := range moved {
		delete(r.outstanding, ff.name)
	}
	return nil
}

// settleNow moves ff into sub. r.mu is held.
func (r *FileReader) settleNow(ff *fileFrame, sub, reason string) error {
	d, err := r.openDir()
	if err != nil {
		return err
	}
	defer d.close()
	if sub == DoneDir {
		dd, err := d.ensureDir(DoneDir, dirMode, true, r.ioError)
		if err != nil {
			return err
		}
		defer dd.close()
		err = r.move(d, ff.name, ff.info, dd, ff.name)
		if errors.Is(err, errReplaced) || errors.Is(err, errGone) {
			return nil // a resend took the name: it is read again (and answered identically)
		}
		return err
	}
	rejectErr := &RejectedError{Reason: reason}
	if err := r.quarantine(d, ff.name, ff.info, ff.frame, reason, rejectErr); err != nil {
		return err
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
func (e *RejectedError) Error() string { return "filemedium: frame rejected: " + e.Reason }

var (
	errReplaced = errors.New("filemedium: the file was replaced")
	errGone     = fmt.Errorf("filemedium: the file is gone: %w", fs.ErrNotExist)
)

// move renames name in d into target in to if it is still the file info
// describes, and syncs both directories: errReplaced if another file took
// the name, errGone if none did.
func (r *FileReader) move(d *mdir, name string, info entryStat, to *mdir, target string) error {
	if err := r.moveNoSync(d, name, info, to, target); err != nil {
		return err
	}
	if err := to.sync(); err != nil {
		return err
	}
	return d.sync()
}

// moveNoSync is move without the syncs of the directories.
func (r *FileReader) moveNoSync(d *mdir, name string, info entryStat, to *mdir, target string) error {
	cur, err := d.lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return errGone
	}
	if err != nil {
		return err
	}
	if !cur.same(info) {
		return errReplaced
	}
	if err := crashPoint("settle:before-rename"); err != nil {
		return err
	}
	return d.replace(name, to, target, "a frame file", r.ioError)
}

// quarantine moves name in d into quarantine/ under a free name and
// writes its .reason file. When a resend has replaced the file, f (if
// known) is written there instead and the resend is left to be read.
func (r *FileReader) quarantine(d *mdir, name string, info entryStat, f *frame.Frame, reason string, cause error) error {
	qd, err := d.ensureDir(QuarantineDir, dirMode, true, r.ioError)
	if err != nil {
		return err
	}
	defer qd.close()
	target := r.freeQuarantineName(qd, name)
	err = r.move(d, name, info, qd, target)
	switch {
	case errors.Is(err, errReplaced) && f != nil:
		data, merr := f.MarshalBinary()
		if merr != nil {
			return merr
		}
		if err := writeFileAtomic(qd, target, "", data, "quarantine-copy:", r.ioError); err != nil {
			return err
		}
	case errors.Is(err, errReplaced) || errors.Is(err, errGone):
		return nil // gone, or a new file we have not read: nothing to quarantine
	case err != nil:
		return err
	}
	if err := crashPoint("settle:before-reason"); err != nil {
		return err
	}
	if err := writeFileAtomic(qd, target+".reason", "", reasonFile(name, reason, cause, r.opts.Now()), "reason:", r.ioError); err != nil {
		// The file is in quarantine (never read again) without its
		// reason; nothing half-written is left. Report, do not hold.
		r.ioError(fmt.Errorf("filemedium: writing the .reason of %s: %w", target, err))
	}
	return nil
}

// freeQuarantineName returns name, or name with "~N" before ".nkb", so
// that an earlier bad copy is not overwritten. r.mu is held.
func (r *FileReader) freeQuarantineName(qd *mdir, name string) string {
	base := strings.TrimSuffix(name, FileSuffix)
	for n := max(1, r.qnext[name]); ; n++ {
		cand := name
		if n > 1 {
			cand = base + "~" + strconv.Itoa(n) + FileSuffix
		}
		if !qd.exists(cand) && !qd.exists(cand+".reason") {
			if len(r.qnext) > maxPending {
				clear(r.qnext)
			}
			r.qnext[name] = n + 1
			return cand
		}
	}
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
	fmt.Fprintf(&b, "file: %s\n", oneLine(name))
	var fe *frame.FrameError
	if errors.As(cause, &fe) {
		fmt.Fprintf(&b, "code: %d\n", uint8(fe.Code))
		fmt.Fprintf(&b, "reason: %s\n", fe.Code)
		if fe.Detail != "" {
			fmt.Fprintf(&b, "detail: %s\n", oneLine(fe.Detail))
		}
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
