package gateway

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Writing the state file: every write is a transaction committed with
// fsync before its caller goes on, and the writes that arrive while a
// commit is under way are committed together in the next one
// (leader/follower group commit, as the signer's store does; a lone
// write on a quiet store is committed at once, and on a busy bbolt store
// a commit lingers briefly for more: commitLinger). Status changes are written
// in batches (apply): the send loop's pass, the answers read together,
// each one transaction.

// maxGroup bounds how many writes one commit carries.
const maxGroup = 512

// commitLinger is how long, at most, a commit of the bbolt store waits
// for more writes to join it when the commit before it carried several
// (the store is busy): it waits until it carries as many as that one did,
// or commitLinger has passed. Fewer, larger commits, each with its two
// fdatasyncs; each durable write acknowledged at most this much later. A
// write after a commit of one write (a quiet store) is committed at once.
// The PostgreSQL store does not linger: its commits take a round trip
// each, during which the next group gathers anyway (measured: lingering
// there cost throughput, docs/BENCHMARKS.md).
const commitLinger = time.Millisecond

// commitReq is one write waiting for the next group commit. fn runs in
// the group's transaction (Tx: a *bolt.Tx, or the PostgreSQL store's
// *pgTx); an error it returns aborts the transaction (each write of the
// group is then run again on its own), so a write that finds nothing to
// do returns nil and says so through its own results. fn may run twice:
// it must set its results afresh each time.
type commitReq[Tx any] struct {
	what string // for tests (commitHook): what the write is
	n    int    // for tests: how many requests it changes
	fn   func(tx Tx) error
	done chan error
}

// storeStats counts the store's commits.
type storeStats struct {
	commits atomic.Int64 // transactions committed
	writes  atomic.Int64 // writes committed (several share a commit)
}

// errStoreClosed is returned by a write after close.
var errStoreClosed = errors.New("gateway: the state store is closed")

// Test hooks (nil in production).
var (
	// commitHook is told each group before its transaction runs: what
	// each of its writes is and how many requests it changes.
	commitHook func(group []writeInfo)
	// writeQueued is told when a write has been queued for a commit.
	writeQueued func()
	// lingering is told when a commit begins to wait for more writes.
	lingering func()
)

// writeInfo describes one write of a group (commitHook).
type writeInfo struct {
	what string
	n    int
}

// groupCommit is a store's committer: it runs the writes queued in
// groups, each group one transaction (commit), until stop. Both stores
// use it.
type groupCommit[Tx any] struct {
	// commit runs fn, which carries n writes, in one transaction and
	// commits it; it returns fn's error as it is, or the commit's.
	commit func(fn func(tx Tx) error, n int) error
	// alone reports whether, after a group's transaction failed with
	// err, each of its writes is run again in a transaction of its own
	// (not when the store is unreachable: each would fail the same way).
	alone func(err error) bool

	commits chan *commitReq[Tx] // to the committer
	stopped chan struct{}       // closed when the committer has returned
	cmu     sync.RWMutex        // held for reading while sending on commits
	closed  bool
	stats   storeStats
	linger  atomic.Int64 // how long a busy commit waits for more writes, in nanoseconds (0: not at all)
}

// start starts the committer, busy commits lingering up to linger.
func (c *groupCommit[Tx]) start(linger time.Duration) {
	c.commits, c.stopped = make(chan *commitReq[Tx], maxGroup), make(chan struct{})
	c.linger.Store(int64(linger))
	go c.run()
}

// stop stops the committer once the writes queued are committed. It must
// be called once.
func (c *groupCommit[Tx]) stop() {
	c.cmu.Lock()
	c.closed = true
	close(c.commits)
	c.cmu.Unlock()
	<-c.stopped
}

// write runs fn in the next group commit and returns once the commit is
// durable. A failed commit keeps nothing of the transaction (the store
// says what its errors wrap). An error of fn is returned as it is, and
// nothing of the transaction is written.
func (c *groupCommit[Tx]) write(what string, n int, fn func(tx Tx) error) error {
	req := &commitReq[Tx]{what: what, n: n, fn: fn, done: make(chan error, 1)}
	c.cmu.RLock()
	if c.closed {
		c.cmu.RUnlock()
		return errStoreClosed
	}
	c.commits <- req
	c.cmu.RUnlock()
	if writeQueued != nil {
		writeQueued()
	}
	return <-req.done
}

