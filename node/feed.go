package node

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/nanokms/nanokms/nano"
)

// FeedOptions configure a ConfirmationFeed. The zero value gives the
// defaults.
type FeedOptions struct {
	// DedupeSize is how many confirmed hashes are remembered to drop
	// repeats; 0 means 16384.
	DedupeSize int
	// Buffer is the capacity of the Confirmations channel; 0 means 256.
	// When it is full, confirmations are dropped (and counted); waiters
	// are woken all the same.
	Buffer int
}

// FeedStats counts what a ConfirmationFeed was given.
type FeedStats struct {
	Delivered  uint64 // confirmations seen for the first time
	Duplicates uint64 // repeats dropped (from the same path or another)
	Dropped    uint64 // first-time confirmations dropped because the channel was full
}

// ConfirmationFeed merges the confirmations the node announces on its
// notification paths — the WebSocket (WSOptions.Feed) and the HTTP
// callback (CallbackHandler) — into one stream: each block hash is
// delivered once, whichever path brings it first, and whoever waits for
// the hash (WaitConfirmed, the Confirmer) is woken. It is the one
// idempotent step both paths go through; it checks nothing itself (each
// path checks what it delivers). It is safe for concurrent use.
type ConfirmationFeed struct {
	mu      sync.Mutex
	seen    *hashLRU
	waiters map[nano.Hash][]chan struct{}
	out     chan Confirmation
	closed  bool

	delivered, duplicates, dropped atomic.Uint64
}

// NewConfirmationFeed returns an empty feed.
func NewConfirmationFeed(opts FeedOptions) *ConfirmationFeed {
	if opts.DedupeSize <= 0 {
		opts.DedupeSize = 16384
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 256
	}
	return &ConfirmationFeed{
		seen:    newHashLRU(opts.DedupeSize),
		waiters: make(map[nano.Hash][]chan struct{}),
		out:     make(chan Confirmation, opts.Buffer),
	}
}

// Deliver records the confirmation c. It returns false and does nothing
// else when c.Hash was delivered before (as long as the dedupe memory
// holds it) or the feed is closed. Otherwise it wakes every
// WaitConfirmed(c.Hash), puts c on Confirmations (or drops it, counted,
// when the channel is full) and returns true. It never blocks.
func (f *ConfirmationFeed) Deliver(c Confirmation) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	if f.seen.add(c.Hash) {
		f.duplicates.Add(1)
		return false
	}
	f.delivered.Add(1)
	for _, ch := range f.waiters[c.Hash] {
		close(ch)
	}
	delete(f.waiters, c.Hash)
	select {
	case f.out <- c:
	default:
		f.dropped.Add(1)
	}
	return true
}

// Confirmations returns the channel confirmations are delivered on, each
// hash once. It is closed by Close.
func (f *ConfirmationFeed) Confirmations() <-chan Confirmation { return f.out }

// WaitConfirmed returns a channel closed when a confirmation of h is
// delivered (at once if one already was), and a function to call when no
// longer waiting.
func (f *ConfirmationFeed) WaitConfirmed(h nano.Hash) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen.contains(h) {
		close(ch)
		return ch, func() {}
	}
	f.waiters[h] = append(f.waiters[h], ch)
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		ws := f.waiters[h]
		if i := slices.Index(ws, ch); i >= 0 {
			ws = slices.Delete(ws, i, i+1)
		}
		if len(ws) == 0 {
			delete(f.waiters, h)
		} else {
			f.waiters[h] = ws
		}
	}
}

// Stats returns the counters.
func (f *ConfirmationFeed) Stats() FeedStats {
	return FeedStats{Delivered: f.delivered.Load(), Duplicates: f.duplicates.Load(), Dropped: f.dropped.Load()}
}

// Close closes the Confirmations channel; later deliveries are ignored.
// Waiters are not woken. It is idempotent.
func (f *ConfirmationFeed) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.out)
	}
}
