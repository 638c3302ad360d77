package gateway

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/internal/health"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Ledger is the gateway's view of the Nano network; the node package
// provides it. Without one, heads and source blocks come with each
// submission and a request ends at SIGNED.
type Ledger interface {
	// Head returns the account's head block, or nil for an unopened account.
	Head(ctx context.Context, account nano.PublicKey) (*nano.StateBlock, error)
	// Source returns a send block and the block before it.
	Source(ctx context.Context, hash nano.Hash) (src, prev nano.StateBlock, err error)
	// Publish attaches proof of work to b and publishes it; it returns the
	// block as published (with work). Publishing the same block twice is
	// harmless.
	Publish(ctx context.Context, b nano.StateBlock, subtype nano.Subtype) (nano.StateBlock, error)
	// AwaitConfirmed returns when the block is confirmed.
	AwaitConfirmed(ctx context.Context, hash nano.Hash) error
}

// Errors returned by Submit; the Custody server maps them to gRPC codes.
var (
	// ErrInvalid is returned for a malformed submission (InvalidArgument).
	ErrInvalid = errors.New("invalid submission")
	// ErrNotCustody is returned for an account outside the manifest (NotFound).
	ErrNotCustody = errors.New("not a custody account")
	// ErrIDTaken is returned when the request id was used for another intent (AlreadyExists).
	ErrIDTaken = errors.New("request id used for another intent")
	// ErrNoRequest is returned for an unknown request id (NotFound).
	ErrNoRequest = errors.New("no such request")
	// ErrPermanent marks a Ledger error that retrying cannot fix (a fork,
	// a block the node refuses for good): the request fails.
	ErrPermanent = errors.New("permanent failure")
)

// Options configure a Gateway.
type Options struct {
	Out            frame.FrameWriter
	Reader         frame.FrameReader
	Manifest       *Manifest
	Ledger         Ledger // nil: no node
	ResendInterval time.Duration
	Now            func() time.Time
	Log            *slog.Logger
	// Observe, when set, is told every status change (for metrics).
	Observe func(status pb.RequestStatus, r *pb.Request)
	// ObserveAlert, when set, is told every critical alert (for metrics).
	ObserveAlert func(a *pb.Alert)
	// ObserveWriteFault, when set, is told when writes to a target
	// (WriteTargetStore, …) start failing (err) and succeed again (nil).
	ObserveWriteFault func(target string, err error)
	// AutoReceive makes receive intents from confirmed sends to custody
	// accounts (ObserveConfirmed); Representative is given to the accounts
	// they open.
	AutoReceive    bool
	Representative nano.PublicKey
	// MediumCheck, when set, says whether the bridge medium is there now
	// (bridge.Medium.Present); NodeCheck, when set, whether the node
	// answers now (NodeSide.Check). Both are part of the gateway's
	// readiness (Health).
	MediumCheck, NodeCheck func(ctx context.Context) error
}

// Gateway is the hot side of the bridge: it queues intents durably, writes
// request frames (and writes them again until answered), matches answers,
// verifies every signed block against its intent before anything else
// sees it, and publishes through the Ledger.
type Gateway struct {
	store    *gatewayStore
	out      frame.FrameWriter
	in       frame.FrameReader
	manifest *Manifest
	ledger   Ledger
	resend   time.Duration
	now      func() time.Time
	log      *slog.Logger
	observe  func(pb.RequestStatus, *pb.Request)
	onAlert  func(*pb.Alert)

	onWriteFault func(target string, err error)
	faultMu      sync.Mutex
	faults       map[string]error // by write target: the last failure, while they fail
	faultChanged chan struct{}    // closed and replaced when a target starts or stops failing
	probeKick    chan struct{}
	health       *health.Monitor

	autoReceive    bool
	representative nano.PublicKey

	kick chan struct{}

	mu       sync.Mutex
	watchers map[string][]chan *pb.Request
	alerts   []chan *pb.Alert
	inflight map[string]bool // requests in the publish pipeline
	pipes    sync.WaitGroup  // the publish pipelines Run started
}

