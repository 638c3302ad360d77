package signer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"
)

// ErrStoreFull is wrapped by the error of a Store write, and so of Sign
// and Adopt, that failed because the state file's file system has no
// space left (ENOSPC) or its owner's quota is used up (EDQUOT). The write
// was rolled back: nothing was recorded, and nothing signed was released.
// StatusOf maps it to ResourceExhausted; the store reports itself not
// writable (Store.Writable) until a write or a space probe succeeds.
var ErrStoreFull = errors.New("signer: the state store is full")

// noSpace reports whether err says the file system has no room.
func noSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) }

// spaceState is whether the store's writes fail for want of space. The
// zero value is writable.
type spaceState struct{ downState }

// newSpaceState returns the writable state of the state file at path.
func newSpaceState(path string) spaceState {
	return spaceState{downState{
		downMsg: "state store full: nothing is decided until space is freed; the health service reports NOT_SERVING",
		upMsg:   "state store writable again",
		attrs:   []any{"state", path},
	}}
}

// note records the outcome of a write and returns its error, wrapped with
// ErrStoreFull when it failed for want of space. Only a write that
// succeeded says the store is writable: an error of another kind (a
// refusal before writing, a stale decision) says nothing about space.
func (st *spaceState) note(err error) error {
	switch {
	case err == nil:
		if st.isDown.Load() {
			st.set(false, nil)
		}
	case noSpace(err):
		st.set(true, err)
		return fmt.Errorf("%w: %w", ErrStoreFull, err)
	}
	return err
}

// Writable reports whether the store's writes succeed: false from a write
// that failed for want of space (ErrStoreFull) until a write or a space
// probe succeeds. changed is closed when that may have changed.
func (s *Store) Writable() (ok bool, changed <-chan struct{}) {
	return s.space.get()
}

// probeBytes is how much a space probe writes: room for a few hundred
// decisions (each adds about 2 KB to the state file).
const probeBytes = 1 << 20

// ProbeSpace checks that the state file's file system takes writes
// again: it writes probeBytes to a file beside the state file (its name
// with ".space-probe" appended, created and removed here), syncs it and
// removes it. On success the store is writable again. It is what the
// signer runs while the store is full, since no other write may come.
func (s *Store) ProbeSpace() error {
	path := s.path + ".space-probe"
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return s.space.note(fmt.Errorf("signer: probing for space: %w", err))
	}
	buf := make([]byte, 64<<10)
	for n := 0; n < probeBytes && err == nil; n += len(buf) {
		_, err = f.Write(buf)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(path); err == nil {
		err = rerr
	}
	if err != nil {
		return s.space.note(fmt.Errorf("signer: probing for space: %w", err))
	}
	s.space.note(nil)
	return nil
}

// defaultSpaceProbe is how often a full store is probed by default.
const defaultSpaceProbe = 5 * time.Second

// watchSpace logs the store's changes between full and writable, and
// while it is full probes for space every interval, until ctx ends. The
// relay resends what was not decided, and each resent request tries a
// write too; the probe makes the store (and the health service) writable
// again even when nothing is resent.
func (s *Store) watchSpace(ctx context.Context, interval time.Duration, log *slog.Logger) {
	s.space.watch(ctx, interval, log, func() {
		if err := s.ProbeSpace(); err != nil && !errors.Is(err, ErrStoreFull) {
			log.Warn("probing the state store for space", "error", err.Error())
		}
	})
}