// run commits queued writes in groups until stop.
func (c *groupCommit[Tx]) run() {
	defer close(c.stopped)
	last := 0 // writes the last group carried
	for req := range c.commits {
		group := c.drain([]*commitReq[Tx]{req})
		if want := min(last, maxGroup); last > 1 && len(group) < want && c.linger.Load() > 0 {
			group = c.gather(group, want)
		}
		last = len(group)
		c.commitGroup(group)
	}
}

// drain adds to group the writes queued now, up to maxGroup.
func (c *groupCommit[Tx]) drain(group []*commitReq[Tx]) []*commitReq[Tx] {
	for len(group) < maxGroup {
		select {
		case r, ok := <-c.commits:
			if !ok {
				return group
			}
			group = append(group, r)
		default:
			return group
		}
	}
	return group
}

// gather adds to group the writes that arrive within the linger, until
// it has want, or until stop.
func (c *groupCommit[Tx]) gather(group []*commitReq[Tx], want int) []*commitReq[Tx] {
	t := time.NewTimer(time.Duration(c.linger.Load()))
	defer t.Stop()
	if lingering != nil {
		lingering()
	}
	for len(group) < want {
		select {
		case r, ok := <-c.commits:
			if !ok {
				return group
			}
			group = append(group, r)
		case <-t.C:
			return group
		}
	}
	return group
}

// commitGroup runs a group's writes in one transaction. If one of them
// fails, or the commit does, each write is run again in a transaction of
// its own (unless alone says not), so that one write's failure is its
// own.
func (c *groupCommit[Tx]) commitGroup(group []*commitReq[Tx]) {
	if commitHook != nil {
		infos := make([]writeInfo, len(group))
		for i, r := range group {
			infos[i] = writeInfo{r.what, r.n}
		}
		commitHook(infos)
	}
	err := c.counted(func(tx Tx) error {
		for _, r := range group {
			if err := r.fn(tx); err != nil {
				return err
			}
		}
		return nil
	}, len(group))
	if err != nil && len(group) > 1 && (c.alone == nil || c.alone(err)) {
		for _, r := range group {
			r.done <- c.counted(r.fn, 1)
		}
		return
	}
	for _, r := range group {
		r.done <- err
	}
}

// counted is commit, counting the commits that succeed.
func (c *groupCommit[Tx]) counted(fn func(tx Tx) error, n int) error {
	err := c.commit(fn, n)
	if err == nil {
		c.stats.commits.Add(1)
		c.stats.writes.Add(int64(n))
	}
	return err
}

// commit runs fn, which carries n writes, in one transaction and commits
// it: the error of fn as it is, or the commit's (wrapping ErrStoreFull
// for lack of space), told to onCommit.
func (s *gatewayStore) commit(fn func(tx *bolt.Tx) error, n int) error {
	var ferr error
	err := s.db.Update(func(tx *bolt.Tx) error {
		ferr = fn(tx)
		return ferr
	})
	if ferr != nil {
		return ferr
	}
	if isNoSpace(err) {
		err = fmt.Errorf("gateway: %w: %w", ErrStoreFull, err)
	} else if err != nil {
		err = fmt.Errorf("gateway: writing the gateway's state file: %w", err)
	}
	if s.onCommit != nil {
		s.onCommit(err)
	}
	return err
}

// Probing a state file whose writes failed.
const (
	probeSize = 4 << 10 // about a request's record
	probeRoom = 1 << 20 // the free space a file system that was full must have again
)

// probe writes probeSize bytes to find out whether the file takes writes
// again. After a failure for lack of space it first asks the file system
// for probeRoom bytes free: bbolt reuses the pages it freed, so a small
// commit can succeed while the file cannot grow.
func (s *gatewayStore) probe(full bool) error {
	if full {
		var st syscall.Statfs_t
		if err := syscall.Statfs(filepath.Dir(s.db.Path()), &st); err != nil {
			return err
		}
		if free := uint64(st.Bavail) * uint64(st.Bsize); free < probeRoom {
			return fmt.Errorf("gateway: %w: %d bytes free", ErrStoreFull, free)
		}
	}
	return s.gc.write("probe", 0, func(tx *bolt.Tx) error {
		return tx.Bucket(gwBucketProbe).Put([]byte("space"), make([]byte, probeSize))
	})
}