// Open opens the gateway's state file at path.
func Open(path string, opts Options) (*Gateway, error) {
	if opts.Out == nil || opts.Reader == nil || opts.Manifest == nil {
		return nil, errors.New("gateway: a gateway needs an outbound writer, an inbound reader and a manifest")
	}
	st, err := openGatewayStore(path, opts.Ledger != nil)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		store: st, out: opts.Out, in: opts.Reader, manifest: opts.Manifest, ledger: opts.Ledger,
		resend: opts.ResendInterval, now: opts.Now, log: opts.Log, observe: opts.Observe, onAlert: opts.ObserveAlert,
		autoReceive: opts.AutoReceive, representative: opts.Representative,
		kick: make(chan struct{}, 1), watchers: map[string][]chan *pb.Request{}, inflight: map[string]bool{},
		onWriteFault: opts.ObserveWriteFault, faults: map[string]error{}, faultChanged: make(chan struct{}),
		probeKick: make(chan struct{}, 1),
	}
	st.onCommit = func(err error) { g.setFault(WriteTargetStore, err) }
	if g.resend <= 0 {
		g.resend = 30 * time.Second
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.health = health.NewMonitor(health.Options{OnChange: health.LogChanges(g.log)}, g.readiness(opts.MediumCheck, opts.NodeCheck)...)
	return g, nil
}

// Close closes the state file.
func (g *Gateway) Close() error { return g.store.close() }

// Manifest returns the custody accounts.
func (g *Gateway) Manifest() *Manifest { return g.manifest }

func (g *Gateway) wake() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// isFinal reports whether no further change can come to a request in status s.
func (g *Gateway) isFinal(s pb.RequestStatus) bool {
	switch s {
	case pb.RequestStatus_REQUEST_STATUS_CONFIRMED, pb.RequestStatus_REQUEST_STATUS_REFUSED, pb.RequestStatus_REQUEST_STATUS_FAILED:
		return true
	case pb.RequestStatus_REQUEST_STATUS_SIGNED:
		return g.ledger == nil
	}
	return false
}

// Submit queues an intent. It is idempotent on the request id.
func (g *Gateway) Submit(ctx context.Context, req *pb.SubmitIntentRequest) (*pb.Request, error) {
	p, err := intent.Parse(req.GetIntent())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !g.manifest.Contains(p.Account) {
		return nil, fmt.Errorf("%w: %s", ErrNotCustody, p.Account.Address())
	}
	digest := p.Digest()
	if e, ok, err := g.store.get(p.RequestID); err != nil {
		return nil, err
	} else if ok {
		if e.digest != digest {
			return nil, fmt.Errorf("%w: %q", ErrIDTaken, p.RequestID)
		}
		return e.view, nil
	}
	sign := &pb.SignRequest{Intent: req.GetIntent(), Approvals: req.GetApprovals(),
		Head: req.GetHead(), Source: req.GetSource(), SourcePrevious: req.GetSourcePrevious()}
	now := g.now()
	e := &entry{
		view: &pb.Request{RequestId: p.RequestID, Status: pb.RequestStatus_REQUEST_STATUS_QUEUED, Intent: req.GetIntent(),
			SubmittedUnixNano: now.UnixNano(), UpdatedUnixNano: now.UnixNano()},
		wire:   &pb.BridgeRequest{Sign: sign},
		digest: digest,
		// Without a node the submission brings the blocks; with one they
		// are read when the request reaches the head of its account's line.
		gathered: g.ledger == nil || req.GetHead() != nil,
	}
	if err := g.store.insert(e); err != nil {
		if errors.Is(err, errExists) {
			// A concurrent submission of the same id won: answer as a repeat.
			if again, ok, gerr := g.store.get(p.RequestID); gerr == nil && ok && again.digest == digest {
				return again.view, nil
			}
			return nil, fmt.Errorf("%w: %q", ErrIDTaken, p.RequestID)
		}
		return nil, err
	}
	g.log.Info("queued", "request_id", p.RequestID, "account", p.Account.Address())
	g.changed(e.view)
	g.wake()
	return e.view, nil
}

// gather fills the head and source blocks from the ledger, in one
// consistent read of the account, when the submission did not bring them.
func (g *Gateway) gather(ctx context.Context, p *intent.Parsed, sign *pb.SignRequest) error {
	if g.ledger == nil {
		return nil
	}
	if sign.Head == nil {
		head, err := g.ledger.Head(ctx, p.Account)
		if err != nil {
			return fmt.Errorf("gateway: reading the head of %s: %w", p.Account.Address(), err)
		}
		if head != nil {
			sign.Head = pb.BlockFromNano(head)
		}
	}
	if p.Kind == pb.IntentKind_INTENT_KIND_RECEIVE && (sign.Source == nil || sign.SourcePrevious == nil) {
		src, prev, err := g.ledger.Source(ctx, p.Source)
		if err != nil {
			return fmt.Errorf("gateway: reading source %s: %w", p.Source, err)
		}
		sign.Source, sign.SourcePrevious = pb.BlockFromNano(&src), pb.BlockFromNano(&prev)
	}
	return nil
}

