package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/nano"
	nanokmsv1 "github.com/nanokms/nanokms/proto/nanokms/v1"
)

const (
	send    = nanokmsv1.IntentKind_INTENT_KIND_SEND
	receive = nanokmsv1.IntentKind_INTENT_KIND_RECEIVE
	change  = nanokmsv1.IntentKind_INTENT_KIND_CHANGE

	allowed             = nanokmsv1.RefusalReason_REFUSAL_REASON_UNSPECIFIED
	malformed           = nanokmsv1.RefusalReason_REFUSAL_REASON_MALFORMED
	denied              = nanokmsv1.RefusalReason_REFUSAL_REASON_POLICY_DENIED
	limitExceeded       = nanokmsv1.RefusalReason_REFUSAL_REASON_LIMIT_EXCEEDED
	velocityExceeded    = nanokmsv1.RefusalReason_REFUSAL_REASON_VELOCITY_EXCEEDED
	destinationRefused  = nanokmsv1.RefusalReason_REFUSAL_REASON_DESTINATION_NOT_ALLOWED
	representativeRefus = nanokmsv1.RefusalReason_REFUSAL_REASON_REPRESENTATIVE_NOT_ALLOWED
	approvalsMissing    = nanokmsv1.RefusalReason_REFUSAL_REASON_APPROVALS_MISSING
)

