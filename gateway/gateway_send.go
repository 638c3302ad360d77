package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/intent"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// The send loop. Each pass takes every request that is due, reads from the
// node the heads of those that need them (recorded in one commit), writes
// all their frames in one batch (frame.WriteAll: on a file medium one sync
// of the directory), and only once the frames are durable records them
// SENT_TO_COLD in one commit; only then do watchers and GetRequest see it.

// maxSendBatch bounds how many request frames one pass writes.
const maxSendBatch = 256

// gatherParallel bounds how many requests of a pass read the node at once.
const gatherParallel = 8

// sendLoop writes every due request, then sleeps until the next one is due
// or a new request arrives. Once per resend interval it also resumes the
// publish pipeline of any request on the publish list that has none (one
// ended without a final status, such as when recording it failed).
func (g *Gateway) sendLoop(ctx context.Context) error {
	lastResume := g.now()
	var pace retryBackoff
	for {
		if now := g.now(); now.Sub(lastResume) >= g.resend {
			g.resumePipelines(ctx)
			lastResume = now
		}
		next, err := g.sendDue(ctx)
		switch {
		case err == nil:
			pace.reset()
		case isFull(err) && ctx.Err() == nil:
			// The state file or the medium is full, or the state
			// database out of reach: what could not be written is
			// written again after the wait.
			next = pace.next()
			g.log.Warn("writing requests failed; retrying", "error", err.Error(), "wait", next.String())
		default:
			return err
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-g.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

// sendDue writes the requests that are due and returns how long until the
// next one is. Requests of one account go one at a time, in submission
// order: a request waits until the one before it is settled (signed when
// there is no node; published when there is, so that the node's head
// includes it) before its head is read and it is sent.
func (g *Gateway) sendDue(ctx context.Context) (time.Duration, error) {
	now := g.now()
	next := g.resend
	var open []openItem
	err := g.store.openItems(func(it openItem) error {
		if g.settled(it.status) {
			g.closing[it.id] = true
		} else {
			open = append(open, it)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	slices.SortFunc(open, func(a, b openItem) int {
		return cmp.Or(cmp.Compare(a.submitted, b.submitted), strings.Compare(a.id, b.id))
	})
	busy := map[string]bool{}
	var due []string
	for _, it := range open {
		acct := string(it.account)
		if busy[acct] {
			continue
		}
		busy[acct] = true
		switch it.status {
		case pb.RequestStatus_REQUEST_STATUS_QUEUED, pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD:
		default:
			continue // signed and in the publish pipeline: it holds the line
		}
		if wait := it.lastSent.Add(g.resend).Sub(now); !it.lastSent.IsZero() && wait > 0 {
			next = min(next, wait)
			continue
		}
		if len(due) == maxSendBatch {
			next = 0 // the rest in the next pass, at once
			continue
		}
		due = append(due, it.id)
	}
	if len(due) == 0 {
		g.setFault(WriteTargetOutbound, nil) // nothing to write, nothing failing
		// Requests that no longer hold their line leave the open list with
		// the next pass that writes; on their own only now and then.
		if len(g.closing) > 0 && (len(g.closing) >= maxGroup || now.Sub(g.lastClose) >= g.resend) {
			if err := g.store.apply("close", nil, g.takeClosing()); err != nil {
				return 0, err
			}
		}
		return max(next, time.Millisecond), nil
	}
	if err := g.sendBatch(ctx, due); err != nil {
		return 0, err
	}
	return max(next, time.Millisecond), nil
}

// takeClosing returns the requests to take off the open list with the
// next commit of the send loop, and forgets them.
func (g *Gateway) takeClosing() []string {
	if len(g.closing) == 0 {
		return nil
	}
	ids := make([]string, 0, len(g.closing))
	for id := range g.closing {
		ids = append(ids, id)
	}
	clear(g.closing)
	g.lastClose = g.now()
	return ids
}

// settled reports whether a request in status s no longer holds its
// account's line.
func (g *Gateway) settled(s pb.RequestStatus) bool {
	switch s {
	case pb.RequestStatus_REQUEST_STATUS_QUEUED, pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD:
		return false
	case pb.RequestStatus_REQUEST_STATUS_SIGNED:
		return g.ledger == nil
	}
	return true
}

// sendBatch sends the due requests ids: the node's blocks read for those
// that need them, every frame written (one batch), then the frames that
// are durable recorded SENT_TO_COLD (one commit), with the blocks read.
// Until that commit the blocks read are in g.sending, so that an answer
// arriving first is checked against the head its frame carried.
func (g *Gateway) sendBatch(ctx context.Context, ids []string) error {
	var entries []*entry
	for _, id := range ids {
		e, ok, err := g.store.get(id)
		if err != nil {
			return err
		}
		if ok {
			entries = append(entries, e)
		}
	}
	entries, fresh := g.gatherAll(ctx, entries)
	if len(entries) == 0 {
		return nil
	}
	if len(fresh) > 0 {
		g.mu.Lock()
		for id, w := range fresh {
			g.sending[id] = w
		}
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			for id := range fresh {
				delete(g.sending, id)
			}
			g.mu.Unlock()
		}()
	}
	now := g.now()
	frames := make([]*frame.Frame, len(entries))
	attempts := make([]uint32, len(entries))
	for i, e := range entries {
		wire := proto.Clone(e.wire).(*pb.BridgeRequest)
		wire.Attempt = e.view.GetAttempts() + 1
		wire.LeaderEpoch = g.epoch.Load() // the term's (0: a single gateway)
		f, err := frame.NewRequestFrame(wire, now)
		if err != nil {
			return fmt.Errorf("gateway: framing request %s: %w", e.view.GetRequestId(), err)
		}
		frames[i], attempts[i] = f, wire.Attempt
	}
	n, werr := frame.WriteAll(ctx, g.out, frames)
	if n > 0 {
		written := make([]string, n)
		for i := range written {
			written[i] = entries[i].view.GetRequestId()
		}
		if err := crashPoint("send:frames-written", written...); err != nil {
			return err
		}
		if err := g.recordSent(entries[:n], attempts[:n], fresh, now); err != nil {
			return err
		}
	}
	if werr != nil {
		id := entries[n].view.GetRequestId()
		if isNoSpace(werr) {
			werr = fmt.Errorf("gateway: %w: writing request %s: %w", filemedium.ErrMediumFull, id, werr)
			g.setFault(WriteTargetOutbound, werr)
			return werr
		}
		return fmt.Errorf("gateway: writing request %s: %w", id, werr)
	}
	g.setFault(WriteTargetOutbound, nil)
	return nil
}

// recordSent records the requests whose frames (attempt attempts[i]) are
// durable as SENT_TO_COLD, in one commit, with the blocks read for them
// (fresh), and then tells the watchers.
func (g *Gateway) recordSent(entries []*entry, attempts []uint32, fresh map[string]*pb.BridgeRequest, now time.Time) error {
	batch := make([]*change, len(entries))
	for i, e := range entries {
		attempt, gathered := attempts[i], fresh[e.view.GetRequestId()]
		batch[i] = &change{id: e.view.GetRequestId(), f: func(e *entry) error {
			if s := e.view.GetStatus(); s != pb.RequestStatus_REQUEST_STATUS_QUEUED && s != pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD {
				return errSettled // an answer settled it meanwhile
			}
			if gathered != nil && !e.gathered {
				e.wire.Sign, e.gathered = proto.Clone(gathered.GetSign()).(*pb.SignRequest), true
			}
			e.view.Attempts = attempt
			e.view.Status = pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD
			e.view.UpdatedUnixNano = now.UnixNano()
			e.lastSent = now
			return nil
		}}
	}
	if err := g.store.apply("sent", batch, g.takeClosing()); err != nil {
		return err
	}
	for i, c := range batch {
		if c.out != nil {
			g.log.Info("sent to cold", "request_id", c.id, "attempt", attempts[i])
			g.changed(c.out.view)
		}
	}
	return nil
}

// sendingWire returns the request written by the send loop's pass under
// way with the blocks it read for it, before they are recorded; nil when
// there is none.
func (g *Gateway) sendingWire(id string) *pb.BridgeRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sending[id]
}

// gatherAll reads from the node the head and source blocks of the
// requests that need them (several at once). It returns the requests
// ready to send, those read with their blocks (not yet recorded), and
// the requests read, by id (fresh). A request whose read failed is left
// for a later pass; one that failed for good is failed.
func (g *Gateway) gatherAll(ctx context.Context, entries []*entry) (ready []*entry, fresh map[string]*pb.BridgeRequest) {
	type read struct {
		e    *entry
		sign *pb.SignRequest
		err  error  // the read failed (for good when it wraps ErrPermanent)
		fail string // the request fails with this reason
	}
	var reads []*read
	for _, e := range entries {
		if e.gathered {
			ready = append(ready, e)
			continue
		}
		reads = append(reads, &read{e: e})
	}
	if len(reads) == 0 {
		return ready, nil
	}
	sem := make(chan struct{}, gatherParallel)
	var wg sync.WaitGroup
	for _, r := range reads {
		id := r.e.view.GetRequestId()
		p, err := intent.Parse(r.e.view.GetIntent())
		if err != nil {
			r.fail = "the stored intent: " + err.Error()
			continue
		}
		r.sign = proto.Clone(r.e.wire.GetSign()).(*pb.SignRequest)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := g.gather(ctx, &p, r.sign); err != nil {
				r.err = err
				if errors.Is(err, ErrPermanent) {
					r.fail = err.Error()
				} else {
					g.log.Warn("reading the node; will retry", "request_id", id, "error", err.Error())
				}
			}
		})
	}
	wg.Wait()
	fresh = map[string]*pb.BridgeRequest{}
	for _, r := range reads {
		id := r.e.view.GetRequestId()
		if r.fail != "" {
			g.fail(id, r.fail)
			continue
		}
		if r.err != nil {
			continue // read again in a later pass
		}
		r.e.wire.Sign, r.e.gathered = r.sign, true
		fresh[id] = proto.Clone(r.e.wire).(*pb.BridgeRequest)
		ready = append(ready, r.e)
	}
	return ready, fresh
}
