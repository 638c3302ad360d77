//go:build unix && !linux

package filemedium

// Without inotify (not Linux) a reader polls only.

// inotifyUnavailable is kept for the tests' sake; it changes nothing here.
var inotifyUnavailable bool

type dirWatch struct{ wake chan struct{} }

func newDirWatch(func(error)) *dirWatch { return nil }

func (w *dirWatch) follow(*mdir) {}
func (w *dirWatch) active() bool { return false }
func (w *dirWatch) close()       {}

func (w *dirWatch) watched() (dev, ino uint64, ok bool) { return 0, 0, false }
