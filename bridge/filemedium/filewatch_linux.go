//go:build linux

package filemedium

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// A reader's inotify watch (Linux). The medium is written by the other
// side, so an event is only a hint that the directory is worth listing
// again: its name decides nothing but whether to wake the reader, and
// every file is listed, opened and checked as without inotify. The watch
// is put on the directory the reader itself opened beneath the medium
// root (through /proc/self/fd, so no path is resolved again), and moved
// to the new directory when the listing finds another one there (the
// stick was pulled and put back, or the directory replaced). When inotify
// cannot be had, or the watch cannot be placed, the reader polls only.

// watchMask is what the watch listens for: a name appearing (a rename
// into place, a file created or written and closed) and the directory
// itself going away. IN_IGNORED, IN_UNMOUNT and IN_Q_OVERFLOW come
// anyway.
const watchMask = unix.IN_MOVED_TO | unix.IN_CREATE | unix.IN_CLOSE_WRITE |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// inotifyUnavailable, when set (by tests), makes newDirWatch fail as on a
// system without inotify.
var inotifyUnavailable bool

// dirWatch is one inotify instance watching one directory.
type dirWatch struct {
	f      *os.File      // the inotify instance (non-blocking, read by loop)
	wake   chan struct{} // receives a hint (capacity 1: hints merge)
	report func(error)
	done   chan struct{} // closed when loop has returned

	mu       sync.Mutex
	wd       int    // the watch descriptor, -1 when none
	dev, ino uint64 // the watched directory
	stale    bool   // the watched directory went away: watch again
	failed   bool   // the last attempt to watch failed (reported once)
}

// newDirWatch returns an inotify instance with no watch yet (follow
// places it), or nil when inotify is unavailable, which is reported.
func newDirWatch(report func(error)) *dirWatch {
	if inotifyUnavailable {
		report(fmt.Errorf("filemedium: inotify is unavailable; polling only"))
		return nil
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		report(fmt.Errorf("filemedium: inotify is unavailable (%w); polling only", err))
		return nil
	}
	w := &dirWatch{f: os.NewFile(uintptr(fd), "inotify"), wake: make(chan struct{}, 1), report: report,
		done: make(chan struct{}), wd: -1}
	go w.loop()
	return w
}

// follow keeps the watch on d, the directory the reader just opened: it
// places it when there is none, the last one went away or d is another
// directory than the one watched.
func (w *dirWatch) follow(d *mdir) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return
	}
	dev, ino := uint64(st.Dev), uint64(st.Ino)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wd >= 0 && !w.stale && w.dev == dev && w.ino == ino {
		return
	}
	fd := int(w.f.Fd())
	if w.wd >= 0 {
		_, _ = unix.InotifyRmWatch(fd, uint32(w.wd)) // gone already when the directory went away
		w.wd = -1
	}
	wd, err := unix.InotifyAddWatch(fd, "/proc/self/fd/"+strconv.Itoa(d.fd), watchMask)
	if err != nil {
		if !w.failed {
			w.report(fmt.Errorf("filemedium: watching %s with inotify: %w; polling it", d.path, err))
		}
		w.failed = true
		return
	}
	w.wd, w.dev, w.ino, w.stale, w.failed = wd, dev, ino, false, false
}

// active reports whether the directory is watched now.
func (w *dirWatch) active() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.wd >= 0 && !w.stale
}

// watched returns the directory watched now (ok false: none).
func (w *dirWatch) watched() (dev, ino uint64, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dev, w.ino, w.wd >= 0 && !w.stale
}

func (w *dirWatch) close() {
	w.f.Close() // ends loop's read
	<-w.done
}

func (w *dirWatch) hint() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// loop reads events until the instance is closed, and turns them into
// hints.
func (w *dirWatch) loop() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				w.mu.Lock()
				w.stale = true
				w.mu.Unlock()
				w.report(fmt.Errorf("filemedium: reading inotify events: %w; polling", err))
			}
			return
		}
		if w.handle(buf[:n]) {
			w.hint()
		}
	}
}

// handle reads the events in b and reports whether the reader should
// list its directory again.
func (w *dirWatch) handle(b []byte) bool {
	wake := false
	for len(b) >= unix.SizeofInotifyEvent {
		wd := int32(binary.NativeEndian.Uint32(b[0:]))
		mask := binary.NativeEndian.Uint32(b[4:])
		nameLen := int(binary.NativeEndian.Uint32(b[12:]))
		if nameLen > len(b)-unix.SizeofInotifyEvent {
			break
		}
		name := strings.TrimRight(string(b[unix.SizeofInotifyEvent:unix.SizeofInotifyEvent+nameLen]), "\x00")
		b = b[unix.SizeofInotifyEvent+nameLen:]
		switch {
		case mask&unix.IN_Q_OVERFLOW != 0:
			wake = true // events were lost: list
		case mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_UNMOUNT) != 0:
			w.mu.Lock()
			if int(wd) == w.wd {
				w.stale = true
			}
			w.mu.Unlock()
			wake = true // list, and watch what is there now
		case strings.HasSuffix(name, FileSuffix):
			wake = true // a name the reader reads (a temporary file's is not)
		}
	}
	return wake
}
