// Package backoff paces retries: a wait that starts at a minimum, doubles
// after each failure and stops growing at a maximum (capped exponential
// backoff, without jitter: the callers retry against one local resource,
// not a crowd of clients against one server).
//
// It never sleeps by itself and holds no goroutine: callers wait with
// Sleep, or with their own timers. It builds with CGO_ENABLED=0 and is
// shared by the hot and the cold side.
package backoff

import (
	"context"
	"time"
)

// Capped is a capped exponential backoff: Next returns Min, then twice the
// previous wait, up to Max. The zero value is not usable: set Min and Max
// (Max below Min is taken as Min). It is not safe for concurrent use.
type Capped struct {
	Min, Max time.Duration
	wait     time.Duration
}

// Next returns how long to wait before the next attempt.
func (b *Capped) Next() time.Duration {
	b.wait = min(max(2*b.wait, b.Min), max(b.Min, b.Max))
	return b.wait
}

// Reset starts the pacing over, after a success.
func (b *Capped) Reset() { b.wait = 0 }

// Sleep waits d; it returns false if ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