// Get returns a request's state.
func (g *Gateway) Get(id string) (*pb.Request, error) {
	e, ok, err := g.store.get(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoRequest, id)
	}
	return e.view, nil
}

// List returns the requests, oldest first; with account set, only that
// account's.
func (g *Gateway) List(account []byte) ([]*pb.Request, error) {
	var out []*pb.Request
	err := g.store.each(func(e *entry) error {
		if len(account) == 0 || bytes.Equal(account, e.view.GetIntent().GetAccount()) {
			out = append(out, e.view)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b *pb.Request) int {
		return cmp.Or(cmp.Compare(a.GetSubmittedUnixNano(), b.GetSubmittedUnixNano()), strings.Compare(a.GetRequestId(), b.GetRequestId()))
	})
	return out, err
}

// SignedByUs reports whether the cold side signed the block with this
// hash for some request of this gateway.
func (g *Gateway) SignedByUs(hash nano.Hash) bool {
	_, ok := g.store.signedBy(hash[:])
	return ok
}

// Run writes due requests to the bridge and handles answers until ctx is
// done. It returns nil when ctx ends, or the first failure of the medium
// or the state file other than a lack of space: while the state file or
// the medium is full it keeps retrying, with a capped backoff, and
// WriteHealth says so.
func (g *Gateway) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Requests signed or published before a restart go on from the
	// publish list; the send loop resumes them again if a pipeline ended
	// without a final status.
	g.resumePipelines(ctx)
	errc := make(chan error, 2)
	go func() { errc <- g.sendLoop(ctx) }()
	go func() { errc <- g.receiveLoop(ctx) }()
	probed := make(chan struct{})
	go func() { defer close(probed); g.probeLoop(ctx) }()
	err := <-errc
	cancel()
	<-errc
	<-probed
	g.pipes.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	return err
}

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
			// The state file or the medium is full: what could not be
			// written is written again after the wait.
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
	var open []*entry
	var settled []string
	err := g.store.eachOpen(func(e *entry) error {
		if g.settled(e.view.GetStatus()) {
			settled = append(settled, e.view.GetRequestId())
		} else {
			open = append(open, e)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, id := range settled {
		if err := g.store.closeOpen(id); err != nil {
			return 0, err
		}
	}
	slices.SortFunc(open, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.view.GetSubmittedUnixNano(), b.view.GetSubmittedUnixNano()),
			strings.Compare(a.view.GetRequestId(), b.view.GetRequestId()))
	})
	busy := map[string]bool{}
	var due []string
	for _, e := range open {
		acct := string(e.view.GetIntent().GetAccount())
		if busy[acct] {
			continue
		}
		busy[acct] = true
		switch e.view.GetStatus() {
		case pb.RequestStatus_REQUEST_STATUS_QUEUED, pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD:
		default:
			continue // signed and in the publish pipeline: it holds the line
		}
		if wait := e.lastSent.Add(g.resend).Sub(now); !e.lastSent.IsZero() && wait > 0 {
			next = min(next, wait)
			continue
		}
		due = append(due, e.view.GetRequestId())
	}
	for _, id := range due {
		if err := g.sendOne(ctx, id); err != nil {
			return 0, err
		}
	}
	if len(due) == 0 {
		g.setFault(WriteTargetOutbound, nil) // nothing to write, nothing failing
	}
	return max(next, time.Millisecond), nil
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

