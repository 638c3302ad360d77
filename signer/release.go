package signer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/policy"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// Short names for the refusal reasons of releases.
const (
	rReleaseMismatch = pb.RefusalReason_REFUSAL_REASON_RELEASE_MISMATCH
	rReleased        = pb.RefusalReason_REFUSAL_REASON_RELEASED
)

// DecisionReleased is the audit decision of a release, and the decision
// reported to Options.Observe for it; DecisionReleaseFailed is reported
// for a release refused (reason: the refusal's signerapi.ReasonName) or failed
// (ReasonInternal). A refused release is recorded in the audit chain as
// DecisionRefused.
const (
	DecisionReleased      = "released"
	DecisionReleaseFailed = "release_failed"
)

// PriorFrontier is the frontier an account record had before its current
// one, kept so that a release can return to it.
type PriorFrontier struct {
	Block  nano.StateBlock `json:"block"`
	Hash   nano.Hash       `json:"hash"`
	Height uint64          `json:"height"`
}

// priorOf returns rec's frontier as the prior of the next record (nil for
// an unopened account).
func priorOf(rec *AccountRecord) *PriorFrontier {
	if rec.Frontier == nil {
		return nil
	}
	return &PriorFrontier{Block: *rec.Frontier, Hash: rec.FrontierHash, Height: rec.Height}
}

// releasePlan is a verified withdrawal of an account's recorded frontier.
type releasePlan struct {
	rec       AccountRecord // the record now
	withdrawn SignedBlock   // its frontier, as signed, with its request id
	restored  AccountRecord // the record after the release
	subtype   string        // the withdrawn block's subtype, as answered
}

// ReleaseResult is what a release did.
type ReleaseResult struct {
	// Record is the account's record after the release.
	Record AccountRecord
	// RequestID is the request whose block was withdrawn.
	RequestID string
	// AuditSeq is the release's audit record.
	AuditSeq uint64
}

// PrepareRelease returns the release statement that would withdraw
// block, the recorded frontier of account, with the given expiry. It
// changes nothing. previous is the block before the withdrawn one, needed
// only when the signer has no record of it (see ReleaseRequest). A
// refusal is a *Refusal; it is not recorded.
func (s *Signer) PrepareRelease(account nano.PublicKey, block nano.Hash, expiresAtUnix int64, previous *pb.Block) (*pb.ReleaseStatement, error) {
	unlock := s.lock(account)
	defer unlock()
	if r := s.checkReleaseExpiry(expiresAtUnix, s.opts.Now()); r != nil {
		return nil, r
	}
	plan, r, err := s.planRelease(context.Background(), account, block, previous)
	if err != nil {
		return nil, err
	}
	if r != nil {
		return nil, r
	}
	st := intent.Release{Account: account, Block: block, Frontier: plan.restored.FrontierHash,
		Balance: plan.restored.Balance(), ExpiresAtUnix: expiresAtUnix}
	return st.Statement(), nil
}

// Release verifies req (the statement, its approvals, the record) and
// withdraws the account's recorded frontier. A refusal is a *Refusal,
// recorded in the audit chain; other errors are internal and nothing
// changed.
func (s *Signer) Release(ctx context.Context, req *pb.ReleaseRequest) (res ReleaseResult, err error) {
	if s.opts.Observe != nil {
		start := time.Now()
		defer func() {
			decision, reason := outcome(err, DecisionReleased, DecisionReleaseFailed, DecisionReleaseFailed)
			s.opts.Observe(decision, reason, time.Since(start))
		}()
	}
	if err := ctx.Err(); err != nil {
		return ReleaseResult{}, err
	}
	now := s.opts.Now()
	st, err := intent.ParseRelease(req.GetStatement())
	if err != nil {
		return ReleaseResult{}, s.releaseRefused(ctx, req.GetStatement().GetAccount(), nil, refuse(rMalformed, "%v", err), now)
	}
	digest := st.Digest()
	unlock := s.lock(st.Account)
	defer unlock()

	res, r, err := s.release(ctx, req, &st, digest, now)
	switch {
	case err != nil:
		return ReleaseResult{}, err
	case r != nil:
		return ReleaseResult{}, s.releaseRefused(ctx, st.Account[:], digest[:], r, now)
	}
	s.log.Warn("released", "account", st.Account.Address(), "withdrawn", st.Block.String(),
		"request_id", res.RequestID, "frontier", st.Frontier.String(), "balance_raw", st.Balance.String(), "audit_seq", res.AuditSeq)
	return res, nil
}

