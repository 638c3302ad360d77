//go:build !linux

package hsm

// lockedMem on platforms other than Linux is ordinary memory that is wiped
// on free; it is not locked. nanokms's cold host runs Linux.
type lockedMem struct {
	b []byte
}

const memLocked = false

func newLockedMem(n int) (*lockedMem, error) {
	return &lockedMem{b: make([]byte, n)}, nil
}

func (l *lockedMem) free() {
	if l == nil || l.b == nil {
		return
	}
	clear(l.b)
	l.b = nil
}
