package filemedium

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The file transport's access to the medium (FRAMES.md, "Trust on the
// medium"). The medium root — the directory the operator configured,
// bridge.root or the directory holding bridge.inbound and bridge.outbound
// — is trusted, and may itself be (or lie under) a symbolic link.
// Everything beneath it is written by the other side and is not: no
// operation beneath the root follows a symbolic link. The root is opened
// as a directory file descriptor for each listing and each write (so a
// stick pulled and put back is found again), the directories beneath it
// are opened from it one component at a time, each without following a
// link (openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS where the kernel
// has it, O_NOFOLLOW otherwise), and every file operation is relative to
// those descriptors (openat, renameat, unlinkat, mkdirat, fstatat without
// following, fsync of the directories).

// ErrMediumFull is returned (wrapped, together with the system's error, so
// that errors.Is(err, syscall.ENOSPC) also holds) when the medium has no
// space or no inodes left for a frame or a .reason file. Nothing is left
// half-written: the temporary file is removed.
var ErrMediumFull = errors.New("filemedium: the bridge medium is full")

// ErrBadEntry is wrapped by every *EntryError.
var ErrBadEntry = errors.New("filemedium: an entry on the bridge medium is not what belongs there")

// EntryError reports an entry beneath the medium root that is not what
// the file transport needs there: a symbolic link, a file or a FIFO where
// one of its directories belongs, a directory where a frame is to be
// written, a link or a foreign file named like one of its temporary files.
// Such an entry is never followed and never deleted; SetAside says where
// it was moved so that the transport could go on ("" when it was left in
// place).
type EntryError struct {
	Path     string // the entry's path
	Found    string // what is there: "symbolic link", "regular file", "directory", "FIFO", ...
	Want     string // what belongs there, e.g. "a directory"
	SetAside string // the name it was renamed to in the same directory, or ""
	Err      error  // why setting it aside failed, if it did
}

// IsBadEntryAt reports whether err reports a bad entry (an *EntryError
// wrapping ErrBadEntry) at path.
func IsBadEntryAt(err error, path string) bool {
	var ee *EntryError
	return errors.As(err, &ee) && ee.Path == path && errors.Is(err, ErrBadEntry)
}

// Error implements error.
func (e *EntryError) Error() string {
	msg := fmt.Sprintf("filemedium: %s is a %s, not %s", e.Path, e.Found, e.Want)
	switch {
	case e.Err != nil:
		msg += fmt.Sprintf("; it could not be set aside: %v", e.Err)
	case e.SetAside != "":
		msg += "; set aside as " + e.SetAside
	default:
		msg += "; left in place"
	}
	return msg
}

// Unwrap returns ErrBadEntry and the error setting the entry aside.
func (e *EntryError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrBadEntry, e.Err}
	}
	return []error{ErrBadEntry}
}

// SetAsideMark is put between an entry's name and a random suffix when a
// bad entry is renamed out of the way: "done" → "done.bad-0123456789abcdef".
// The result never ends in ".nkb", so no reader takes it for a frame.
const SetAsideMark = ".bad-"

// fullErr marks err as ErrMediumFull when the medium is out of space.
func fullErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrMediumFull, err)
	}
	return err
}

// useOpenat2 reports whether openat2(2) with RESOLVE_BENEATH and
// RESOLVE_NO_SYMLINKS is available; it is probed once. Tests replace it
// (ForceOpenMode) to run the O_NOFOLLOW fallback.
var useOpenat2 = probeOpenat2

// Openat2Available reports whether this kernel has openat2(2) (Linux 5.6),
// which the medium then uses to open every entry beneath its root.
func Openat2Available() bool { return probeOpenat2() }

// ForceOpenMode makes the medium open entries with openat2(2) (true) or
// with O_NOFOLLOW one path component at a time (false), and returns the
// function that restores the probed choice. It exists for tests, which
// run every attack on the medium in both modes; it must not be called
// while a medium is in use.
func ForceOpenMode(openat2 bool) (restore func()) {
	saved := useOpenat2
	useOpenat2 = func() bool { return openat2 }
	return func() { useOpenat2 = saved }
}