// errExists is returned by insert when the id is taken.
var errExists = errors.New("request id exists")

// insert stores a new record, in the next group commit; it fails with
// errExists if the id is taken.
func (s *gatewayStore) insert(e *entry) error {
	data, err := encodeRecord(e)
	if err != nil {
		return err
	}
	id := e.view.GetRequestId()
	var exists bool
	err = s.gc.write("insert", 1, func(tx *bolt.Tx) error {
		exists = false
		b := tx.Bucket(gwBucketRequests)
		if b.Get([]byte(id)) != nil {
			exists = true
			return nil
		}
		if err := crashPoint("insert", id); err != nil {
			return err
		}
		if err := b.Put([]byte(id), data); err != nil {
			return err
		}
		return s.mark(tx, id, e)
	})
	if err == nil && exists {
		return errExists
	}
	return err
}

// change is one request's part of a batch (apply): f edits the request's
// record; if it returns an error the record stays as it was and that
// error is the change's result. f sees the record as the changes before
// it in the batch left it, and may run more than once (a group commit
// that fails is run again), so it must decide afresh each time.
type change struct {
	id string
	f  func(e *entry) error

	// Set by apply: the record as stored (nil when f refused or there is
	// no such request), and f's error (errNoRecord for a missing request).
	out *entry
	err error
}

// errNoRecord is a change's result when its request is unknown.
var errNoRecord = errors.New("gateway: no such request")

// errNoChange is returned by a change's f that leaves the record as it is.
var errNoChange = errors.New("gateway: nothing to change")

// run applies the change to the stored record data, for either store:
// the record changed and its encoding, or nil and c.err set when f
// refused or the status would go backwards. An error is the record's
// (undecodable): the transaction fails.
func (c *change) run(data []byte) (*entry, []byte, error) {
	e, err := decodeRecord(data)
	if err != nil {
		return nil, nil, err
	}
	from := e.view.GetStatus()
	if err := c.f(e); err != nil {
		c.err = err
		return nil, nil, nil
	}
	if err := checkStep(c.id, from, e.view.GetStatus()); err != nil {
		c.err = err
		return nil, nil, nil
	}
	enc, err := encodeRecord(e)
	if err != nil {
		return nil, nil, err
	}
	return e, enc, nil
}

// apply runs the changes of batch, in order, in one transaction of the
// next group commit, and takes closing (request ids) off the open list in
// the same transaction. It returns an error only when the transaction
// failed: then nothing of it is stored, and no change's out is set.
func (s *gatewayStore) apply(what string, batch []*change, closing []string) error {
	return s.gc.write(what, len(batch), func(tx *bolt.Tx) error { return s.applyIn(tx, batch, closing) })
}

func (s *gatewayStore) applyIn(tx *bolt.Tx, batch []*change, closing []string) error {
	b := tx.Bucket(gwBucketRequests)
	for _, c := range batch {
		c.out, c.err = nil, nil
		data := b.Get([]byte(c.id))
		if data == nil {
			c.err = errNoRecord
			continue
		}
		e, enc, err := c.run(data)
		if err != nil {
			return err
		}
		if e == nil {
			continue
		}
		if err := b.Put([]byte(c.id), enc); err != nil {
			return err
		}
		if err := s.mark(tx, c.id, e); err != nil {
			return err
		}
		c.out = e
	}
	open := tx.Bucket(gwBucketOpen)
	for _, id := range closing {
		if err := open.Delete([]byte(id)); err != nil {
			return err
		}
	}
	return nil
}

// crashHook, when set (by tests), is called at each crash point of the
// gateway with the request ids concerned; an error it returns is returned
// as if the process had died there. The points:
//
//	"insert"               a new request is about to be stored (inside its transaction)
//	"send:frames-written"  the pass's request frames are durable, their status not yet recorded
//	"receive:committed"    the answers read together are recorded, not yet settled on the medium
var crashHook func(point string, ids []string) error

func crashPoint(point string, ids ...string) error {
	if crashHook == nil {
		return nil
	}
	return crashHook(point, ids)
}
