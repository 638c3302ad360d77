package signer

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// downState is whether a store's writes are failing for a cause that lasts
// (its file system full; its database unreachable) and that only a write
// that succeeds, or a probe, can clear. The zero value is up. Each store
// gives it the log lines of its own cause (downMsg, upMsg) and the
// attributes naming the store (attrs).
type downState struct {
	isDown     atomic.Bool // down, read without the lock on the write path
	mu         sync.Mutex
	down       bool
	changed    chan struct{} // closed and replaced when down changes
	log        *slog.Logger  // told of each change, while watch runs
	pinnedDown bool          // down for a cause only unpin clears (pin)
	downMsg    string
	upMsg      string
	attrs      []any
}

// set records whether the store is down (cause: why, when it is), logs a
// change and wakes whoever waits on it. While pinned it stays down.
func (o *downState) set(down bool, cause error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.setLocked(down, o.downMsg, cause)
}

// pin marks the store down for a cause that no write clears, only unpin
// (a PostgreSQL database found retired), logging msg when that is a
// change.
func (o *downState) pin(msg string, cause error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pinnedDown = true
	o.setLocked(true, msg, cause)
}

// unpin lets the next successful write or probe say the store is up.
func (o *downState) unpin() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pinnedDown = false
}

// pinned reports whether pin holds the store down.
func (o *downState) pinned() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pinnedDown
}

func (o *downState) setLocked(down bool, downMsg string, cause error) {
	if o.down == down || (o.pinnedDown && !down) {
		return
	}
	o.down = down
	o.isDown.Store(down)
	// Logged before anyone waiting on changed learns of it.
	switch {
	case o.log == nil:
	case down:
		o.log.Error(downMsg, append(o.attrs[:len(o.attrs):len(o.attrs)], "error", cause.Error())...)
	default:
		o.log.Info(o.upMsg, o.attrs...)
	}
	if o.changed != nil {
		close(o.changed)
		o.changed = nil
	}
}

// get reports whether the store is up; changed is closed when that may
// have changed.
func (o *downState) get() (up bool, changed <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.changed == nil {
		o.changed = make(chan struct{})
	}
	return !o.down, o.changed
}

// watch logs each change to log and, while the store is down, calls probe
// every interval, until ctx ends. Outside watch, changes are not logged.
func (o *downState) watch(ctx context.Context, interval time.Duration, log *slog.Logger, probe func()) {
	o.mu.Lock()
	o.log = log
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.log = nil
		o.mu.Unlock()
	}()
	for {
		up, changed := o.get()
		if up {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			continue
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-changed:
			t.Stop()
		case <-t.C:
			probe()
		}
	}
}
