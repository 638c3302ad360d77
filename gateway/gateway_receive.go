package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// The receive loop. It takes the answers waiting on the medium together
// (frame.ReadBatch), checks each (a signed block against its intent and
// head), records what they change in one commit, and only then tells the
// watchers, starts the publish pipelines and settles the frames on the
// medium (frame.DoneAll: on a file medium one sync of each directory).

// maxAnswerBatch bounds how many answers are handled together.
const maxAnswerBatch = 256

// maxPendingRecoveries bounds how often one request is requeued after
// publishing a block the signer had signed on its head.
const maxPendingRecoveries = 3

// recoverPending handles a PENDING_BLOCK refusal when the gateway has a
// node: the block the signer already signed on this head (a crash or a
// lost answer left it unpublished) is checked — it must be for the
// request's account and carry a valid signature — and published in the
// background, and the request is queued again, to be sent with the new
// head. It reports whether it did so.
func (g *Gateway) recoverPending(ctx context.Context, id string, e *entry, pending nano.StateBlock) bool {
	if g.ledger == nil || e.recoveries >= maxPendingRecoveries {
		return false
	}
	h := pending.Hash()
	if nano.PublicKey(e.view.GetIntent().GetAccount()) != pending.Account || !nano.Verify(pending.Account, h[:], pending.Signature) {
		g.log.Error("the pending block in a refusal is not a valid block of the request's account", "request_id", id, "block", h.String())
		return false
	}
	g.mu.Lock()
	busy := g.inflight["recover:"+id]
	g.inflight["recover:"+id] = true
	g.mu.Unlock()
	if busy {
		return true // a recovery is under way; this is a repeat of the refusal
	}
	g.log.Warn("publishing a block the signer had signed on this head, then resending", "request_id", id, "pending", h.String())
	g.pipes.Add(1) // the driver's: finished before its term ends
	go func() {
		defer g.pipes.Done()
		defer func() {
			g.mu.Lock()
			delete(g.inflight, "recover:"+id)
			g.mu.Unlock()
		}()
		if _, err := g.ledger.Publish(ctx, pending, nano.SubtypeUnknown); err != nil {
			if ctx.Err() != nil {
				return // the driver stops; the request is sent again and refused again
			}
			if errors.Is(err, ErrBlockRejected) {
				g.pendingRejected(id, pending, err)
				return
			}
			g.log.Error("publishing the pending block", "block", h.String(), "error", err.Error())
		}
		updated, err := updateOne(g.store, id, func(e *entry) error {
			if s := e.view.GetStatus(); s != pb.RequestStatus_REQUEST_STATUS_QUEUED && s != pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD {
				return errSettled
			}
			e.recoveries++
			e.view.Status = pb.RequestStatus_REQUEST_STATUS_QUEUED
			e.view.UpdatedUnixNano = g.now().UnixNano()
			e.lastSent, e.gathered = time.Time{}, false
			e.wire.Sign.Head = nil // read again from the node, now that the pending block is in
			return nil
		})
		if err == nil {
			g.changed(updated.view)
		}
		g.deposed(err)
		g.wake()
	}()
	return true
}

// errSettled stops an update of a request an answer has settled.
var errSettled = errors.New("request already settled")

// receiveLoop handles the answers. Answers whose handling cannot be
// recorded (the state file is full) or settled on the medium (it is full)
// are handled again after a capped backoff: they stay on the medium until
// settled, and handling them twice does nothing twice.
func (g *Gateway) receiveLoop(ctx context.Context) error {
	var pace retryBackoff
	for {
		recs, err := frame.ReadBatch(ctx, g.in, maxAnswerBatch)
		if err != nil {
			return err
		}
		failed := false
		for {
			err := g.handleAnswers(ctx, recs)
			if err == nil {
				break
			}
			switch {
			case errors.Is(err, ErrStoreFull), errors.Is(err, ErrStoreUnavailable):
			case isNoSpace(err):
				err = fmt.Errorf("gateway: %w: settling %s: %w", filemedium.ErrMediumFull, recs[0].Name, err)
				g.setFault(WriteTargetInbound, err)
			default:
				return err
			}
			failed = true
			wait := pace.next()
			g.log.Warn("handling an answer failed; retrying", "file", recs[0].Name, "answers", len(recs), "error", err.Error(), "wait", wait.String())
			if !sleepCtx(ctx, wait) {
				return ctx.Err()
			}
		}
		if !failed {
			pace.reset()
			g.setFault(WriteTargetInbound, nil)
		}
	}
}

// answerAct is what handling an answer did to its request.
type answerAct int

const (
	actNone     answerAct = iota // nothing: the frame is settled as done (or rejected)
	actSigned                    // the request is SIGNED
	actOverride                  // the request was REFUSED and is SIGNED: the refusal was forged or stale
	actRefused                   // the request is REFUSED
)

