//go:build linux

package filemedium

import (
	"sync"

	"golang.org/x/sys/unix"
)

// probeOpenat2 reports whether the kernel has openat2(2) (Linux 5.6) and
// lets this process use it (a seccomp filter may refuse it): it opens "/"
// beneath itself once, and remembers the answer.
var probeOpenat2 = sync.OnceValue(func() bool {
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, ".", &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return false // ENOSYS before Linux 5.6; EPERM under some seccomp filters
	}
	unix.Close(fd)
	return true
})

// openat2Beneath opens name (one component) relative to dirfd with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS: it cannot leave dirfd, and fails
// with ELOOP on a symbolic link. EAGAIN (a rename raced the resolution)
// and EINTR are retried a bounded number of times.
func openat2Beneath(dirfd int, name string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	if flags&unix.O_CREAT != 0 {
		how.Mode = uint64(mode)
	}
	var err error
	for range 16 {
		var fd int
		fd, err = unix.Openat2(dirfd, name, &how)
		if err == nil {
			return fd, nil
		}
		if err != unix.EAGAIN && err != unix.EINTR {
			break
		}
	}
	return -1, err
}

func statOf(st *unix.Stat_t) entryStat {
	return entryStat{
		dev: st.Dev, ino: st.Ino, mode: st.Mode, uid: st.Uid, nlink: uint64(st.Nlink), size: st.Size,
		mtime: st.Mtim.Nano(),
	}
}
