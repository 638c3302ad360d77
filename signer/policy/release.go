package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nanokms/nanokms/nano"
	nanokmsv1 "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// ReleaseRequest is what EvaluateRelease decides on: the withdrawal of an
// account's recorded frontier. As for Request, the signer has verified
// every approval over the release statement, and Approvers names each
// approver whose signature verified, once.
type ReleaseRequest struct {
	Account nano.PublicKey
	// Wallet is the name of the wallet the account belongs to ("" if none).
	Wallet string
	// Approvers are the names of the distinct approvers whose signatures
	// over the release statement verified.
	Approvers []string
}

// EvaluateRelease reports whether policy allows a release: nil if it
// does, otherwise a *Violation. The account must be in a group (else
// POLICY_DENIED), and a release needs the approvals of the group's last
// tier, the one with no upper bound that the largest sends need (else
// APPROVALS_MISSING): withdrawing a recorded frontier is as dangerous as
// the largest send, since a mistaken release forks the account
// (docs/OPERATIONS.md). receive_automatic does not apply. EvaluateRelease
// does not modify c or r.
func (c *Config) EvaluateRelease(r ReleaseRequest) error {
	g, ok := c.GroupFor(r.Account, r.Wallet)
	if !ok {
		return violation(nanokmsv1.RefusalReason_REFUSAL_REASON_POLICY_DENIED,
			"account %s is in no policy group", r.Account.Address())
	}
	if len(g.Tiers) == 0 {
		return violation(nanokmsv1.RefusalReason_REFUSAL_REASON_POLICY_DENIED, "group %q has no tier", g.Name)
	}
	i := len(g.Tiers) - 1
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
		detail := fmt.Sprintf("a release needs group %q's last tier (tiers[%d]): %d of {%s} required, %d given",
			g.Name, i, t.Quorum, strings.Join(t.Approvers, ", "), len(given))
		if len(others) > 0 {
			detail += fmt.Sprintf("; approvals by {%s} do not count for this tier", strings.Join(others, ", "))
		}
		return violation(nanokmsv1.RefusalReason_REFUSAL_REASON_APPROVALS_MISSING, "%s", detail)
	}
	return nil
}