// answer is one frame of a batch and what handling it decided. The
// decision about the request is made inside the transaction (the change's
// f), on the record as stored.
type answer struct {
	rec    *frame.Received
	reject string // reject the frame with this reason (else settle it as done)
	act    answerAct
	c      *change
	// gathered is the request as the send loop's pass under way wrote it,
	// with the blocks it read (not yet recorded); nil when recorded.
	gathered *pb.BridgeRequest

	// A response: the signed block, checked against the request as read.
	resp     *pb.SignResponse
	block    nano.StateBlock
	hash     nano.Hash
	checked  *pb.SignRequest // what block was checked against
	refusal  string          // (actOverride) the refusal reason it overrides
	reason   string          // (actRefused) the refusal reason and detail
	detail   string
	answered time.Time
}

// handleAnswers settles frames from the cold side: what they change is
// recorded in one commit before any of it is told or settled.
func (g *Gateway) handleAnswers(ctx context.Context, recs []*frame.Received) error {
	answers := make([]*answer, len(recs))
	var batch []*change
	for i, rec := range recs {
		a := &answer{rec: rec, answered: g.now()}
		answers[i] = a
		if err := g.prepareAnswer(ctx, a); err != nil {
			return err
		}
		if a.c != nil {
			batch = append(batch, a.c)
		}
	}
	if len(batch) > 0 {
		if err := g.store.apply("answers", batch, nil); err != nil {
			return err
		}
		ids := make([]string, len(batch))
		for i, c := range batch {
			ids[i] = c.id
		}
		if err := crashPoint("receive:committed", ids...); err != nil {
			return err
		}
	}
	var done []*frame.Received
	for _, a := range answers {
		if a.c != nil && a.c.out != nil {
			g.answered(ctx, a)
		}
		if a.reject != "" {
			if err := a.rec.Reject(a.reject); err != nil {
				return err
			}
			continue
		}
		done = append(done, a.rec)
	}
	return frame.DoneAll(g.in, done)
}

// prepareAnswer checks one frame and decides what can be decided before
// the transaction; a.c, when set, is its change to the request.
func (g *Gateway) prepareAnswer(ctx context.Context, a *answer) error {
	f := a.rec.Frame
	switch f.Type {
	case frame.TypeHeartbeat:
		return nil
	case frame.TypeResponse, frame.TypeRefusal:
	default:
		a.reject = fmt.Sprintf("a %s frame does not belong on the hot side's inbound medium", f.Type)
		return nil
	}
	// The pass under way first, the store then: a pass records what it
	// read before it forgets it.
	sending := g.sendingWire(f.RequestID)
	e, ok, err := g.store.get(f.RequestID)
	if err != nil {
		return err
	}
	if !ok {
		a.reject = "no request with this id was sent from this gateway"
		return nil
	}
	if !e.gathered && sending != nil {
		e.wire = sending // written with these blocks, not yet recorded
		a.gathered = sending
	}
	if f.Type == frame.TypeRefusal {
		g.prepareRefusal(ctx, a, e)
		return nil
	}
	var resp pb.BridgeResponse
	if err := proto.Unmarshal(f.Payload, &resp); err != nil || resp.GetSign().GetRequestId() != f.RequestID {
		a.reject = "the payload is not a BridgeResponse for this request id"
		return nil
	}
	if !e.gathered && a.gathered == nil {
		// The request waits to be written again with the blocks read from
		// the node (a restart lost those it was written with): this answer
		// is settled unread, and the cold side answers the request again,
		// identically.
		g.log.Warn("an answer to a request whose head is not known yet; the request is written again", "request_id", f.RequestID)
		return nil
	}
	block, err := verifySigned(e.wire.GetSign(), resp.GetSign())
	if err != nil {
		g.log.Error("REJECTED a signed block that does not match its intent", "request_id", f.RequestID, "error", err.Error())
		a.reject = "the signed block does not match the intent: " + err.Error()
		return nil
	}
	a.resp, a.block, a.hash, a.checked = resp.GetSign(), block, block.Hash(), e.wire.GetSign()
	// What the stored request says now decides whether there is anything
	// to record; the change decides again on the record as it is then.
	if err := a.sign(proto.Clone(e.view).(*pb.Request), e.wire); err != nil {
		return nil // a repeat, or a request settled otherwise (a.reject)
	}
	a.act = actNone
	a.c = &change{id: f.RequestID, f: func(e *entry) error {
		a.keepGathered(e)
		return a.sign(e.view, e.wire)
	}}
	return nil
}

// keepGathered gives a request recorded without its blocks those its
// frame was written with (the pass under way has not recorded them yet).
func (a *answer) keepGathered(e *entry) {
	if !e.gathered && a.gathered != nil {
		e.wire.Sign, e.gathered = proto.Clone(a.gathered.GetSign()).(*pb.SignRequest), true
	}
}

