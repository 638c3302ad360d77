package signer

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/internal/keystore"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/policy"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// KeyStore is the token-backed key store the signer signs through (the
// binary wires in an *hsm.Token). Its errors follow the key store
// contract (package keystore): PublicKey and SignFor return an error
// matching keystore.ErrWalletNotFound for an unknown wallet,
// keystore.ErrTokenUnavailable while the token is unavailable (and also
// keystore.ErrPINRefused once that is final), and one matching
// *keystore.LabelError for a label breaking keystore.CheckLabel. SignFor signs only with a key whose public key is
// account, and any error from it means no signature was made.
type KeyStore interface {
	PublicKey(ctx context.Context, wallet string, index uint32) (nano.PublicKey, error)
	SignFor(ctx context.Context, wallet string, index uint32, account nano.PublicKey, hash nano.Hash) (nano.Signature, error)
}

// Policy is what the signer asks of its configuration.
type Policy interface {
	// ApproverByKey names the approver whose key is pub.
	ApproverByKey(pub ed25519.PublicKey) (string, bool)
	// EpochSigners lists the keys accepted as signers of epoch blocks.
	EpochSigners() []nano.PublicKey
	// Evaluate returns nil if policy allows r, else a *policy.Violation.
	Evaluate(r policy.Request) error
	// EvaluateRelease returns nil if policy allows the release r, else a
	// *policy.Violation.
	EvaluateRelease(r policy.ReleaseRequest) error
}

// Options tune a Signer. The zero value is usable.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxIntentTTL refuses intents that expire further ahead than this; 0 means 24h.
	MaxIntentTTL time.Duration
	// Logger receives one structured line per decision; nil discards.
	Logger *slog.Logger
	// MaxDeciding is how many requests may be verified and signed at once;
	// the others wait for a turn, so that the commits and the answers of
	// decided requests are not queued behind them for a processor. Waiting
	// for the commit does not take a turn. 0 means 2 × GOMAXPROCS.
	MaxDeciding int
	// Observe, when set, is told every decision of Sign and Adopt once,
	// with how long it took (for metrics): decision is one of the
	// Decision* values and reason is the refusal's signerapi.ReasonName for a
	// refusal, ReasonRepeat for a recorded answer given again, ReasonStoreFull
	// for a failure because the state store is full,
	// ReasonStoreUnavailable for one because the state database is
	// unavailable, ReasonTokenUnavailable for one because the token is unavailable,
	// ReasonInternal for another failure, and "" otherwise. It must not
	// block.
	Observe func(decision, reason string, took time.Duration)
}

// Decisions and reasons reported to Options.Observe, besides the audit
// decisions: DecisionSigned (a signature released; reason "" or
// ReasonRepeat), DecisionRefused (reason: the refusal's signerapi.ReasonName) and
// DecisionAdopted (reason "").
const (
	DecisionFailed         = "failed"          // Sign: an internal failure, nothing released (reason ReasonInternal)
	DecisionAdoptionFailed = "adoption_failed" // Adopt: refused (the signerapi.ReasonName) or failed (ReasonInternal)

	ReasonRepeat           = "repeat"            // the answer recorded for the same request id and intent
	ReasonInternal         = "internal"          // the state file, the token or the context failed
	ReasonStoreFull        = "store_full"        // the state store is full (ErrStoreFull): nothing was decided
	ReasonStoreUnavailable = "store_unavailable" // the state database is unavailable (ErrStoreUnavailable): nothing was released
	ReasonTokenUnavailable = "token_unavailable" // the token is unavailable (keystore.ErrTokenUnavailable): nothing was decided
)

// Signer verifies, decides, records and signs. It is safe for concurrent
// use; decisions for one account are serialised.
type Signer struct {
	state  State
	store  *Store // the bbolt store, when state is one
	keys   KeyStore
	policy Policy
	opts   Options
	log    *slog.Logger
	v      verifier

	locks sync.Map      // nano.PublicKey → *sync.Mutex
	turns chan struct{} // one element per decision being computed
	// onWait, when set (by tests), is called when a decision has to wait
	// for a turn.
	onWait func()
}

// New returns a Signer over store, signing through keys under pol.
func New(store *Store, keys KeyStore, pol Policy, opts Options) *Signer {
	s := NewWithState(boltState{store}, keys, pol, opts)
	s.store = store
	return s
}