func (g *Gateway) sendOne(ctx context.Context, id string) error {
	e, ok, err := g.store.get(id)
	if err != nil || !ok {
		return err
	}
	if !e.gathered {
		p, err := intent.Parse(e.view.GetIntent())
		if err != nil {
			g.fail(id, "the stored intent: "+err.Error())
			return nil
		}
		sign := proto.Clone(e.wire.GetSign()).(*pb.SignRequest)
		if err := g.gather(ctx, &p, sign); err != nil {
			if errors.Is(err, ErrPermanent) {
				g.fail(id, err.Error())
				return nil
			}
			g.log.Warn("reading the node; will retry", "request_id", id, "error", err.Error())
			return nil
		}
		if e, err = g.store.update(id, func(e *entry, _ *bolt.Tx) error {
			e.wire.Sign, e.gathered = sign, true
			return nil
		}); err != nil {
			return err
		}
	}
	wire := proto.Clone(e.wire).(*pb.BridgeRequest)
	wire.Attempt = e.view.GetAttempts() + 1
	now := g.now()
	f, err := frame.NewRequestFrame(wire, now)
	if err != nil {
		return fmt.Errorf("gateway: gateway: framing request %s: %w", id, err)
	}
	if err := g.out.WriteFrame(ctx, f); err != nil {
		if isNoSpace(err) {
			err = fmt.Errorf("gateway: %w: writing request %s: %w", filemedium.ErrMediumFull, id, err)
			g.setFault(WriteTargetOutbound, err)
			return err
		}
		return fmt.Errorf("gateway: gateway: writing request %s: %w", id, err)
	}
	g.setFault(WriteTargetOutbound, nil)
	updated, err := g.store.update(id, func(e *entry, _ *bolt.Tx) error {
		if s := e.view.GetStatus(); s != pb.RequestStatus_REQUEST_STATUS_QUEUED && s != pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD {
			return errSettled
		}
		e.view.Attempts = wire.Attempt
		e.view.Status = pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD
		e.view.UpdatedUnixNano = now.UnixNano()
		e.lastSent = now
		return nil
	})
	if errors.Is(err, errSettled) {
		return nil
	}
	if err != nil {
		return err
	}
	g.log.Info("sent to cold", "request_id", id, "attempt", wire.Attempt)
	g.changed(updated.view)
	return nil
}

// maxPendingRecoveries bounds how often one request is requeued after
// publishing a block the signer had signed on its head.
const maxPendingRecoveries = 3

