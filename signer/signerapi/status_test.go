package signerapi_test

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// TestStatusRoundTrip: what RefusalStatus carries, RefusalFromStatus
// recovers; the store-full, database and token statuses are recognised by their
// predicates and by nothing else.
func TestStatusRoundTrip(t *testing.T) {
	r := &signerapi.Refusal{Reason: pb.RefusalReason_REFUSAL_REASON_EXPIRED, Detail: "intent.expires_at: past", Field: "intent.expires_at"}
	st := signerapi.RefusalStatus(r)
	if st.Code() != codes.FailedPrecondition {
		t.Fatalf("code %s, want FailedPrecondition", st.Code())
	}
	got, ok := signerapi.RefusalFromStatus(st)
	if !ok || got.Reason != r.Reason || got.Detail != r.Detail || got.Field != r.Field {
		t.Fatalf("RefusalFromStatus = %+v, %v; want %+v", got, ok, r)
	}
	if !errors.Is(got, &signerapi.Refusal{Reason: pb.RefusalReason_REFUSAL_REASON_EXPIRED}) || signerapi.ReasonOf(got) != r.Reason {
		t.Fatalf("%v does not match its reason", got)
	}
	if signerapi.IsStoreFull(st) || signerapi.IsTokenUnavailable(st) || signerapi.IsStoreUnavailable(st) {
		t.Fatal("a refusal taken for a store-full, token or database status")
	}
	full := signerapi.StoreFullStatus()
	if !signerapi.IsStoreFull(full) || signerapi.IsTokenUnavailable(full) || signerapi.IsStoreUnavailable(full) {
		t.Fatal("StoreFullStatus not recognised")
	}
	if _, ok := signerapi.RefusalFromStatus(full); ok {
		t.Fatal("StoreFullStatus taken for a refusal")
	}
	for _, final := range []bool{false, true} {
		tok := signerapi.TokenUnavailableStatus(final)
		if !signerapi.IsTokenUnavailable(tok) || signerapi.IsStoreFull(tok) || signerapi.IsStoreUnavailable(tok) || tok.Code() != codes.Unavailable {
			t.Fatalf("TokenUnavailableStatus(%v) not recognised", final)
		}
		if _, ok := signerapi.RefusalFromStatus(tok); ok {
			t.Fatal("TokenUnavailableStatus taken for a refusal")
		}
	}
	db := signerapi.StoreUnavailableStatus()
	if !signerapi.IsStoreUnavailable(db) || signerapi.IsTokenUnavailable(db) || signerapi.IsStoreFull(db) || db.Code() != codes.Unavailable {
		t.Fatal("StoreUnavailableStatus not recognised")
	}
	if _, ok := signerapi.RefusalFromStatus(db); ok {
		t.Fatal("StoreUnavailableStatus taken for a refusal")
	}
	if name := signerapi.ReasonName(pb.RefusalReason_REFUSAL_REASON_POLICY_DENIED); name != "POLICY_DENIED" {
		t.Fatalf("ReasonName = %q", name)
	}
}
