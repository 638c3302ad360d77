package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nanokms/nanokms/nano"
	nanokmsv1 "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Request is what Evaluate decides on. The signer builds it after verifying
// the intent and its approvals: it has refused unknown approver keys,
// duplicated approvers and invalid signatures, and Approvers names every
// approver whose signature verified, once each.
type Request struct {
	Account nano.PublicKey
	// Wallet is the name of the wallet the account belongs to ("" if none).
	Wallet string
	Kind   nanokmsv1.IntentKind
	// Amount is the amount sent or received; zero for a change.
	Amount nano.Amount
	// Destination is the account paid by a send.
	Destination nano.PublicKey
	// Representative is the block's representative: the new one for a
	// change, the first one for an open.
	Representative nano.PublicKey
	// RepresentativeChanges is true for a change and for an open (a
	// receive into an unopened account).
	RepresentativeChanges bool
	// Approvers are the names of the distinct approvers whose signatures
	// over the intent verified.
	Approvers []string
	// Sent24h is the total the account sent in the last 24 hours, before
	// this request.
	Sent24h nano.Amount
}

// Violation is a request that policy refuses. Reason is what the signer
// returns; Detail says which rule and values, in words, and never holds
// secret material (only names, accounts and amounts from the
// configuration and the request).
type Violation struct {
	Reason nanokmsv1.RefusalReason
	Detail string
}

// Error returns "policy: REASON: detail", the reason without its
// "REFUSAL_REASON_" prefix.
func (v *Violation) Error() string {
	return "policy: " + strings.TrimPrefix(v.Reason.String(), "REFUSAL_REASON_") + ": " + v.Detail
}

