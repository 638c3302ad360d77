//go:build linux

package hsm

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// lockedMem is memory for secrets: an anonymous private mapping, locked
// into RAM with mlock (never swapped) and excluded from core dumps with
// MADV_DONTDUMP. free wipes it before unlocking and unmapping it.
type lockedMem struct {
	b    []byte // the part handed out
	full []byte // the whole mapping, for munmap
}

const memLocked = true

func newLockedMem(n int) (*lockedMem, error) {
	page := os.Getpagesize()
	size := (n + page - 1) / page * page
	if size == 0 {
		size = page
	}
	m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("hsm: mapping %d bytes for secrets: %w", size, err)
	}
	if err := unix.Mlock(m); err != nil {
		_ = unix.Munmap(m)
		return nil, fmt.Errorf("hsm: locking %d bytes of memory for secrets (raise RLIMIT_MEMLOCK, ulimit -l): %w", size, err)
	}
	// Best effort, as older kernels lack them: keep the page out of core
	// dumps, and give a forked child zeros instead of a copy.
	_ = unix.Madvise(m, unix.MADV_DONTDUMP)
	_ = unix.Madvise(m, unix.MADV_WIPEONFORK)
	return &lockedMem{b: m[:n:n], full: m}, nil
}

// free wipes, unlocks and unmaps the memory. It is safe to call twice.
func (l *lockedMem) free() {
	if l == nil || l.full == nil {
		return
	}
	clear(l.full)
	_ = unix.Munlock(l.full)
	_ = unix.Munmap(l.full)
	l.full, l.b = nil, nil
}
