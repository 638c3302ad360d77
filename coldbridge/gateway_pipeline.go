package coldbridge

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Backoff bounds for the publish pipeline.
const (
	pipelineRetryMin = 200 * time.Millisecond
	pipelineRetryMax = 30 * time.Second
)

// resumePipelines restarts the publish pipeline of every request that was
// signed or published but not yet confirmed (after a restart).
func (g *Gateway) resumePipelines(ctx context.Context) {
	if g.ledger == nil {
		return
	}
	var ids []string
	_ = g.store.eachOpen(func(e *entry) error {
		switch e.view.GetStatus() {
		case pb.RequestStatus_REQUEST_STATUS_SIGNED, pb.RequestStatus_REQUEST_STATUS_PUBLISHED:
			ids = append(ids, e.view.GetRequestId())
		}
		return nil
	})
	for _, id := range ids {
		g.startPipeline(ctx, id)
	}
}

// startPipeline publishes a signed request and follows it to
// confirmation, in the background.
func (g *Gateway) startPipeline(ctx context.Context, id string) {
	if g.ledger == nil {
		return
	}
	g.mu.Lock()
	if g.inflight[id] {
		g.mu.Unlock()
		return
	}
	g.inflight[id] = true
	g.mu.Unlock()
	go func() {
		defer func() {
			g.mu.Lock()
			delete(g.inflight, id)
			g.mu.Unlock()
		}()
		g.pipeline(ctx, id)
	}()
}

func (g *Gateway) pipeline(ctx context.Context, id string) {
	e, ok, err := g.store.get(id)
	if err != nil || !ok {
		return
	}
	block, err := e.view.GetBlock().ToNano("block")
	if err != nil {
		g.fail(id, "the stored block does not decode: "+err.Error())
		return
	}
	if e.view.GetStatus() == pb.RequestStatus_REQUEST_STATUS_SIGNED {
		subtype, _ := nano.ParseSubtype(e.view.GetSubtype())
		var published nano.StateBlock
		if !g.retry(ctx, id, "publish", func() error {
			var err error
			published, err = g.ledger.Publish(ctx, block, subtype)
			return err
		}) {
			return
		}
		if published.Hash() != block.Hash() || published.Signature != block.Signature {
			g.fail(id, "the ledger published another block than the one signed")
			return
		}
		if !g.setStatus(id, pb.RequestStatus_REQUEST_STATUS_PUBLISHED, func(e *entry) {
			e.view.Block = pb.BlockFromNano(&published)
		}) {
			return
		}
	}
	hash := block.Hash()
	if !g.retry(ctx, id, "confirmation", func() error { return g.ledger.AwaitConfirmed(ctx, hash) }) {
		return
	}
	g.setStatus(id, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, nil)
}

// retry runs f until it succeeds (true), fails permanently (the request
// fails; false) or ctx ends (false).
func (g *Gateway) retry(ctx context.Context, id, what string, f func() error) bool {
	wait := pipelineRetryMin
	for {
		err := f()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, ErrBlockRejected) {
			g.blockRejected(id, err)
			return false
		}
		if errors.Is(err, ErrPermanent) {
			g.fail(id, what+": "+err.Error())
			return false
		}
		g.log.Warn(what+" failed; retrying", "request_id", id, "error", err.Error(), "wait", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		wait = min(2*wait, pipelineRetryMax)
	}
}

func (g *Gateway) fail(id, why string) {
	g.log.Error("request failed", "request_id", id, "error", why)
	g.setStatus(id, pb.RequestStatus_REQUEST_STATUS_FAILED, func(e *entry) { e.view.Error = why })
}

// setStatus records a new status; it reports whether it was stored.
func (g *Gateway) setStatus(id string, s pb.RequestStatus, f func(*entry)) bool {
	now := g.now()
	updated, err := g.store.update(id, func(e *entry, _ *bolt.Tx) error {
		e.view.Status = s
		e.view.UpdatedUnixNano = now.UnixNano()
		if f != nil {
			f(e)
		}
		return nil
	})
	if err != nil {
		g.log.Error("recording a status", "request_id", id, "status", s.String(), "error", err.Error())
		return false
	}
	g.log.Info(s.String(), "request_id", id)
	g.changed(updated.view)
	// Published, confirmed or failed, the request no longer holds its
	// account's line: the next request of the account may go now rather
	// than at the next resend.
	g.wake()
	return true
}