func violation(reason nanokmsv1.RefusalReason, format string, args ...any) *Violation {
	return &Violation{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Evaluate reports whether policy allows r: nil if it does, otherwise a
// *Violation for the first rule r breaks. A kind other than send, receive
// or change is refused first (MALFORMED); then the rules are checked in
// this order (docs/CONFIG.md has the same table):
//
//  1. group: the account is in a group (else POLICY_DENIED);
//  2. limit, sends only: the amount is at most max_send (else
//     LIMIT_EXCEEDED);
//  3. velocity, sends only: Sent24h + amount is at most velocity_24h (else
//     VELOCITY_EXCEEDED; a sum of 2^128 raw or more counts as exceeded);
//  4. allowlists: a send's destination is in destinations (else
//     DESTINATION_NOT_ALLOWED); when RepresentativeChanges, the
//     representative is in representatives (else
//     REPRESENTATIVE_NOT_ALLOWED); an empty list allows any;
//  5. approvals: a receive in a group with receive_automatic needs none.
//     Otherwise the tier is the first one for a change, and for a send or
//     receive the first tier whose up_to is at least the amount (or the
//     last, unbounded, tier). At least quorum of r.Approvers must be in
//     the tier's approvers list (else APPROVALS_MISSING, whose detail
//     reads like `2 of {alice, bob, carol} required, 1 given`); approvers
//     not in the list do not count, and a name counts once.
//
// Evaluate does not modify c or r. A Config not read from a file (by
// package signerconf, which checks it) fails closed:
// a group with no tier for the amount is POLICY_DENIED.
func (c *Config) Evaluate(r Request) error {
	switch r.Kind {
	case nanokmsv1.IntentKind_INTENT_KIND_SEND, nanokmsv1.IntentKind_INTENT_KIND_RECEIVE, nanokmsv1.IntentKind_INTENT_KIND_CHANGE:
	default:
		return violation(nanokmsv1.RefusalReason_REFUSAL_REASON_MALFORMED, "intent kind %s is not send, receive or change", r.Kind)
	}

	g, ok := c.GroupFor(r.Account, r.Wallet)
	if !ok {
		where := "is in no wallet"
		if r.Wallet != "" {
			where = fmt.Sprintf("of wallet %q", r.Wallet)
		}
		return violation(nanokmsv1.RefusalReason_REFUSAL_REASON_POLICY_DENIED,
			"account %s (%s) is in no policy group", r.Account.Address(), where)
	}

	send := r.Kind == nanokmsv1.IntentKind_INTENT_KIND_SEND
	if send && g.MaxSend != nil && r.Amount.Cmp(*g.MaxSend) > 0 {
		return violation(nanokmsv1.RefusalReason_REFUSAL_REASON_LIMIT_EXCEEDED,
			"send of %s is more than group %q allows in one send (max_send %s)", xno(r.Amount), g.Name, xno(*g.MaxSend))
	}
	if send && g.Velocity24h != nil {
		total, err := r.Sent24h.Add(r.Amount)
		if err != nil || total.Cmp(*g.Velocity24h) > 0 {
			return violation(nanokmsv1.RefusalReason_REFUSAL_REASON_VELOCITY_EXCEEDED,
				"send of %s after %s sent in the last 24 hours is more than group %q allows (velocity_24h %s)",
				xno(r.Amount), xno(r.Sent24h), g.Name, xno(*g.Velocity24h))
		}
	}
	if send && len(g.Destinations) > 0 && !slices.Contains(g.Destinations, r.Destination) {
		return violation(nanokmsv1.RefusalReason_REFUSAL_REASON_DESTINATION_NOT_ALLOWED,
			"destination %s is not in group %q's destinations", r.Destination.Address(), g.Name)
	}
	if r.RepresentativeChanges && len(g.Representatives) > 0 && !slices.Contains(g.Representatives, r.Representative) {
		return violation(nanokmsv1.RefusalReason_REFUSAL_REASON_REPRESENTATIVE_NOT_ALLOWED,
			"representative %s is not in group %q's representatives", r.Representative.Address(), g.Name)
	}

	if r.Kind == nanokmsv1.IntentKind_INTENT_KIND_RECEIVE && g.ReceiveAutomatic {
		return nil
	}
	i := g.tierFor(r.Kind, r.Amount)
	if i < 0 {
		return violation(nanokmsv1.RefusalReason_REFUSAL_REASON_POLICY_DENIED, "group %q has no tier for %s", g.Name, xno(r.Amount))
	}
	t := &g.Tiers[i]
	var given, others []string
	for _, name := range r.Approvers {
		switch {
		case slices.Contains(given, name) || slices.Contains(others, name):
		case slices.Contains(t.Approvers, name):
			given = append(given, name)
		default:
			others = append(others, name)
		}
	}
	if len(given) < t.Quorum {
		detail := fmt.Sprintf("group %q tiers[%d] (%s): %d of {%s} required, %d given",
			g.Name, i, g.tierRange(i, r.Kind), t.Quorum, strings.Join(t.Approvers, ", "), len(given))
		if len(others) > 0 {
			detail += fmt.Sprintf("; approvals by {%s} do not count for this tier", strings.Join(others, ", "))
		}
		return violation(nanokmsv1.RefusalReason_REFUSAL_REASON_APPROVALS_MISSING, "%s", detail)
	}
	return nil
}

// tierFor returns the index of the tier that applies to an intent of kind
// with amount, or -1 if there is none (never for a Group read from a file, whose
// last tier is unbounded).
func (g *Group) tierFor(kind nanokmsv1.IntentKind, amount nano.Amount) int {
	if len(g.Tiers) == 0 {
		return -1
	}
	if kind == nanokmsv1.IntentKind_INTENT_KIND_CHANGE {
		return 0
	}
	for i, t := range g.Tiers {
		if t.UpTo == nil || amount.Cmp(*t.UpTo) <= 0 {
			return i
		}
	}
	return -1
}

// tierRange describes the amounts tier i covers, for a detail message.
func (g *Group) tierRange(i int, kind nanokmsv1.IntentKind) string {
	if kind == nanokmsv1.IntentKind_INTENT_KIND_CHANGE {
		return "the first tier, which changes use"
	}
	t := g.Tiers[i]
	switch {
	case t.UpTo != nil:
		return "up to " + xno(*t.UpTo)
	case i > 0 && g.Tiers[i-1].UpTo != nil:
		return "above " + xno(*g.Tiers[i-1].UpTo)
	}
	return "any amount"
}

func xno(a nano.Amount) string { return a.XNO() + " XNO" }