// NewWithState returns a Signer over st (a *PGStore, or a Store's State),
// signing through keys under pol.
func NewWithState(st State, keys KeyStore, pol Policy, opts Options) *Signer {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxIntentTTL <= 0 {
		opts.MaxIntentTTL = 24 * time.Hour
	}
	if opts.MaxDeciding <= 0 {
		opts.MaxDeciding = 2 * runtime.GOMAXPROCS(0)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Signer{state: st, keys: keys, policy: pol, opts: opts, log: log, turns: make(chan struct{}, opts.MaxDeciding)}
	// The verifier's reads are bounded by the store (a PGStore's
	// operation timeout), not by the request's context.
	s.v = verifier{
		epochSigners: pol.EpochSigners(),
		signedOn: func(a nano.PublicKey, prev nano.Hash) (*SignedBlock, error) {
			sb, ok, err := st.signedOn(context.Background(), a, prev)
			if err != nil || !ok {
				return nil, err
			}
			return &sb, nil
		},
		received: func(a nano.PublicKey, source nano.Hash) (bool, error) {
			return st.received(context.Background(), a, source)
		},
		recordsVerified: true,
	}
	return s
}

func (s *Signer) lock(a nano.PublicKey) func() {
	m, _ := s.locks.LoadOrStore(a, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// Sign verifies req, applies policy, records the decision durably and
// returns the signed block. A refusal is a *Refusal (also recorded in the
// audit chain); other errors are internal (the state file, the token) and
// nothing was signed or released.
func (s *Signer) Sign(ctx context.Context, req *pb.SignRequest) (resp *pb.SignResponse, err error) {
	repeat := false
	if s.opts.Observe != nil {
		start := time.Now()
		defer func() {
			decision, reason := outcome(err, DecisionSigned, DecisionRefused, DecisionFailed)
			if err == nil && repeat {
				reason = ReasonRepeat
			}
			s.opts.Observe(decision, reason, time.Since(start))
		}()
	}
	now := s.opts.Now()
	in, err := intent.Parse(req.GetIntent())
	if err != nil {
		return nil, s.refused(ctx, req, nil, nil, intentRefusal(req.GetIntent(), err), now)
	}
	digest := in.Digest()
	unlock := s.lock(in.Account)
	defer unlock()

	// The decision's computing (reads, verification, policy, the token's
	// signature) takes a turn; waiting for the commit does not.
	release, err := s.turn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	snap, err := s.state.read(ctx, in.RequestID, in.Account, now)
	if err != nil {
		return nil, fmt.Errorf("signer: reading request %s and its account: %w", in.RequestID, err)
	}
	// A request id already answered: the same intent gets the same answer.
	if snap.answered {
		release()
		if snap.stored.IntentDigest != digest {
			return nil, s.refused(ctx, req, &in, digest[:], refuse(rReused, "request id %q was used for another intent", in.RequestID), now)
		}
		if rel := snap.released; rel != nil {
			return nil, s.refused(ctx, req, &in, digest[:], refuse(rReleased,
				"block %s signed for request id %q was withdrawn by a release (audit record %d): the request id cannot be used again; submit a new request",
				rel.Block, in.RequestID, rel.AuditSeq), now)
		}
		repeat = true
		return snap.stored.Response, nil
	}
	d, r, err := s.decide(ctx, req, &in, digest, &snap, now)
	release()
	switch {
	case err != nil:
		return nil, err
	case r != nil:
		return nil, s.refused(ctx, req, &in, digest[:], r, now)
	}
	resp, r, err = s.commit(ctx, &in, d)
	switch {
	case err != nil:
		return nil, err
	case r != nil:
		return nil, s.refused(ctx, req, &in, digest[:], r, now)
	}
	return resp, nil
}

// turn waits until fewer than Options.MaxDeciding decisions are being
// computed, and returns the function that ends this one's turn (it may be
// called more than once).
func (s *Signer) turn(ctx context.Context) (func(), error) {
	select {
	case s.turns <- struct{}{}:
	default:
		if s.onWait != nil {
			s.onWait()
		}
		select {
		case s.turns <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	done := false
	return func() {
		if !done {
			done = true
			<-s.turns
		}
	}, nil
}

// outcome classifies err for Options.Observe: ok with reason "", a
// refusal with its reason name, or a failure with ReasonStoreFull,
// ReasonTokenUnavailable or ReasonInternal.
func outcome(err error, ok, refused, failed string) (decision, reason string) {
	var r *Refusal
	switch {
	case err == nil:
		return ok, ""
	case errors.As(err, &r):
		return refused, signerapi.ReasonName(r.Reason)
	case errors.Is(err, ErrStoreFull):
		return failed, ReasonStoreFull
	case errors.Is(err, ErrStoreUnavailable):
		return failed, ReasonStoreUnavailable
	case errors.Is(err, keystore.ErrTokenUnavailable):
		return failed, ReasonTokenUnavailable
	}
	return failed, ReasonInternal
}

// decide verifies a request not answered before against the state read
// in snap, applies policy and signs: it returns the decision to commit.
func (s *Signer) decide(ctx context.Context, req *pb.SignRequest, in *intent.Parsed, digest [32]byte, snap *snapshot, now time.Time) (*Decision, *Refusal, error) {
	if exp := time.Unix(in.ExpiresAtUnix, 0); !now.Before(exp) {
		return nil, refuse(rExpired, "the intent expired at %s", exp.UTC().Format(time.RFC3339)), nil
	} else if exp.Sub(now) > s.opts.MaxIntentTTL {
		return nil, refuse(rExpired, "the intent expires %s from now, more than the allowed %s", exp.Sub(now).Round(time.Second), s.opts.MaxIntentTTL), nil
	}
	approvers, r := s.checkApprovals(in, req.GetApprovals())
	if r != nil {
		return nil, r, nil
	}
	if !snap.tracked {
		return nil, refuse(rUnknownAccount, "account %s is not tracked by this signer", in.Account.Address()), nil
	}
	rec := snap.rec
	if rec.Unconfirmed {
		return nil, unconfirmedRefusal(&rec), nil
	}
	bl, r := decodeBlocks(req)
	if r != nil {
		return nil, r, nil
	}
	b, r := s.v.build(&rec, in, &bl)
	if r != nil {
		return nil, r, nil
	}
	preq := policy.Request{
		Account:               in.Account,
		Wallet:                rec.Wallet,
		Kind:                  in.Kind,
		Amount:                in.Amount,
		Destination:           in.Destination,
		Representative:        b.block.Representative,
		RepresentativeChanges: b.subtype == nano.SubtypeChange || b.subtype == nano.SubtypeOpen,
		Approvers:             approvers,
		Sent24h:               snap.sent,
	}
	if err := s.policy.Evaluate(preq); err != nil {
		var v *policy.Violation
		if errors.As(err, &v) {
			return nil, &Refusal{Reason: v.Reason, Detail: v.Detail}, nil
		}
		return nil, nil, fmt.Errorf("signer: evaluating policy: %w", err)
	}

	hash := b.block.Hash()
	// The key store signs only if the wallet's key is still this
	// account's (a wallet replaced under the same label is refused there).
	sig, err := s.keys.SignFor(ctx, rec.Wallet, rec.Index, in.Account, hash)
	if err != nil {
		return nil, nil, fmt.Errorf("signer: signing with wallet %q index %d: %w", rec.Wallet, rec.Index, err)
	}
	b.block.Signature = sig

	next := rec
	blk := b.block
	next.Frontier, next.FrontierHash = &blk, hash
	next.Prior = priorOf(&rec)
	if rec.Height > 0 {
		next.Height = rec.Height + 1
		if b.epochHead {
			next.Height++
		}
	} else if rec.Frontier == nil {
		next.Height = 1
	}
	d := &Decision{
		RequestID:    in.RequestID,
		IntentDigest: digest,
		Before:       rec.FrontierHash,
		Record:       next,
		Block:        b.block,
		Hash:         hash,
		Subtype:      b.subtype.String(),
		Sent:         b.sent,
		Time:         now,
	}
	if in.Kind == pb.IntentKind_INTENT_KIND_RECEIVE {
		d.Source = in.Source
	}
	return d, nil, nil
}

// commit records d durably and returns the response to release.
func (s *Signer) commit(ctx context.Context, in *intent.Parsed, d *Decision) (*pb.SignResponse, *Refusal, error) {
	resp, err := s.state.commitSigned(ctx, d)
	var r *Refusal
	if errors.As(err, &r) {
		return nil, r, nil // the record's frontier became unconfirmed
	}
	if errors.Is(err, errStale) {
		// Another decision got there first (the same request id through
		// another path, or the account moved): answer from the record.
		if stored, ok, rerr := s.state.request(ctx, in.RequestID); rerr == nil && ok && stored.IntentDigest == d.IntentDigest {
			return stored.Response, nil, nil
		}
		return nil, refuse(rNotFrontier, "the account's frontier changed while the request was decided; resend with the new head"), nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("signer: recording the decision: %w", err)
	}
	s.log.Info("signed", "request_id", in.RequestID, "account", in.Account.Address(),
		"subtype", d.Subtype, "hash", d.Hash.String(), "amount_raw", in.Amount.String(), "audit_seq", resp.GetAuditSeq())
	return resp, nil, nil
}

// checkApprovals verifies every approval over the intent and returns the
// names of the approvers.
func (s *Signer) checkApprovals(in *intent.Parsed, approvals []*pb.Approval) ([]string, *Refusal) {
	return s.checkApprovalsOver(in.Canonical(), approvals, "intent")
}

// intentRefusal is the refusal of an intent that does not parse, naming
// the field. A request id that is not valid is quoted (capped) in the
// detail: it is never recorded as a request id.
func intentRefusal(in *pb.Intent, err error) *Refusal {
	reason := rMalformed
	if errors.Is(err, intent.ErrAmount) {
		reason = rAmount
	}
	r := refuse(reason, "%v", err)
	var ie *intent.Error
	if errors.As(err, &ie) {
		r.Field = "intent"
		if ie.Field != "intent" {
			r.Field += "." + ie.Field
		}
		if ie.Field == "request_id" {
			r.Detail += " (got " + quoteInput(in.GetRequestId()) + ")"
		}
	}
	return r
}

// refused records r in the audit chain, logs it and returns it. The
// record holds the request id only when the intent parsed (in != nil) or
// failed on another field than the id: an id that is not valid (too long,
// not UTF-8, other characters) is never recorded as an id, only quoted in
// the detail. Every string recorded is valid UTF-8 and bounded.
func (s *Signer) refused(ctx context.Context, req *pb.SignRequest, in *intent.Parsed, digest []byte, r *Refusal, now time.Time) error {
	var id string
	var account []byte
	switch {
	case in != nil:
		id, account = in.RequestID, in.Account[:]
	case r.Field != "intent.request_id" && r.Field != "intent":
		// The intent failed on another field: its id passed the check.
		id = req.GetIntent().GetRequestId()
	}
	if in == nil {
		if a := req.GetIntent().GetAccount(); len(a) == nano.PublicKeySize {
			account = a
		}
	}
	r.Detail = boundedText(r.Detail, maxDetailLen)
	if err := s.state.recordRefusal(ctx, id, account, digest, r, now); err != nil {
		return fmt.Errorf("signer: recording a refusal (%v): %w", r, err)
	}
	// A parsed id is logged as it is (its characters are safe); an
	// unparsed one, quoted and capped.
	logged := id
	if in == nil {
		logged = quoteInput(req.GetIntent().GetRequestId())
	}
	s.log.Warn("refused", "request_id", logged, "reason", signerapi.ReasonName(r.Reason), "detail", r.Detail)
	return r
}

// Adopt starts tracking the account at index of wallet. head, when not
// nil, is its current head block: it must belong to the wallet's key and
// its signature must verify (or, for an epoch block, the epoch signer's).
func (s *Signer) Adopt(ctx context.Context, wallet string, index uint32, head *nano.StateBlock, height uint64) (AccountRecord, error) {
	return s.AdoptChain(ctx, wallet, index, head, nil, height)
}

// AdoptChain is Adopt, and also re-adopts an account whose frontier is
// unconfirmed (restored from a backup: readopt.go): head must then be the
// restored frontier or descend from it through chain (the blocks between,
// oldest first), each block signed; the record moves to head and is
// confirmed. A chain is refused for an account that is not unconfirmed.
func (s *Signer) AdoptChain(ctx context.Context, wallet string, index uint32, head *nano.StateBlock, chain []nano.StateBlock, height uint64) (_ AccountRecord, err error) {
	if s.opts.Observe != nil {
		start := time.Now()
		defer func() {
			decision, reason := outcome(err, DecisionAdopted, DecisionAdoptionFailed, DecisionAdoptionFailed)
			s.opts.Observe(decision, reason, time.Since(start))
		}()
	}
	defer func() {
		var r *Refusal
		if errors.As(err, &r) {
			s.log.Warn("adoption refused", "wallet", quoteInput(wallet), "index", index, "reason", signerapi.ReasonName(r.Reason), "detail", r.Detail)
		}
	}()
	if r := checkWallet(wallet); r != nil {
		return AccountRecord{}, r
	}
	pub, err := s.keys.PublicKey(ctx, wallet, index)
	if err != nil {
		var le *keystore.LabelError
		switch {
		case errors.Is(err, keystore.ErrWalletNotFound):
			r := refuse(rUnknownAccount, "wallet %q is not on the token", wallet)
			r.Field = "wallet"
			return AccountRecord{}, r
		case errors.As(err, &le):
			return AccountRecord{}, refuseField(rMalformed, "wallet", "%s", le.Reason)
		}
		return AccountRecord{}, fmt.Errorf("signer: deriving wallet %q index %d: %w", wallet, index, err)
	}
	unlock := s.lock(pub)
	defer unlock()
	cur, tracked, err := s.state.account(ctx, pub)
	if err != nil {
		return AccountRecord{}, fmt.Errorf("signer: reading account %s: %w", pub.Address(), err)
	}
	switch {
	case tracked && cur.Unconfirmed:
		return s.readopt(ctx, &cur, wallet, index, head, chain, height)
	case tracked:
		return AccountRecord{}, refuse(pb.RefusalReason_REFUSAL_REASON_ALREADY_TRACKED, "account %s is already tracked", pub.Address())
	case len(chain) > 0:
		return AccountRecord{}, refuseField(rMalformed, "chain", "only for re-adopting an account whose frontier is unconfirmed (restored from a backup); %s is not tracked", pub.Address())
	}
	rec := AccountRecord{Account: pub, Wallet: wallet, Index: index}
	if head != nil {
		if head.Account != pub {
			return AccountRecord{}, refuse(rMalformed, "head: belongs to %s, but wallet %q index %d is %s", head.Account.Address(), wallet, index, pub.Address())
		}
		h := head.Hash()
		if !s.v.verifyBlockSig(head, h) {
			return AccountRecord{}, refuse(rHeadSig, "the head's signature does not verify")
		}
		blk := *head
		rec.Frontier, rec.FrontierHash, rec.Height = &blk, h, height
	}
	if err := s.state.adopt(ctx, rec, s.opts.Now()); err != nil {
		return AccountRecord{}, err
	}
	s.log.Info("adopted", "account", pub.Address(), "wallet", wallet, "index", index, "head", rec.FrontierHash.String())
	return rec, nil
}

// readopt verifies and records the re-adoption of cur, an unconfirmed
// record; the caller holds the account's lock.
func (s *Signer) readopt(ctx context.Context, cur *AccountRecord, wallet string, index uint32, head *nano.StateBlock, chain []nano.StateBlock, height uint64) (AccountRecord, error) {
	p, r := s.planReadopt(cur, wallet, index, head, chain, height)
	if r != nil {
		return AccountRecord{}, r
	}
	err := s.state.readopt(ctx, p, s.opts.Now())
	if errors.Is(err, errStale) {
		return AccountRecord{}, refuse(rNotFrontier, "the record of %s changed while it was re-adopted: look at it again (nanokms signer accounts)", cur.Account.Address())
	}
	if err != nil {
		return AccountRecord{}, err
	}
	s.log.Info("re-adopted", "account", cur.Account.Address(), "wallet", wallet, "index", index,
		"head", p.rec.FrontierHash.String(), "restored_frontier", cur.FrontierHash.String(), "height", p.rec.Height)
	return p.rec, nil
}

// Account returns the record of account a.
func (s *Signer) Account(a nano.PublicKey) (AccountRecord, bool, error) {
	return s.state.account(context.Background(), a)
}

// Accounts returns every tracked account.
func (s *Signer) Accounts() ([]AccountRecord, error) { return s.state.accounts(context.Background()) }

// Sent returns what a sent in the last 24 hours.
func (s *Signer) Sent(a nano.PublicKey) (nano.Amount, error) {
	return s.state.sent(context.Background(), a, s.opts.Now())
}

// Store returns the signer's bbolt state store, or nil when it decides
// through another State (NewWithState).
func (s *Signer) Store() *Store { return s.store }

// State returns the state the signer decides through.
func (s *Signer) State() State { return s.state }