// release decides and commits a parsed release statement; the caller
// holds the account's lock.
func (s *Signer) release(ctx context.Context, req *pb.ReleaseRequest, st *intent.Release, digest [32]byte, now time.Time) (ReleaseResult, *Refusal, error) {
	if seq, ok, err := s.state.releaseApplied(ctx, digest); err != nil {
		return ReleaseResult{}, nil, fmt.Errorf("signer: reading the releases applied: %w", err)
	} else if ok {
		return ReleaseResult{}, refuse(rReleaseMismatch, "this release statement was already applied (audit record %d)", seq), nil
	}
	if r := s.checkReleaseExpiry(st.ExpiresAtUnix, now); r != nil {
		return ReleaseResult{}, r, nil
	}
	approvers, r := s.checkApprovalsOver(st.Canonical(), req.GetApprovals(), "release statement")
	if r != nil {
		return ReleaseResult{}, r, nil
	}
	plan, r, err := s.planRelease(ctx, st.Account, st.Block, req.GetPrevious())
	if err != nil || r != nil {
		return ReleaseResult{}, r, err
	}
	if st.Frontier != plan.restored.FrontierHash || st.Balance != plan.restored.Balance() {
		return ReleaseResult{}, refuse(rReleaseMismatch, "the statement returns to %s with %s raw, but the frontier before %s is %s with %s raw",
			frontierName(st.Frontier), st.Balance, st.Block, frontierName(plan.restored.FrontierHash), plan.restored.Balance()), nil
	}
	if err := s.policy.EvaluateRelease(policy.ReleaseRequest{Account: st.Account, Wallet: plan.rec.Wallet, Approvers: approvers}); err != nil {
		var v *policy.Violation
		if errors.As(err, &v) {
			return ReleaseResult{}, &Refusal{Reason: v.Reason, Detail: v.Detail}, nil
		}
		return ReleaseResult{}, nil, fmt.Errorf("signer: evaluating policy: %w", err)
	}
	detail := fmt.Sprintf("withdrew %s %s of request %q; frontier back to %s, balance %s raw; approved by %s",
		plan.subtype, st.Block, plan.withdrawn.RequestID, frontierName(st.Frontier), st.Balance, strings.Join(approvers, ", "))
	seq, err := s.state.commitRelease(ctx, plan, digest, detail, now)
	if errors.Is(err, errStale) {
		return ReleaseResult{}, refuse(rReleaseMismatch, "the account's record changed while the release was decided: prepare the statement again"), nil
	}
	if err != nil {
		return ReleaseResult{}, nil, fmt.Errorf("signer: recording the release: %w", err)
	}
	return ReleaseResult{Record: plan.restored, RequestID: plan.withdrawn.RequestID, AuditSeq: seq}, nil, nil
}

// frontierName is a frontier hash in words ("unopened" for zero).
func frontierName(h nano.Hash) string {
	if h.IsZero() {
		return "unopened"
	}
	return h.String()
}

// checkReleaseExpiry refuses an expiry in the past or further ahead than
// Options.MaxIntentTTL.
func (s *Signer) checkReleaseExpiry(expiresAtUnix int64, now time.Time) *Refusal {
	exp := time.Unix(expiresAtUnix, 0)
	switch {
	case expiresAtUnix <= 0:
		return refuse(rMalformed, "expires_at_unix: must be a positive Unix time")
	case !now.Before(exp):
		return refuse(rExpired, "the release statement expired at %s", exp.UTC().Format(time.RFC3339))
	case exp.Sub(now) > s.opts.MaxIntentTTL:
		return refuse(rExpired, "the release statement expires %s from now, more than the allowed %s", exp.Sub(now).Round(time.Second), s.opts.MaxIntentTTL)
	}
	return nil
}