// recoverPending handles a PENDING_BLOCK refusal when the gateway has a
// node: the block the signer already signed on this head (a crash or a
// lost answer left it unpublished) is checked — it must be for the
// request's account and carry a valid signature — and published in the
// background, and the request is queued again, to be sent with the new
// head. It reports whether it did so.
func (g *Gateway) recoverPending(id string, e *entry, pending nano.StateBlock) bool {
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
	go func() {
		defer func() {
			g.mu.Lock()
			delete(g.inflight, "recover:"+id)
			g.mu.Unlock()
		}()
		if _, err := g.ledger.Publish(context.Background(), pending, nano.SubtypeUnknown); err != nil {
			if errors.Is(err, ErrBlockRejected) {
				g.pendingRejected(id, pending, err)
				return
			}
			g.log.Error("publishing the pending block", "block", h.String(), "error", err.Error())
		}
		updated, err := g.store.update(id, func(e *entry, _ *bolt.Tx) error {
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
		g.wake()
	}()
	return true
}

// errSettled stops an update of a request an answer has settled.
var errSettled = errors.New("request already settled")

// receiveLoop handles the answers. An answer whose handling cannot be
// recorded (the state file is full) or settled on the medium (it is full)
// is handled again after a capped backoff: it stays on the medium until
// settled, and handling it twice does nothing twice.
func (g *Gateway) receiveLoop(ctx context.Context) error {
	var pace retryBackoff
	for {
		rec, err := g.in.ReadFrame(ctx)
		if err != nil {
			return err
		}
		failed := false
		for {
			err := g.handleAnswer(ctx, rec)
			if err == nil {
				break
			}
			switch {
			case errors.Is(err, ErrStoreFull):
			case isNoSpace(err):
				err = fmt.Errorf("gateway: %w: settling %s: %w", filemedium.ErrMediumFull, rec.Name, err)
				g.setFault(WriteTargetInbound, err)
			default:
				return err
			}
			failed = true
			wait := pace.next()
			g.log.Warn("handling an answer failed; retrying", "file", rec.Name, "error", err.Error(), "wait", wait.String())
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

// handleAnswer settles one frame from the cold side.
func (g *Gateway) handleAnswer(ctx context.Context, rec *frame.Received) error {
	f := rec.Frame
	switch f.Type {
	case frame.TypeHeartbeat:
		return rec.Done()
	case frame.TypeResponse, frame.TypeRefusal:
	default:
		return rec.Reject(fmt.Sprintf("a %s frame does not belong on the hot side's inbound medium", f.Type))
	}
	e, ok, err := g.store.get(f.RequestID)
	if err != nil {
		return err
	}
	if !ok {
		return rec.Reject("no request with this id was sent from this gateway")
	}
	if f.Type == frame.TypeRefusal {
		return g.handleRefusal(rec, e)
	}
	var resp pb.BridgeResponse
	if err := proto.Unmarshal(f.Payload, &resp); err != nil || resp.GetSign().GetRequestId() != f.RequestID {
		return rec.Reject("the payload is not a BridgeResponse for this request id")
	}
	block, err := verifySigned(e.wire.GetSign(), resp.GetSign())
	if err != nil {
		g.log.Error("REJECTED a signed block that does not match its intent", "request_id", f.RequestID, "error", err.Error())
		return rec.Reject("the signed block does not match the intent: " + err.Error())
	}
	hash := block.Hash()
	switch s := e.view.GetStatus(); {
	case s == pb.RequestStatus_REQUEST_STATUS_QUEUED || s == pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD:
	case e.view.GetBlockHash() != nil && bytes.Equal(e.view.GetBlockHash(), hash[:]):
		return rec.Done() // a repeat of the answer we have
	case s == pb.RequestStatus_REQUEST_STATUS_REFUSED:
		// Refusals carry no signature: anyone who controls the medium can
		// forge one. A signed block that verifies against the intent proves
		// the cold side signed, so it wins: the request is signed, and the
		// earlier refusal was forged or stale.
		g.log.Error("a verified signed block overrides an earlier refusal: the refusal was forged or stale",
			"request_id", f.RequestID, "hash", hash.String(), "refusal", e.view.GetRefusalReason())
		g.Alert(&pb.Alert{Kind: AlertRefusalOverridden, Account: block.Account[:], BlockHash: hash[:],
			Detail: fmt.Sprintf("request %s was reported refused (%s) but the cold side signed it", f.RequestID, e.view.GetRefusalReason())})
	default:
		return rec.Reject(fmt.Sprintf("the request is already %s", s))
	}
	now := g.now()
	updated, err := g.store.update(f.RequestID, func(e *entry, tx *bolt.Tx) error {
		e.view.RefusalReason, e.view.Error = "", ""
		e.view.Status = pb.RequestStatus_REQUEST_STATUS_SIGNED
		e.view.Block = pb.BlockFromNano(&block)
		e.view.BlockHash = hash[:]
		e.view.Subtype = resp.GetSign().GetSubtype()
		e.view.UpdatedUnixNano = now.UnixNano()
		return tx.Bucket(gwBucketSigned).Put(hash[:], []byte(f.RequestID))
	})
	if err != nil {
		return err
	}
	g.log.Info("signed", "request_id", f.RequestID, "hash", hash.String(), "subtype", updated.view.GetSubtype())
	g.changed(updated.view)
	g.startPipeline(ctx, f.RequestID)
	g.wake() // without a node, signed frees the account's line
	return rec.Done()
}

func (g *Gateway) handleRefusal(rec *frame.Received, e *entry) error {
	var ref pb.BridgeRefusal
	if err := proto.Unmarshal(rec.Frame.Payload, &ref); err != nil {
		return rec.Reject("the payload is not a BridgeRefusal")
	}
	if s := e.view.GetStatus(); s != pb.RequestStatus_REQUEST_STATUS_QUEUED && s != pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD {
		return rec.Done() // settled already: a late or repeated answer
	}
	id := rec.Frame.RequestID
	if frame.RefusalCode(ref.GetCode()).Resend() {
		// Not the signer's decision: the request stays queued and is
		// written again on schedule.
		g.log.Warn("the cold side could not answer; will resend", "request_id", id, "code", ref.GetCode(), "detail", ref.GetDetail())
		return rec.Done()
	}
	reason := ref.GetReason().String()
	if len(reason) > len("REFUSAL_REASON_") {
		reason = reason[len("REFUSAL_REASON_"):]
	}
	detail := ref.GetDetail()
	if p := ref.GetPending(); p != nil {
		if b, err := p.ToNano("pending"); err == nil {
			detail += fmt.Sprintf(" (pending block %s)", b.Hash())
			if g.recoverPending(id, e, b) {
				return rec.Done()
			}
		}
	}
	now := g.now()
	updated, err := g.store.update(id, func(e *entry, _ *bolt.Tx) error {
		e.view.Status = pb.RequestStatus_REQUEST_STATUS_REFUSED
		e.view.RefusalReason = reason
		e.view.Error = detail
		e.view.UpdatedUnixNano = now.UnixNano()
		return nil
	})
	if err != nil {
		return err
	}
	g.log.Warn("refused", "request_id", id, "reason", reason, "detail", detail)
	g.changed(updated.view)
	g.wake() // the account's line is free: its next request may go now
	return rec.Done()
}
