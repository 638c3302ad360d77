package gateway

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// TestOpenList: the send loop's work list holds exactly the requests that
// are not final, so its cost does not grow with the gateway's history.
func TestOpenList(t *testing.T) { forEachStore(t, testOpenList) }

func testOpenList(t *testing.T, kind storeKind) {
	s := newTestStore(t, kind, "").openStore(t, true)
	open := func() map[string]bool {
		t.Helper()
		out := map[string]bool{}
		if err := s.openItems(func(it openItem) error { out[it.id] = true; return nil }); err != nil {
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
		if _, err := updateOne(s, id, func(e *entry) error { e.view.Status = st; return nil }); err != nil {
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
	if err := closeOpen(s, "b"); err != nil {
		t.Fatal(err)
	}
	if got := open(); got["b"] {
		t.Fatalf("open list %v after closing b", got)
	}
	if e, ok, err := s.get("b"); err != nil || !ok || e.view.GetStatus() != pb.RequestStatus_REQUEST_STATUS_SIGNED {
		t.Fatal("closing the open entry touched the request")
	}
}

// publishList returns the ids on the store's publish list.
func publishList(t *testing.T, s store) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	if err := s.eachPublishing(func(id string) error { out[id] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPublishList: with a node, the publish pipeline's work list holds the
// requests signed or published and not final, whatever the send loop
// takes off the open list; without one it stays empty (signed is final).
func TestPublishList(t *testing.T) { forEachStore(t, testPublishList) }

func testPublishList(t *testing.T, kind storeKind) {
	for _, publishing := range []bool{true, false} {
		s := newTestStore(t, kind, "").openStore(t, publishing)
		set := func(id string, st pb.RequestStatus) {
			t.Helper()
			if _, err := updateOne(s, id, func(e *entry) error { e.view.Status = st; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []string{"a", "b", "c", "d"} {
			if err := s.insert(&entry{view: &pb.Request{RequestId: id, Status: pb.RequestStatus_REQUEST_STATUS_QUEUED}, wire: &pb.BridgeRequest{}}); err != nil {
				t.Fatal(err)
			}
		}
		set("a", pb.RequestStatus_REQUEST_STATUS_SIGNED)
		set("b", pb.RequestStatus_REQUEST_STATUS_SIGNED)
		set("b", pb.RequestStatus_REQUEST_STATUS_PUBLISHED)
		set("c", pb.RequestStatus_REQUEST_STATUS_SIGNED)
		set("c", pb.RequestStatus_REQUEST_STATUS_CONFIRMED)
		set("d", pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD)
		for _, id := range []string{"a", "b"} {
			if err := closeOpen(s, id); err != nil { // the send loop is done with them
				t.Fatal(err)
			}
		}
		got := publishList(t, s)
		if publishing && (len(got) != 2 || !got["a"] || !got["b"]) {
			t.Fatalf("publish list %v, want a and b", got)
		}
		if !publishing && len(got) != 0 {
			t.Fatalf("publish list without a node: %v, want it empty", got)
		}
		s.close()
	}
}

// TestPublishListMigration: a state file from before the publish list,
// holding a published request the send loop took off the open list (the
// request a restart used to strand), gets the list built when it is opened
// with a node.
func TestPublishListMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.db")
	s, err := openGatewayStore(path, true)
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]pb.RequestStatus{
		"queued": pb.RequestStatus_REQUEST_STATUS_QUEUED, "signed": pb.RequestStatus_REQUEST_STATUS_SIGNED,
		"published": pb.RequestStatus_REQUEST_STATUS_PUBLISHED, "confirmed": pb.RequestStatus_REQUEST_STATUS_CONFIRMED,
		"failed": pb.RequestStatus_REQUEST_STATUS_FAILED,
	}
	for id, st := range statuses {
		if err := s.insert(&entry{view: &pb.Request{RequestId: id, Status: st}, wire: &pb.BridgeRequest{}}); err != nil {
			t.Fatal(err)
		}
	}
	// What the earlier version left: no publish list, the published
	// request off the open list.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(gwBucketPublish); err != nil {
			return err
		}
		return tx.Bucket(gwBucketOpen).Delete([]byte("published"))
	}); err != nil {
		t.Fatal(err)
	}
	s.close()
	if s, err = openGatewayStore(path, true); err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if got := publishList(t, s); len(got) != 2 || !got["signed"] || !got["published"] {
		t.Fatalf("publish list after the migration %v, want signed and published", got)
	}
}
