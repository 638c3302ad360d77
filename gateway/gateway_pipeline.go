package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nanokms/nanokms/internal/backoff"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Backoff bounds for the publish pipeline.
const (
	pipelineRetryMin = 200 * time.Millisecond
	pipelineRetryMax = 30 * time.Second
)

// resumePipelines starts the publish pipeline of every request on the
// publish list (signed or published, not yet final) that has none running:
// after a restart, and whenever a pipeline ended before a final status.
func (g *Gateway) resumePipelines(ctx context.Context) {
	if g.ledger == nil {
		return
	}
	var ids []string
	if err := g.store.eachPublishing(func(id string) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		g.log.Error("reading the publish list", "error", err.Error())
		return
	}
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
	g.pipes.Add(1)
	go func() {
		defer g.pipes.Done()
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
	switch e.view.GetStatus() {
	case pb.RequestStatus_REQUEST_STATUS_SIGNED, pb.RequestStatus_REQUEST_STATUS_PUBLISHED:
	default:
		return // final already (resumed as it ended)
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
		if !g.retry(ctx, id, "recording PUBLISHED", func() error {
			return g.setStatus(id, pb.RequestStatus_REQUEST_STATUS_PUBLISHED, func(e *entry) {
				e.view.Block = pb.BlockFromNano(&published)
			})
		}) {
			return
		}
	}
	hash := block.Hash()
	if !g.retry(ctx, id, "confirmation", func() error { return g.ledger.AwaitConfirmed(ctx, hash) }) {
		return
	}
	g.retry(ctx, id, "recording CONFIRMED", func() error {
		return g.setStatus(id, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, nil)
	})
}

// retry runs f until it succeeds (true), fails permanently (the request
// fails; false) or ctx ends (false).
func (g *Gateway) retry(ctx context.Context, id, what string, f func() error) bool {
	var b retryBackoff
	for {
		err := f()
		if err == nil {
			return true
		}
		if ctx.Err() != nil || g.deposed(err) {
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
		wait := b.next()
		g.log.Warn(what+" failed; retrying", "request_id", id, "error", err.Error(), "wait", wait.String())
		if !sleepCtx(ctx, wait) {
			return false
		}
	}
}

// retryBackoff paces the gateway's retries: pipelineRetryMin, doubling at each
// failure up to pipelineRetryMax (package backoff). The zero value is ready.
type retryBackoff struct{ b backoff.Capped }

// next returns how long to wait before the next attempt.
func (r *retryBackoff) next() time.Duration {
	r.b.Min, r.b.Max = pipelineRetryMin, pipelineRetryMax
	return r.b.Next()
}

// reset starts the pacing over, after a success.
func (r *retryBackoff) reset() { r.b.Reset() }

// sleepCtx waits d; it returns false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool { return backoff.Sleep(ctx, d) }

// fail records the request failed. If that cannot be recorded the request
// keeps its status: the send loop, or the publish list's resumption, comes
// back to it.
func (g *Gateway) fail(id, why string) {
	g.log.Error("request failed", "request_id", id, "error", why)
	if err := g.setStatus(id, pb.RequestStatus_REQUEST_STATUS_FAILED, func(e *entry) { e.view.Error = why }); err != nil {
		g.log.Error("recording the failure", "request_id", id, "error", err.Error())
	}
}

// setStatus records a new status.
func (g *Gateway) setStatus(id string, s pb.RequestStatus, f func(*entry)) error {
	now := g.now()
	updated, err := updateOne(g.store, id, func(e *entry) error {
		e.view.Status = s
		e.view.UpdatedUnixNano = now.UnixNano()
		if f != nil {
			f(e)
		}
		return nil
	})
	if err != nil {
		g.deposed(err) // another gateway drives the medium now: this term's driver stops
		return fmt.Errorf("gateway: recording %s for %s: %w", s, id, err)
	}
	g.log.Info(s.String(), "request_id", id)
	g.changed(updated.view)
	// Published, confirmed or failed, the request no longer holds its
	// account's line: the next request of the account may go now rather
	// than at the next resend.
	g.wake()
	return nil
}