// planRelease checks that block is account's recorded frontier, signed by
// this signer with nothing on top, and works out the record to return to.
func (s *Signer) planRelease(ctx context.Context, account nano.PublicKey, block nano.Hash, previous *pb.Block) (*releasePlan, *Refusal, error) {
	rec, ok, err := s.state.account(ctx, account)
	if err != nil {
		return nil, nil, fmt.Errorf("signer: reading account %s: %w", account.Address(), err)
	}
	if !ok {
		return nil, refuse(rUnknownAccount, "account %s is not tracked by this signer", account.Address()), nil
	}
	if rec.Frontier == nil {
		return nil, refuse(rNotFrontier, "account %s has no blocks on record: there is nothing to release", account.Address()), nil
	}
	if top, ok, err := s.state.signedOn(ctx, account, block); err != nil {
		return nil, nil, fmt.Errorf("signer: reading the blocks signed on %s: %w", block, err)
	} else if ok {
		return nil, refuse(rNotFrontier, "block %s was signed on top of %s: only the recorded frontier can be released", top.Hash, block), nil
	}
	if rec.FrontierHash != block {
		return nil, refuse(rNotFrontier, "block %s is not the recorded frontier %s of %s: only the recorded frontier can be released", block, rec.FrontierHash, account.Address()), nil
	}
	sb, ok, err := s.state.signedOn(ctx, account, rec.Frontier.Previous)
	if err != nil {
		return nil, nil, fmt.Errorf("signer: reading the blocks signed on %s: %w", rec.Frontier.Previous, err)
	}
	if !ok || sb.Hash != rec.FrontierHash {
		return nil, refuse(rReleaseMismatch, "the frontier %s was adopted, not signed by this signer: there is nothing to withdraw", block), nil
	}
	stored, ok, err := s.state.request(ctx, sb.RequestID)
	if err != nil || !ok {
		return nil, nil, fmt.Errorf("signer: the answer to request %q, which signed %s, is missing or unreadable: %v", sb.RequestID, block, err)
	}
	plan := &releasePlan{rec: rec, withdrawn: sb, subtype: stored.Response.GetSubtype()}
	restored := rec
	restored.Prior = nil
	switch {
	case rec.Frontier.Previous.IsZero():
		restored.Frontier, restored.FrontierHash, restored.Height = nil, nano.Hash{}, 0
	case rec.Prior != nil:
		blk := rec.Prior.Block
		restored.Frontier, restored.FrontierHash, restored.Height = &blk, rec.Prior.Hash, rec.Prior.Height
	case previous != nil:
		blk, r := s.checkReleasePrevious(&rec, previous)
		if r != nil {
			return nil, r, nil
		}
		restored.Frontier, restored.FrontierHash = &blk, rec.Frontier.Previous
		restored.Height = 0
		if rec.Height > 1 {
			restored.Height = rec.Height - 1
		}
	default:
		return nil, refuse(rReleaseMismatch, "the signer has no record of the frontier before %s (recorded by an older nanokms, or restored by a release): give that block, %s, signed (previous)",
			block, rec.Frontier.Previous), nil
	}
	plan.restored = restored
	return plan, nil, nil
}

// checkReleasePrevious verifies a block given as the frontier before rec's:
// it hashes to the frontier's previous, belongs to the account and is
// signed by it (or, for an epoch block, by an epoch signer).
func (s *Signer) checkReleasePrevious(rec *AccountRecord, previous *pb.Block) (nano.StateBlock, *Refusal) {
	b, err := previous.ToNano("previous")
	if err != nil {
		return nano.StateBlock{}, refuse(rMalformed, "%v", err)
	}
	h := b.Hash()
	switch {
	case h != rec.Frontier.Previous:
		return nano.StateBlock{}, refuse(rReleaseMismatch, "previous: hashes to %s, not to the withdrawn block's previous %s", h, rec.Frontier.Previous)
	case b.Account != rec.Account:
		return nano.StateBlock{}, refuse(rMalformed, "previous: belongs to %s, not to %s", b.Account.Address(), rec.Account.Address())
	case !s.v.verifyBlockSig(&b, h):
		return nano.StateBlock{}, refuse(rHeadSig, "previous: the block's signature does not verify under the account key")
	}
	return b, nil
}

// checkApprovalsOver verifies every approval over msg (the canonical bytes
// of what) and returns the names of the approvers.
func (s *Signer) checkApprovalsOver(msg []byte, approvals []*pb.Approval, what string) ([]string, *Refusal) {
	seen := make(map[string]bool, len(approvals))
	names := make([]string, 0, len(approvals))
	for i, a := range approvals {
		if len(a.GetPublicKey()) != 32 || len(a.GetSignature()) != 64 {
			return nil, refuse(rMalformed, "approvals[%d]: key or signature has the wrong size", i)
		}
		name, ok := s.policy.ApproverByKey(a.GetPublicKey())
		if !ok {
			return nil, refuse(rApproverUnknown, "approvals[%d]: key %X is not a configured approver", i, a.GetPublicKey())
		}
		if seen[name] {
			return nil, refuse(rApprovalDup, "approvals[%d]: approver %q appears twice", i, name)
		}
		seen[name] = true
		if !intent.VerifyApproval(msg, a) {
			return nil, refuse(rApprovalInvalid, "approvals[%d]: approver %q's signature is not over this %s", i, name, what)
		}
		names = append(names, name)
	}
	return names, nil
}

// releaseRefused records a refused release in the audit chain, logs it
// and returns it.
func (s *Signer) releaseRefused(ctx context.Context, account, digest []byte, r *Refusal, now time.Time) error {
	if len(account) != nano.PublicKeySize {
		account = nil
	}
	r.Detail = "release: " + r.Detail
	if err := s.state.recordRefusal(ctx, "", account, digest, r, now); err != nil {
		return fmt.Errorf("signer: recording a refusal (%v): %w", r, err)
	}
	s.log.Warn("release refused", "reason", signerapi.ReasonName(r.Reason), "detail", r.Detail)
	return r
}