// PrepareDir makes dir, beneath the medium root root ("" for the directory
// holding dir), ready for use: created (mode 0700) when missing, and a bad
// entry where a directory belongs (a symbolic link, a file) set aside,
// reported to report and replaced by a directory, so that no planted
// entry stops a side from starting.
func PrepareDir(root, dir string, report func(error)) error {
	md, err := newMediumDir(root, dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(md.root, 0o700); err != nil {
		return fmt.Errorf("filemedium: %w", err)
	}
	d, err := md.open(0o700, true, report)
	if err != nil {
		return fmt.Errorf("filemedium: %w", err)
	}
	d.close()
	return nil
}

// CheckDir reports whether dir, beneath the medium root root ("" for the
// directory holding dir), is there now: nil if it is a directory reached
// without following a link beneath the root. Otherwise it returns why
// not, wrapping fs.ErrNotExist when something is missing (the root, dir
// or a directory between), or ErrBadEntry (an *EntryError) when an entry
// that is not a directory is where one belongs. It changes nothing on the
// medium: nothing is made, set aside or written (a readiness check).
func CheckDir(root, dir string) error {
	md, err := newMediumDir(root, dir)
	if err != nil {
		return err
	}
	d, err := md.open(dirMode, false, nil)
	var pe *fs.PathError
	switch {
	case err == nil:
		d.close()
		return nil
	case errors.Is(err, ErrBadEntry):
		return err
	case errors.As(err, &pe):
		// The entry that failed, which may be above dir.
		return fmt.Errorf("filemedium: %s: %w", pe.Path, pe.Err)
	}
	return fmt.Errorf("filemedium: %s: %w", md.dir, err)
}

// RandomName returns 16 random hex digits, as the medium's temporary and
// set-aside names end in.
func RandomName() string { return randomHex() }

// mdir is an open directory on the medium.
type mdir struct {
	fd   int
	path string // for messages and reports
}

// openRoot opens the trusted medium root. It may be a symbolic link: the
// operator configured it.
func openRoot(path string) (*mdir, error) {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return &mdir{fd: fd, path: path}, nil
}

func (d *mdir) close() {
	if d != nil && d.fd >= 0 {
		unix.Close(d.fd)
		d.fd = -1
	}
}

// join returns the path of name in d, for messages.
func (d *mdir) join(name string) string { return filepath.Join(d.path, name) }

func (d *mdir) pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: d.join(name), Err: err}
}

// validName reports whether name is one component: not empty, not "." or
// "..", without '/' or NUL.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// openat opens name in d without following a symbolic link, whatever the
// flags say.
func (d *mdir) openat(name string, flags int, mode uint32) (int, error) {
	if !validName(name) {
		return -1, d.pathErr("openat", name, syscall.EINVAL)
	}
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	if useOpenat2() {
		fd, err := openat2Beneath(d.fd, name, flags, mode)
		if err != nil {
			return -1, d.pathErr("openat2", name, err)
		}
		return fd, nil
	}
	fd, err := retryEINTR(func() (int, error) { return unix.Openat(d.fd, name, flags, mode) })
	if err != nil {
		return -1, d.pathErr("openat", name, err)
	}
	return fd, nil
}

// subdir opens the directory name in d. A symbolic link there fails
// (ELOOP), and anything else that is not a directory (ENOTDIR); a FIFO is
// not waited on.
func (d *mdir) subdir(name string) (*mdir, error) {
	fd, err := d.openat(name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	return &mdir{fd: fd, path: d.join(name)}, nil
}

// openFile opens name in d as an *os.File (for reading or writing).
func (d *mdir) openFile(name string, flags int, mode uint32) (*os.File, error) {
	fd, err := d.openat(name, flags, mode)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), d.join(name)), nil
}

// names lists d, sorted. It reads a fresh descriptor of d, so that each
// listing starts at the beginning.
func (d *mdir) names() ([]string, error) {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "openat", Path: d.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// lstat describes name in d without following a symbolic link.
func (d *mdir) lstat(name string) (entryStat, error) {
	if !validName(name) {
		return entryStat{}, d.pathErr("fstatat", name, syscall.EINVAL)
	}
	var st unix.Stat_t
	for {
		err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return entryStat{}, d.pathErr("fstatat", name, err)
		}
		return statOf(&st), nil
	}
}

// exists reports whether d holds an entry name (of any kind).
func (d *mdir) exists(name string) bool {
	_, err := d.lstat(name)
	return err == nil
}

// rename moves old in d to new in to; neither name is followed if it is
// a symbolic link (new is replaced if it is not a directory).
func (d *mdir) rename(old string, to *mdir, new string) error {
	if !validName(old) || !validName(new) {
		return d.pathErr("renameat", old, syscall.EINVAL)
	}
	for {
		err := unix.Renameat(d.fd, old, to.fd, new)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.LinkError{Op: "renameat", Old: d.join(old), New: to.join(new), Err: err}
		}
		return nil
	}
}

// unlink removes the entry name (not a directory) in d, never what a link
// points to.
func (d *mdir) unlink(name string) error {
	if !validName(name) {
		return d.pathErr("unlinkat", name, syscall.EINVAL)
	}
	for {
		err := unix.Unlinkat(d.fd, name, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return d.pathErr("unlinkat", name, err)
		}
		return nil
	}
}

func (d *mdir) mkdir(name string, mode uint32) error {
	if !validName(name) {
		return d.pathErr("mkdirat", name, syscall.EINVAL)
	}
	for {
		err := unix.Mkdirat(d.fd, name, mode)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return d.pathErr("mkdirat", name, err)
		}
		return nil
	}
}

