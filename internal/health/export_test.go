package health

import (
	"runtime"
	"time"
)

// WaitWaiters waits until n callers of Evaluate wait on the evaluation in
// progress.
func WaitWaiters(m *Monitor, n int) {
	deadline := time.Now().Add(30 * time.Second)
	for m.waiters.Load() < int64(n) && time.Now().Before(deadline) {
		runtime.Gosched()
	}
}
