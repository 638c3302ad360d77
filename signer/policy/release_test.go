package policy

import (
	"testing"

	"github.com/nanokms/nanokms/nano"
	nanokmsv1 "github.com/nanokms/nanokms/proto/nanokms/v1"
)

func TestEvaluateRelease(t *testing.T) {
	cfg := MustParse(t, MustReadFile(t, "policy.toml"))
	hot := func(names ...string) ReleaseRequest {
		return ReleaseRequest{Account: MustAccount(t, acctExtra), Wallet: "treasury", Approvers: names}
	}
	cold := func(names ...string) ReleaseRequest {
		return ReleaseRequest{Account: MustAccount(t, acctCold), Approvers: names}
	}
	tests := []struct {
		name   string
		req    ReleaseRequest
		reason nanokmsv1.RefusalReason
		detail string
	}{
		// "hot": the last tier is 3 of {alice, bob, carol}; receive_automatic does not apply.
		{"hot, all three", hot("alice", "bob", "carol"), allowed, ""},
		{"hot, two of three", hot("alice", "carol"), approvalsMissing, `a release needs group "hot"'s last tier (tiers[2]): 3 of {alice, bob, carol} required, 2 given`},
		{"hot, none", hot(), approvalsMissing, "0 given"},
		{"hot, the first tier's approver does not count", hot("service", "alice", "bob"), approvalsMissing, "2 given; approvals by {service} do not count for this tier"},
		{"hot, a name counts once", hot("alice", "alice", "alice"), approvalsMissing, "1 given"},
		// "cold": the last tier is 2 of {alice, bob, carol}.
		{"cold, two", cold("bob", "carol"), allowed, ""},
		{"cold, one", cold("bob"), approvalsMissing, `group "cold"'s last tier (tiers[1]): 2 of {alice, bob, carol} required, 1 given`},
		{"no group", ReleaseRequest{Account: MustAccount(t, acctExtra), Approvers: []string{"alice", "bob", "carol"}}, denied, "is in no policy group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantDecision(t, cfg.EvaluateRelease(tt.req), tt.reason, tt.detail)
		})
	}
	acct := MustAccount(t, acctCold)
	hand := &Config{Groups: []Group{{Name: "none", Accounts: []nano.PublicKey{acct}}}}
	wantDecision(t, hand.EvaluateRelease(ReleaseRequest{Account: acct, Approvers: []string{"alice"}}), denied, "has no tier")
}
