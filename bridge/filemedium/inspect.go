package filemedium

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nanokms/nanokms/bridge/frame"
)

// Inspection of a frame directory for `nanokms bridge inspect`: what a
// reader would take, what it would refuse and what does not belong. It
// changes nothing and, like the transport, follows no link beneath the
// directory it is given.

// InspectedEntry is one entry of a frame directory.
type InspectedEntry struct {
	Path  string // the entry's path
	Where string // "" (the directory itself), DoneDir or QuarantineDir
	// Frame is the decoded frame of a frame file (nil when it is not one,
	// or does not decode). Its name and payload are not checked.
	Frame *frame.Frame
	// Err says what is wrong: a *FrameError for a bad frame file, an
	// error wrapping ErrBadEntry for an entry that does not belong (a
	// link or a file where done/ or quarantine/ belongs, an entry a
	// reader or writer set aside, a link named like a temporary file), or
	// the error reading it.
	Err error
	// Reason is a quarantined file's .reason (at most MaxReasonLength
	// bytes), or nil; ReasonErr says why it could not be read.
	Reason    []byte
	ReasonErr error
}

// MaxReasonLength bounds how much of a .reason file is read.
const MaxReasonLength = 64 << 10

// InspectDir inspects dir (trusted: the caller named it), its done/ and
// its quarantine/: every name ending in ".nkb", and every entry that does
// not belong. Entries come in that order (dir, done/, quarantine/), each
// part sorted by name.
func InspectDir(dir string) ([]InspectedEntry, error) {
	root, err := openRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.close()
	out, err := inspectIn(root, "")
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{DoneDir, QuarantineDir} {
		sd, err := root.subdir(sub)
		switch {
		case errors.Is(err, syscall.ENOENT):
			continue
		case errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENOTDIR):
			e := InspectedEntry{Path: root.join(sub), Err: err}
			if st, serr := root.lstat(sub); serr == nil {
				e.Err = &EntryError{Path: root.join(sub), Found: st.kind(), Want: "a directory"}
			}
			out = append(out, e)
			continue
		case err != nil:
			return nil, err
		}
		entries, err := inspectIn(sd, sub)
		sd.close()
		if err != nil {
			return nil, err
		}
		out = append(out, entries...)
	}
	return out, nil
}

// InspectFile inspects the frame file at path (its directory is trusted;
// the file is not followed if it is a link). where says which part of a
// frame directory it is in ("", DoneDir or QuarantineDir): a quarantined
// file's .reason is read too.
func InspectFile(path, where string) InspectedEntry {
	e := InspectedEntry{Path: path, Where: where}
	d, err := openRoot(filepath.Dir(path))
	if err != nil {
		e.Err = err
		return e
	}
	defer d.close()
	name := filepath.Base(path)
	e.Frame, e.Err = loadFrameAt(d, name)
	if where == QuarantineDir {
		e.Reason, e.ReasonErr = readReason(d, name+".reason")
	}
	return e
}

func inspectIn(d *mdir, where string) ([]InspectedEntry, error) {
	names, err := d.names()
	if err != nil {
		return nil, err
	}
	var out []InspectedEntry
	for _, name := range names {
		e := InspectedEntry{Path: d.join(name), Where: where}
		switch {
		case strings.HasSuffix(name, FileSuffix):
			e.Frame, e.Err = loadFrameAt(d, name)
			if where == QuarantineDir {
				e.Reason, e.ReasonErr = readReason(d, name+".reason")
			}
		case where == "" && (name == DoneDir || name == QuarantineDir):
			continue // a directory (inspected after); anything else there fails to open as one
		default:
			st, err := d.lstat(name)
			if err != nil {
				continue // gone
			}
			if orig, ok := parseSetAside(name); ok {
				e.Err = fmt.Errorf("%w: %s is a %s that was set aside from %s, where the transport needed a directory or a frame file",
					ErrBadEntry, d.join(name), st.kind(), orig)
			} else if _, ok := parseTempName(name); ok && !st.isRegular() {
				e.Err = &EntryError{Path: d.join(name), Found: st.kind(), Want: "a temporary file"}
			} else {
				continue // not the transport's: a note, a temporary file being written
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// readReason reads the .reason file name in d: a regular file, not a
// link, at most MaxReasonLength bytes read. A missing one is (nil, nil).
func readReason(d *mdir, name string) ([]byte, error) {
	st, err := d.lstat(name)
	if errors.Is(err, syscall.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !st.isRegular() {
		return nil, &EntryError{Path: d.join(name), Found: st.kind(), Want: "a regular file"}
	}
	fh, err := d.openFile(name, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return io.ReadAll(io.LimitReader(fh, MaxReasonLength))
}
