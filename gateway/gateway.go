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
	"sync/atomic"
	"time"

	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/gateway/leader"
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
	// Elector, when set, makes this gateway one of several on its
	// PostgreSQL database (OpenPG only; the same database): Run serves
	// always and drives the medium only while elected (gateway_elected.go).
	// Nil: the database's (or the bbolt file's) single gateway.
	Elector *leader.Elector
	// ObserveLeader, when set, is told each start (leading true) and end
	// of a term of leadership of the medium, with its epoch (for metrics).
	ObserveLeader func(medium string, leading bool, epoch uint64)

	// listening, when set (by tests), is told each time the listener of
	// an elected gateway listens (pglisten.go), after its catch-up;
	// beforeListen is called before each of its connections (a test may
	// hold it there).
	listening    func()
	beforeListen func(ctx context.Context)
}

// Gateway is the hot side of the bridge: it queues intents durably, writes
// request frames (and writes them again until answered), matches answers,
// verifies every signed block against its intent before anything else
// sees it, and publishes through the Ledger.
type Gateway struct {
	store    store
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

	// The send loop's: requests to take off the open list with its next
	// commit, and when it last did so.
	closing   map[string]bool
	lastClose time.Time

	mu       sync.Mutex
	watchers map[string][]chan *pb.Request
	alerts   []chan *pb.Alert
	inflight map[string]bool // requests in the publish pipeline
	// sending holds the requests the send loop's pass has written with
	// the blocks it read from the node, until they are recorded.
	sending map[string]*pb.BridgeRequest
	pipes   sync.WaitGroup // the publish pipelines Run started
	// stopDrive ends the driver under way (drive), with its cause.
	stopDrive context.CancelCauseFunc

	// Several gateways on one database (gateway_elected.go).
	elector  *leader.Elector
	onLeader func(medium string, leading bool, epoch uint64)
	epoch    atomic.Uint64 // the term's leader epoch while driving (0: single gateway)
	leading  atomic.Bool   // a term runs
	instance string        // this gateway's name in the alerts it notifies
	// onListening and beforeListen are Options.listening and
	// Options.beforeListen.
	onListening  func()
	beforeListen func(ctx context.Context)
}

// Open opens the gateway on its bbolt state file at path (created when
// missing, mode 0600).
func Open(path string, opts Options) (*Gateway, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.Elector != nil {
		return nil, errors.New("gateway: several gateways (an Elector) need the state on PostgreSQL (OpenPG)")
	}
	st, err := openGatewayStore(path, opts.Ledger != nil)
	if err != nil {
		return nil, err
	}
	return newGateway(st, opts), nil
}

func (opts *Options) check() error {
	if opts.Out == nil || opts.Reader == nil || opts.Manifest == nil {
		return errors.New("gateway: a gateway needs an outbound writer, an inbound reader and a manifest")
	}
	return nil
}

// newGateway returns the gateway keeping its requests in st.
func newGateway(st store, opts Options) *Gateway {
	g := &Gateway{
		store: st, out: opts.Out, in: opts.Reader, manifest: opts.Manifest, ledger: opts.Ledger,
		resend: opts.ResendInterval, now: opts.Now, log: opts.Log, observe: opts.Observe, onAlert: opts.ObserveAlert,
		autoReceive: opts.AutoReceive, representative: opts.Representative,
		kick: make(chan struct{}, 1), closing: map[string]bool{}, watchers: map[string][]chan *pb.Request{}, inflight: map[string]bool{},
		sending:      map[string]*pb.BridgeRequest{},
		onWriteFault: opts.ObserveWriteFault, faults: map[string]error{}, faultChanged: make(chan struct{}),
		probeKick: make(chan struct{}, 1),
		elector:   opts.Elector, onLeader: opts.ObserveLeader, instance: newInstanceName(), onListening: opts.listening, beforeListen: opts.beforeListen,
	}
	st.setOnCommit(func(err error) { g.setFault(WriteTargetStore, err) })
	if g.resend <= 0 {
		g.resend = 30 * time.Second
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.lastClose = g.now()
	g.health = health.NewMonitor(health.Options{OnChange: health.LogChanges(g.log)}, g.readiness(opts.MediumCheck, opts.NodeCheck, opts.Elector)...)
	return g
}

// Close closes the state store (the file, or the database's connections).
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
// hash for some request of this gateway. It fails (wrapping
// ErrStoreUnavailable) when the store cannot say.
func (g *Gateway) SignedByUs(hash nano.Hash) (bool, error) {
	_, ok, err := g.store.signedBy(hash[:])
	return ok, err
}

// Run writes due requests to the bridge and handles answers until ctx is
// done. It returns nil when ctx ends, or the first failure of the medium
// or the state store other than a lack of space or an unreachable
// database: while the state file or the medium is full, or the state
// database out of reach, it keeps retrying, with a capped backoff, and
// WriteHealth says so. With an Elector (Options.Elector) it campaigns
// instead and drives the medium only while elected (runElected): it then
// returns only when ctx ends.
func (g *Gateway) Run(ctx context.Context) error {
	if g.elector != nil {
		return g.runElected(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	probed := make(chan struct{})
	go func() { defer close(probed); g.probeLoop(ctx) }()
	err := g.drive(ctx)
	cancel()
	<-probed
	return err
}

// drive runs the medium's driver until ctx is done or it fails: the send
// and receive loops and the publish pipelines, every one of them finished
// when it returns. It returns nil when ctx ended, the error that stopped
// it otherwise (one wrapping leader.ErrDeposed when a write found the
// term over).
func (g *Gateway) drive(ctx context.Context) error {
	dctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	g.mu.Lock()
	g.stopDrive = stop
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.stopDrive = nil
		g.mu.Unlock()
	}()
	// Requests signed or published before a restart go on from the
	// publish list; the send loop resumes them again if a pipeline ended
	// without a final status.
	g.resumePipelines(dctx)
	errc := make(chan error, 2)
	go func() { errc <- g.sendLoop(dctx) }()
	go func() { errc <- g.receiveLoop(dctx) }()
	err := <-errc
	stop(nil)
	<-errc
	g.pipes.Wait()
	if cause := context.Cause(dctx); errors.Is(cause, leader.ErrDeposed) && ctx.Err() == nil {
		return cause
	}
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	return err
}

// deposed reports whether err says the term is over (a fenced write
// found another term begun): the driver under way is then stopped at
// once, with err as its cause, rather than retried.
func (g *Gateway) deposed(err error) bool {
	if !errors.Is(err, leader.ErrDeposed) {
		return false
	}
	g.mu.Lock()
	stop := g.stopDrive
	g.mu.Unlock()
	if stop != nil {
		stop(err)
	}
	return true
}