// plusRaw returns a + n raw.
func plusRaw(t *testing.T, a nano.Amount, n uint64) nano.Amount {
	t.Helper()
	s, err := a.Add(nano.AmountFromUint64(n))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantDecision checks Evaluate's answer: nil for allowed, else a *Violation
// with reason whose Detail contains detail.
func wantDecision(t *testing.T, err error, reason nanokmsv1.RefusalReason, detail string) {
	t.Helper()
	if reason == allowed {
		if err != nil {
			t.Fatalf("Evaluate = %v, want allowed", err)
		}
		return
	}
	var v *Violation
	if !errors.As(err, &v) {
		t.Fatalf("Evaluate = %v (%T), want a *Violation %s", err, err, reason)
	}
	if v.Reason != reason {
		t.Fatalf("reason %s, want %s (%v)", v.Reason, reason, err)
	}
	if !strings.Contains(v.Detail, detail) {
		t.Errorf("detail %q does not contain %q", v.Detail, detail)
	}
	if want := "policy: " + strings.TrimPrefix(reason.String(), "REFUSAL_REASON_") + ": " + v.Detail; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

func TestEvaluate(t *testing.T) {
	cfg := MustParse(t, MustReadFile(t, "policy.toml"))
	hot := func(r Request) Request { // an account of wallet "treasury"
		r.Account, r.Wallet = MustAccount(t, acctExtra), "treasury"
		return r
	}
	cold := func(r Request) Request {
		r.Account = MustAccount(t, acctCold)
		return r
	}
	xno := func(s string) nano.Amount { return MustAmount(t, s+" XNO") }
	a, b := MustAccount(t, destA), MustAccount(t, destB)
	elsewhere := MustAccount(t, rep2)
	r1 := MustAccount(t, rep1)
	all := []string{"alice", "bob", "carol"}

	tests := []struct {
		name   string
		req    Request
		reason nanokmsv1.RefusalReason
		detail string
	}{
		// Kind and group.
		{"unknown kind", hot(Request{Kind: nanokmsv1.IntentKind_INTENT_KIND_UNSPECIFIED}), malformed, "not send, receive or change"},
		{"no group", Request{Account: MustAccount(t, acctExtra), Kind: send, Amount: xno("1"), Destination: a, Approvers: []string{"service"}}, denied, "is in no wallet) is in no policy group"},
		{"unknown wallet", Request{Account: MustAccount(t, acctExtra), Wallet: "other", Kind: receive, Amount: xno("1")}, denied, `of wallet "other"`},

		// max_send: 100 XNO.
		{"send at max_send", hot(Request{Kind: send, Amount: xno("100"), Destination: a, Approvers: all}), allowed, ""},
		{"send one raw above max_send", hot(Request{Kind: send, Amount: plusRaw(t, xno("100"), 1), Destination: a, Approvers: all}), limitExceeded, "max_send 100 XNO"},
		{"limit before velocity", hot(Request{Kind: send, Amount: xno("101"), Sent24h: xno("1000"), Destination: elsewhere}), limitExceeded, ""},
		{"receive above max_send", hot(Request{Kind: receive, Amount: xno("5000")}), allowed, ""},

		// velocity_24h: 1000 XNO.
		{"velocity at the limit", hot(Request{Kind: send, Amount: xno("100"), Sent24h: xno("900"), Destination: a, Approvers: all}), allowed, ""},
		{"velocity one raw above", hot(Request{Kind: send, Amount: xno("100"), Sent24h: plusRaw(t, xno("900"), 1), Destination: a, Approvers: all}), velocityExceeded, "after 900.000000000000000000000000000001 XNO sent"},
		{"velocity already full", hot(Request{Kind: send, Amount: nano.AmountFromUint64(1), Sent24h: xno("1000"), Destination: a, Approvers: all}), velocityExceeded, "velocity_24h 1000 XNO"},
		{"velocity overflow", hot(Request{Kind: send, Amount: xno("1"), Sent24h: nano.MaxAmount, Destination: a, Approvers: all}), velocityExceeded, ""},
		{"velocity before destination", hot(Request{Kind: send, Amount: xno("1"), Sent24h: xno("1000"), Destination: elsewhere}), velocityExceeded, ""},
		{"receives do not count", hot(Request{Kind: receive, Amount: xno("1"), Sent24h: xno("1000")}), allowed, ""},

		// Destinations.
		{"destination allowed", hot(Request{Kind: send, Amount: xno("1"), Destination: b, Approvers: []string{"service"}}), allowed, ""},
		{"destination refused", hot(Request{Kind: send, Amount: xno("1"), Destination: elsewhere, Approvers: []string{"service"}}), destinationRefused, rep2},
		{"destination before approvals", hot(Request{Kind: send, Amount: xno("1"), Destination: elsewhere}), destinationRefused, ""},
		{"no destination list", cold(Request{Kind: send, Amount: xno("1"), Destination: elsewhere, Approvers: []string{"alice", "bob"}}), allowed, ""},

		// Representatives.
		{"change to an allowed representative", hot(Request{Kind: change, Representative: r1, RepresentativeChanges: true, Approvers: []string{"service"}}), allowed, ""},
		{"change to another representative", hot(Request{Kind: change, Representative: elsewhere, RepresentativeChanges: true, Approvers: []string{"service"}}), representativeRefus, rep2},
		{"open with another representative", hot(Request{Kind: receive, Amount: xno("1"), Representative: elsewhere, RepresentativeChanges: true}), representativeRefus, ""},
		{"representative before approvals", hot(Request{Kind: change, Representative: elsewhere, RepresentativeChanges: true}), representativeRefus, ""},
		{"receive keeping the representative", hot(Request{Kind: receive, Amount: xno("1"), Representative: elsewhere}), allowed, ""},
		{"no representative list", cold(Request{Kind: change, Representative: elsewhere, RepresentativeChanges: true, Approvers: []string{"bob"}}), allowed, ""},

		// Tiers of "hot": ≤ 10 XNO 1 of {service}; ≤ 50 XNO 2 of {alice, bob, carol}; above 3 of them.
		{"tier 0 at its bound", hot(Request{Kind: send, Amount: xno("10"), Destination: a, Approvers: []string{"service"}}), allowed, ""},
		{"tier 0 one raw", hot(Request{Kind: send, Amount: nano.AmountFromUint64(1), Destination: a, Approvers: []string{"service"}}), allowed, ""},
		{"tier 0 without approval", hot(Request{Kind: send, Amount: xno("10"), Destination: a}), approvalsMissing, `group "hot" tiers[0] (up to 10 XNO): 1 of {service} required, 0 given`},
		{"tier 1 one raw above tier 0", hot(Request{Kind: send, Amount: plusRaw(t, xno("10"), 1), Destination: a, Approvers: []string{"service"}}), approvalsMissing, "2 of {alice, bob, carol} required, 0 given; approvals by {service} do not count for this tier"},
		{"tier 1 one of two", hot(Request{Kind: send, Amount: plusRaw(t, xno("10"), 1), Destination: a, Approvers: []string{"alice"}}), approvalsMissing, "tiers[1] (up to 50 XNO): 2 of {alice, bob, carol} required, 1 given"},
		{"tier 1 two of two", hot(Request{Kind: send, Amount: plusRaw(t, xno("10"), 1), Destination: a, Approvers: []string{"carol", "alice"}}), allowed, ""},
		{"tier 1 at its bound", hot(Request{Kind: send, Amount: xno("50"), Destination: a, Approvers: []string{"alice", "bob"}}), allowed, ""},
		{"tier 2 one raw above tier 1", hot(Request{Kind: send, Amount: plusRaw(t, xno("50"), 1), Destination: a, Approvers: []string{"alice", "bob"}}), approvalsMissing, "tiers[2] (above 50 XNO): 3 of {alice, bob, carol} required, 2 given"},
		{"tier 2 all three", hot(Request{Kind: send, Amount: plusRaw(t, xno("50"), 1), Destination: a, Approvers: all}), allowed, ""},
		{"tier 2 all plus service", hot(Request{Kind: send, Amount: xno("100"), Destination: a, Approvers: []string{"service", "alice", "bob", "carol"}}), allowed, ""},
		{"a name counts once", hot(Request{Kind: send, Amount: xno("20"), Destination: a, Approvers: []string{"alice", "alice"}}), approvalsMissing, "1 given"},

		// Changes use the first tier.
		{"change first tier", hot(Request{Kind: change, Representative: r1, RepresentativeChanges: true, Approvers: []string{"service"}}), allowed, ""},
		{"change needs the first tier's approvers", hot(Request{Kind: change, Representative: r1, RepresentativeChanges: true, Approvers: all}), approvalsMissing, "tiers[0] (the first tier, which changes use): 1 of {service} required, 0 given"},
		{"cold change", cold(Request{Kind: change, Representative: r1, RepresentativeChanges: true}), approvalsMissing, "1 of {alice, bob} required, 0 given"},

		// Receives: automatic in "hot", tiered in "cold" (≤ 1000000 raw 1 of {alice, bob}; above 2 of {alice, bob, carol}).
		{"automatic receive", hot(Request{Kind: receive, Amount: xno("100000")}), allowed, ""},
		{"cold receive without approval", cold(Request{Kind: receive, Amount: nano.AmountFromUint64(1)}), approvalsMissing, "1 of {alice, bob} required, 0 given"},
		{"cold receive at the bound", cold(Request{Kind: receive, Amount: nano.AmountFromUint64(1000000), Approvers: []string{"bob"}}), allowed, ""},
		{"cold receive one raw above", cold(Request{Kind: receive, Amount: nano.AmountFromUint64(1000001), Approvers: []string{"bob"}}), approvalsMissing, "tiers[1] (above 0.000000000000000000000001 XNO): 2 of {alice, bob, carol} required, 1 given"},
		{"cold send, huge", cold(Request{Kind: send, Amount: nano.MaxAmount, Sent24h: nano.MaxAmount, Destination: elsewhere, Approvers: []string{"carol", "bob"}}), allowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.req.Approvers
			wantDecision(t, cfg.Evaluate(tt.req), tt.reason, tt.detail)
			if len(tt.req.Approvers) != len(before) {
				t.Error("Evaluate changed the request")
			}
		})
	}
}

// TestEvaluateHandBuilt checks that a Config built without Parse fails
// closed where Parse would have refused it.
func TestEvaluateHandBuilt(t *testing.T) {
	acct := MustAccount(t, acctCold)
	upTo := MustAmount(t, "1 XNO")
	cfg := &Config{Groups: []Group{
		{Name: "none", Accounts: []nano.PublicKey{acct}},
	}}
	wantDecision(t, cfg.Evaluate(Request{Account: acct, Kind: send, Amount: upTo}), denied, "has no tier")
	cfg.Groups[0].Tiers = []Tier{{UpTo: &upTo, Quorum: 1, Approvers: []string{"alice"}}}
	wantDecision(t, cfg.Evaluate(Request{Account: acct, Kind: send, Amount: upTo, Approvers: []string{"alice"}}), allowed, "")
	wantDecision(t, cfg.Evaluate(Request{Account: acct, Kind: send, Amount: plusRaw(t, upTo, 1), Approvers: []string{"alice"}}), denied, "has no tier for 1.000000000000000000000000000001 XNO")
	var zero Config
	wantDecision(t, zero.Evaluate(Request{Account: acct, Kind: receive, Amount: upTo}), denied, "")
}
