//go:build unix && !linux

package filemedium

import "golang.org/x/sys/unix"

// probeOpenat2: openat2(2) is Linux's; elsewhere every open beneath the
// medium root uses O_NOFOLLOW.
func probeOpenat2() bool { return false }

func openat2Beneath(int, string, int, uint32) (int, error) { return -1, unix.ENOSYS }

func statOf(st *unix.Stat_t) entryStat {
	return entryStat{
		dev: uint64(st.Dev), ino: uint64(st.Ino), mode: uint32(st.Mode), uid: st.Uid, nlink: uint64(st.Nlink), size: st.Size,
		mtime: st.Mtim.Nano(),
	}
}