// sign is the change a verified response makes to a request (its view
// and wire as stored): the request is signed, unless it was settled
// otherwise (errNoChange).
func (a *answer) sign(view *pb.Request, wire *pb.BridgeRequest) error {
	a.act, a.reject = actNone, ""
	if !proto.Equal(wire.GetSign(), a.checked) {
		// The request changed since the block was checked (it was queued
		// again with a new head): check it against what is stored.
		if _, err := verifySigned(wire.GetSign(), a.resp); err != nil {
			a.reject = "the signed block does not match the intent: " + err.Error()
			return errNoChange
		}
	}
	switch s := view.GetStatus(); {
	case s == pb.RequestStatus_REQUEST_STATUS_QUEUED || s == pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD:
		a.act = actSigned
	case view.GetBlockHash() != nil && bytes.Equal(view.GetBlockHash(), a.hash[:]):
		return errNoChange // a repeat of the answer we have
	case s == pb.RequestStatus_REQUEST_STATUS_REFUSED:
		// Refusals carry no signature: anyone who controls the medium can
		// forge one. A signed block that verifies against the intent proves
		// the cold side signed, so it wins: the request is signed, and the
		// earlier refusal was forged or stale.
		a.act, a.refusal = actOverride, view.GetRefusalReason()
	default:
		a.reject = fmt.Sprintf("the request is already %s", s)
		return errNoChange
	}
	view.RefusalReason, view.Error = "", ""
	view.Status = pb.RequestStatus_REQUEST_STATUS_SIGNED
	view.Block = pb.BlockFromNano(&a.block)
	view.BlockHash = a.hash[:]
	view.Subtype = a.resp.GetSubtype()
	view.UpdatedUnixNano = a.answered.UnixNano()
	return nil
}

// prepareRefusal decides about a refusal frame for request e (as read).
func (g *Gateway) prepareRefusal(ctx context.Context, a *answer, e *entry) {
	var ref pb.BridgeRefusal
	if err := proto.Unmarshal(a.rec.Frame.Payload, &ref); err != nil {
		a.reject = "the payload is not a BridgeRefusal"
		return
	}
	if s := e.view.GetStatus(); s != pb.RequestStatus_REQUEST_STATUS_QUEUED && s != pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD {
		return // settled already: a late or repeated answer
	}
	id := a.rec.Frame.RequestID
	if frame.RefusalCode(ref.GetCode()).Resend() {
		// Not the signer's decision: the request stays queued and is
		// written again on schedule.
		g.log.Warn("the cold side could not answer; will resend", "request_id", id, "code", ref.GetCode(), "detail", ref.GetDetail())
		return
	}
	reason := ref.GetReason().String()
	if len(reason) > len("REFUSAL_REASON_") {
		reason = reason[len("REFUSAL_REASON_"):]
	}
	detail := ref.GetDetail()
	if p := ref.GetPending(); p != nil {
		if b, err := p.ToNano("pending"); err == nil {
			detail += fmt.Sprintf(" (pending block %s)", b.Hash())
			if g.recoverPending(ctx, id, e, b) {
				return
			}
		}
	}
	a.reason, a.detail = reason, detail
	a.c = &change{id: id, f: a.refuse}
}

// refuse is the change a refusal makes, decided on the stored record.
func (a *answer) refuse(e *entry) error {
	a.act = actNone
	a.keepGathered(e)
	if s := e.view.GetStatus(); s != pb.RequestStatus_REQUEST_STATUS_QUEUED && s != pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD {
		return errNoChange // settled meanwhile
	}
	a.act = actRefused
	e.view.Status = pb.RequestStatus_REQUEST_STATUS_REFUSED
	e.view.RefusalReason = a.reason
	e.view.Error = a.detail
	e.view.UpdatedUnixNano = a.answered.UnixNano()
	return nil
}

// answered tells what a recorded answer changed: the log, the watchers,
// the alert of an overridden refusal, the publish pipeline.
func (g *Gateway) answered(ctx context.Context, a *answer) {
	id, view := a.c.id, a.c.out.view
	switch a.act {
	case actOverride:
		g.log.Error("a verified signed block overrides an earlier refusal: the refusal was forged or stale",
			"request_id", id, "hash", a.hash.String(), "refusal", a.refusal)
		g.Alert(&pb.Alert{Kind: AlertRefusalOverridden, Account: a.block.Account[:], BlockHash: a.hash[:],
			Detail: fmt.Sprintf("request %s was reported refused (%s) but the cold side signed it", id, a.refusal)})
		fallthrough
	case actSigned:
		g.log.Info("signed", "request_id", id, "hash", a.hash.String(), "subtype", view.GetSubtype())
		g.changed(view)
		g.startPipeline(ctx, id)
		g.wake() // without a node, signed frees the account's line
	case actRefused:
		g.log.Warn("refused", "request_id", id, "reason", a.reason, "detail", a.detail)
		g.changed(view)
		g.wake() // the account's line is free: its next request may go now
	}
}
