package coldbridge

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// TestOpenList: the send loop's work list holds exactly the requests that
// are not final, so its cost does not grow with the gateway's history.
func TestOpenList(t *testing.T) {
	s, err := openGatewayStore(filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	open := func() map[string]bool {
		t.Helper()
		out := map[string]bool{}
		if err := s.eachOpen(func(e *entry) error { out[e.view.GetRequestId()] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := s.insert(&entry{view: &pb.Request{RequestId: id, Status: pb.RequestStatus_REQUEST_STATUS_QUEUED}, wire: &pb.BridgeRequest{}}); err != nil {
			t.Fatal(err)
		}
	}
	set := func(id string, st pb.RequestStatus) {
		t.Helper()
		if _, err := s.update(id, func(e *entry, _ *bolt.Tx) error { e.view.Status = st; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	set("a", pb.RequestStatus_REQUEST_STATUS_CONFIRMED)
	set("b", pb.RequestStatus_REQUEST_STATUS_REFUSED)
	set("c", pb.RequestStatus_REQUEST_STATUS_PUBLISHED)
	if got := open(); len(got) != 1 || !got["c"] {
		t.Fatalf("open list %v, want only c", got)
	}
	set("b", pb.RequestStatus_REQUEST_STATUS_SIGNED) // a signed block overriding a refusal
	if got := open(); !got["b"] || !got["c"] || got["a"] {
		t.Fatalf("open list %v, want b and c", got)
	}
	if err := s.closeOpen("b"); err != nil {
		t.Fatal(err)
	}
	if got := open(); got["b"] {
		t.Fatalf("open list %v after closing b", got)
	}
	if e, ok, err := s.get("b"); err != nil || !ok || e.view.GetStatus() != pb.RequestStatus_REQUEST_STATUS_SIGNED {
		t.Fatal("closing the open entry touched the request")
	}
}