// syncHook, when set (by tests), is told the path of every directory
// synced.
var syncHook func(dir string)

// sync makes d's entries durable.
func (d *mdir) sync() error {
	if syncHook != nil {
		syncHook(d.path)
	}
	for {
		err := unix.Fsync(d.fd)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "fsync", Path: d.path, Err: err}
		}
		return nil
	}
}

// ensureDir opens the directory name in d, making it (with mode) when it
// is missing and create is set. An entry there that is not a directory —
// a symbolic link (dangling, looping or not), a file, a FIFO — is never
// followed or deleted: it is set aside (renamed to name.bad-<16 hex
// digits> in d), reported, and a new directory is made in its place.
// With report nil nothing is set aside: the *EntryError is returned.
func (d *mdir) ensureDir(name string, mode uint32, create bool, report func(error)) (*mdir, error) {
	for range 4 {
		sub, err := d.subdir(name)
		if err == nil {
			return sub, nil
		}
		switch {
		case errors.Is(err, syscall.ENOENT):
			if !create {
				return nil, err
			}
			if err := d.mkdir(name, mode); err != nil && !errors.Is(err, syscall.EEXIST) {
				return nil, fullErr(err)
			}
			if err := d.sync(); err != nil {
				return nil, err
			}
		case errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENOTDIR):
			st, serr := d.lstat(name)
			if serr != nil {
				continue // gone meanwhile: look again
			}
			if st.isDir() {
				continue // replaced by a directory meanwhile
			}
			if report == nil {
				return nil, &EntryError{Path: d.join(name), Found: st.kind(), Want: "a directory"}
			}
			aside, aerr := d.setAside(name)
			report(&EntryError{Path: d.join(name), Found: st.kind(), Want: "a directory", SetAside: aside, Err: aerr})
			if aerr != nil {
				return nil, aerr
			}
			create = true // make the directory that belongs there
		default:
			return nil, err
		}
	}
	return nil, d.pathErr("open", name, errors.New("the entry keeps changing"))
}

// setAside renames the entry name in d to name.bad-<16 hex digits> and
// returns that name.
func (d *mdir) setAside(name string) (string, error) {
	aside := name + SetAsideMark + randomHex()
	if err := d.rename(name, d, aside); err != nil {
		return "", err
	}
	if err := d.sync(); err != nil {
		return aside, err
	}
	return aside, nil
}

// randomHex returns 16 random lowercase hex digits.
func randomHex() string {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:]) // never fails (crypto/rand)
	return hex.EncodeToString(rnd[:])
}

// entryStat is what the transport needs of an entry's metadata.
type entryStat struct {
	dev, ino uint64
	mode     uint32 // S_IFMT bits and permissions
	uid      uint32
	nlink    uint64
	size     int64
	mtime    int64 // nanoseconds since the Unix epoch
}

func (s entryStat) typ() uint32     { return s.mode & unix.S_IFMT }
func (s entryStat) isDir() bool     { return s.typ() == unix.S_IFDIR }
func (s entryStat) isRegular() bool { return s.typ() == unix.S_IFREG }

// same reports whether a and b describe the same file, unchanged.
func (s entryStat) same(b entryStat) bool {
	return s.dev == b.dev && s.ino == b.ino && s.size == b.size && s.mtime == b.mtime
}

// kind names the entry's type for messages.
func (s entryStat) kind() string {
	switch s.typ() {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symbolic link"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	}
	return fmt.Sprintf("file of type %#o", s.typ())
}

func retryEINTR(f func() (int, error)) (int, error) {
	for {
		fd, err := f()
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// mediumDir is a directory on the medium: the trusted root and the path
// beneath it, opened afresh for each operation.
type mediumDir struct {
	root string   // trusted, may be a link
	rel  []string // the components beneath root, each opened without following a link
	dir  string   // root joined with rel
}

// newMediumDir returns dir beneath root; root "" means dir's parent.
func newMediumDir(root, dir string) (mediumDir, error) {
	dir = filepath.Clean(dir)
	if root == "" {
		root = filepath.Dir(dir)
	}
	root = filepath.Clean(root)
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return mediumDir{}, fmt.Errorf("filemedium: %s is not beneath the medium root %s", dir, root)
	}
	m := mediumDir{root: root, dir: dir}
	if rel != "." {
		m.rel = strings.Split(rel, string(filepath.Separator))
	}
	return m, nil
}

// open opens the directory, creating the missing components (mode) when
// create is set. Bad entries on the way are set aside and reported
// (ensureDir); with report nil they are the error.
func (m mediumDir) open(mode uint32, create bool, report func(error)) (*mdir, error) {
	cur, err := openRoot(m.root)
	if err != nil {
		return nil, err
	}
	for _, c := range m.rel {
		next, err := cur.ensureDir(c, mode, create, report)
		cur.close()
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}
