package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"

	"github.com/nanokms/nanokms/gateway/leader"
	"github.com/nanokms/nanokms/internal/health"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Several gateways on one PostgreSQL database. Each serves the whole
// Custody API at all times; one at a time drives the medium (the send and
// receive loops, the publish pipelines), elected by Options.Elector. A
// term's driver starts with its in-memory state fresh (the requests being
// sent, the pipelines in flight, the open list's closings), writes its
// epoch into every request frame (BridgeRequest.leader_epoch: the relay
// drops a lower epoch's frames), fences every transaction it commits
// (pgfence.go: a deposed leader's writes fail with leader.ErrDeposed and
// store nothing, and the driver stops at once), claims the publish list
// with FOR UPDATE SKIP LOCKED, and has finished every goroutine of its
// term before the next can begin. A listener (pglisten.go) tells this
// gateway's watchers what the others changed, wakes the send loop for a
// submission made on another gateway, and passes on their alerts.

// runElected serves until ctx is done: it campaigns for the medium and
// drives it while elected, probes the store and listens to the other
// gateways throughout. It returns nil when ctx ends, or the Elector's
// error (the database's schema newer than this binary's).
func (g *Gateway) runElected(ctx context.Context) error {
	ps, ok := g.store.(*pgStore)
	if !ok {
		return errors.New("gateway: several gateways (an Elector) need the state on PostgreSQL")
	}
	ps.setFence(g.elector.Medium(), 0)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { g.probeLoop(ctx) })
	wg.Go(func() { g.listen(ctx, ps) })
	err := g.elector.Run(ctx, func(ctx context.Context, l leader.Lease) error { return g.lead(ctx, ps, l) })
	cancel()
	wg.Wait()
	return err
}

// lead drives the medium for the term l until ctx is done (the term lost
// or the gateway stopping) or the driver fails.
func (g *Gateway) lead(ctx context.Context, ps *pgStore, l leader.Lease) error {
	g.beginTerm(ps, l)
	defer g.endTerm(ps, l)
	return g.drive(ctx)
}

// beginTerm makes the driver's state fresh for the term l and fences the
// store's writes with its epoch. (The Elector logs the term's start and
// end.)
func (g *Gateway) beginTerm(ps *pgStore, l leader.Lease) {
	g.mu.Lock()
	g.sending = map[string]*pb.BridgeRequest{}
	g.inflight = map[string]bool{}
	g.mu.Unlock()
	g.closing = map[string]bool{}
	g.lastClose = g.now()
	g.epoch.Store(l.Epoch)
	ps.setFence(l.Medium, l.Epoch)
	g.leading.Store(true)
	if g.onLeader != nil {
		g.onLeader(l.Medium, true, l.Epoch)
	}
	g.wake()
}

// endTerm refuses every later driver write (the fence's epoch 0) once the
// term's driver has stopped.
func (g *Gateway) endTerm(ps *pgStore, l leader.Lease) {
	ps.setFence(l.Medium, 0)
	g.leading.Store(false)
	if g.onLeader != nil {
		g.onLeader(l.Medium, false, l.Epoch)
	}
}

// drives reports whether this gateway drives its medium now: always for
// a single gateway, while elected for one of several.
func (g *Gateway) drives() bool { return g.elector == nil || g.leading.Load() }

// Leading reports whether this gateway drives its medium now, and the
// term's epoch (0 for a single gateway, which always drives it).
func (g *Gateway) Leading() (bool, uint64) {
	if g.elector == nil {
		return true, 0
	}
	return g.leading.Load(), g.epoch.Load()
}

// electionCheck is the readiness check of an elected gateway: the
// election reaches the database (a gateway that does not stops leading).
func electionCheck(e *leader.Elector) health.Check {
	return health.Check{Name: "election", Probe: func(context.Context) error {
		if !e.State().Reachable {
			return errElectionUnreachable
		}
		return nil
	}, Changed: e.Changed}
}

// errElectionUnreachable is the election check's failure.
var errElectionUnreachable = errors.New("the leader election does not reach the database")

// newInstanceName returns a random name for this gateway's process, which
// the alerts it notifies carry so that it does not take them back.
func newInstanceName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
