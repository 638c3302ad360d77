package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

var (
	gwBucketRequests = []byte("requests") // request id → JSON gwRecord
	gwBucketSigned   = []byte("signed")   // block hash → request id: every block the cold side signed
	gwBucketOpen     = []byte("open")     // request id → nothing: requests not yet final (the send loop's work list)
	gwBucketPublish  = []byte("publish")  // request id → nothing: signed or published, not yet final, with a node (the publish pipeline's work list)
	gwBucketProbe    = []byte("probe")    // "space" → probeSize bytes, written to find out whether the file takes writes again
)

// gwRecord is the gateway's durable record of one request.
type gwRecord struct {
	// View is the pb.Request the API shows.
	View []byte `json:"view"`
	// Wire is the pb.BridgeRequest written to the bridge.
	Wire []byte `json:"wire"`
	// Digest is the intent's digest (idempotency).
	Digest [32]byte `json:"digest"`
	// LastSent is when the request was last written to the bridge (Unix ns; 0: never).
	LastSent int64 `json:"last_sent"`
	// Gathered is true once Wire holds the head and source blocks.
	Gathered bool `json:"gathered"`
	// Recoveries counts requeues after a PENDING_BLOCK refusal.
	Recoveries int `json:"recoveries,omitempty"`
}

// gatewayStore is the gateway's bbolt file: its queue survives restarts.
//
// Besides the records it keeps two work lists, each updated in the
// transaction that changes a request's status, so that neither loop has to
// read the gateway's whole history: the open list (requests not final,
// read by the send loop, which also takes off it the requests that no
// longer hold their account's line) and the publish list (requests signed
// or published and not final, when the gateway has a node: the publish
// pipeline resumes them after a restart). A request leaves the publish
// list only by reaching a final status.
type gatewayStore struct {
	db *bolt.DB
	// publishing is set when the gateway has a node: signed requests are
	// then published and kept on the publish list until final.
	publishing bool
	// onCommit, when set, is told the outcome of every commit attempted
	// (nil: it succeeded).
	onCommit func(err error)
}

func openGatewayStore(path string, publishing bool) (*gatewayStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("gateway: gateway state file %s is in use by another process", path)
		}
		return nil, fmt.Errorf("gateway: opening gateway state %s: %w", path, err)
	}
	s := &gatewayStore{db: db, publishing: publishing}
	if err := db.Update(s.migrate); err != nil {
		db.Close()
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		db.Close()
		return nil, fmt.Errorf("gateway: gateway state file %s is readable by others (mode %v)", path, fi.Mode().Perm())
	}
	return s, nil
}

// migrate creates the buckets and builds the work lists a state file from
// an earlier version lacks, from the records.
func (s *gatewayStore) migrate(tx *bolt.Tx) error {
	hadOpen, hadPublish := tx.Bucket(gwBucketOpen) != nil, tx.Bucket(gwBucketPublish) != nil
	for _, b := range [][]byte{gwBucketRequests, gwBucketSigned, gwBucketOpen, gwBucketPublish, gwBucketProbe} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	if hadOpen && (hadPublish || !s.publishing) {
		return nil
	}
	// Before the publish list, the send loop took published requests off
	// the open list, and a restart never resumed them: the publish list is
	// built from every record, which finds them.
	open, publish := tx.Bucket(gwBucketOpen), tx.Bucket(gwBucketPublish)
	return tx.Bucket(gwBucketRequests).ForEach(func(k, v []byte) error {
		e, err := decodeRecord(v)
		if err != nil {
			return err
		}
		st := e.view.GetStatus()
		if !hadOpen && !isFinalStatus(st) {
			if err := open.Put(k, listMark); err != nil {
				return err
			}
		}
		if !hadPublish && s.onPublishList(st) {
			return publish.Put(k, listMark)
		}
		return nil
	})
}

func (s *gatewayStore) close() error { return s.db.Close() }

// write runs f in a read-write transaction and commits it. A commit that
// fails for lack of space returns an error wrapping ErrStoreFull; a
// failed commit keeps nothing of the transaction. An error of f is
// returned as it is, and nothing is written.
func (s *gatewayStore) write(f func(tx *bolt.Tx) error) error {
	var ferr error
	err := s.db.Update(func(tx *bolt.Tx) error {
		ferr = f(tx)
		return ferr
	})
	if ferr != nil {
		return ferr
	}
	if isNoSpace(err) {
		err = fmt.Errorf("gateway: %w: %w", ErrStoreFull, err)
	} else if err != nil {
		err = fmt.Errorf("gateway: writing the gateway's state file: %w", err)
	}
	if s.onCommit != nil {
		s.onCommit(err)
	}
	return err
}

// Probing a state file whose writes failed.
const (
	probeSize = 4 << 10 // about a request's record
	probeRoom = 1 << 20 // the free space a file system that was full must have again
)

// probe writes probeSize bytes to find out whether the file takes writes
// again. After a failure for lack of space it first asks the file system
// for probeRoom bytes free: bbolt reuses the pages it freed, so a small
// commit can succeed while the file cannot grow.
func (s *gatewayStore) probe(full bool) error {
	if full {
		var st syscall.Statfs_t
		if err := syscall.Statfs(filepath.Dir(s.db.Path()), &st); err != nil {
			return err
		}
		if free := uint64(st.Bavail) * uint64(st.Bsize); free < probeRoom {
			return fmt.Errorf("gateway: %w: %d bytes free", ErrStoreFull, free)
		}
	}
	return s.write(func(tx *bolt.Tx) error {
		return tx.Bucket(gwBucketProbe).Put([]byte("space"), make([]byte, probeSize))
	})
}

// entry is a decoded record.
type entry struct {
	view       *pb.Request
	wire       *pb.BridgeRequest
	digest     [32]byte
	lastSent   time.Time
	gathered   bool
	recoveries int
}

func decodeRecord(data []byte) (*entry, error) {
	var r gwRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("gateway: corrupt gateway record: %w", err)
	}
	e := &entry{view: new(pb.Request), wire: new(pb.BridgeRequest), digest: r.Digest, gathered: r.Gathered, recoveries: r.Recoveries}
	if err := proto.Unmarshal(r.View, e.view); err != nil {
		return nil, fmt.Errorf("gateway: corrupt gateway record: %w", err)
	}
	if err := proto.Unmarshal(r.Wire, e.wire); err != nil {
		return nil, fmt.Errorf("gateway: corrupt gateway record: %w", err)
	}
	if r.LastSent != 0 {
		e.lastSent = time.Unix(0, r.LastSent)
	}
	return e, nil
}

func encodeRecord(e *entry) ([]byte, error) {
	view, err := proto.Marshal(e.view)
	if err != nil {
		return nil, err
	}
	wire, err := proto.Marshal(e.wire)
	if err != nil {
		return nil, err
	}
	r := gwRecord{View: view, Wire: wire, Digest: e.digest, Gathered: e.gathered, Recoveries: e.recoveries}
	if !e.lastSent.IsZero() {
		r.LastSent = e.lastSent.UnixNano()
	}
	return json.Marshal(r)
}

func (s *gatewayStore) get(id string) (*entry, bool, error) {
	var e *entry
	err := s.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(gwBucketRequests).Get([]byte(id))
		if data == nil {
			return nil
		}
		var err error
		e, err = decodeRecord(data)
		return err
	})
	return e, e != nil, err
}

// errExists is returned by insert when the id is taken.
var errExists = errors.New("request id exists")

// insert stores a new record; it fails with errExists if the id is taken.
func (s *gatewayStore) insert(e *entry) error {
	data, err := encodeRecord(e)
	if err != nil {
		return err
	}
	return s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(gwBucketRequests)
		if b.Get([]byte(e.view.GetRequestId())) != nil {
			return errExists
		}
		if err := b.Put([]byte(e.view.GetRequestId()), data); err != nil {
			return err
		}
		return s.mark(tx, e.view.GetRequestId(), e.view.GetStatus())
	})
}

// update applies f to the record of id inside one transaction and stores
// the result; f returning an error leaves the record unchanged.
func (s *gatewayStore) update(id string, f func(e *entry, tx *bolt.Tx) error) (*entry, error) {
	var out *entry
	err := s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(gwBucketRequests)
		data := b.Get([]byte(id))
		if data == nil {
			return fmt.Errorf("gateway: no request %q", id)
		}
		e, err := decodeRecord(data)
		if err != nil {
			return err
		}
		if err := f(e, tx); err != nil {
			return err
		}
		enc, err := encodeRecord(e)
		if err != nil {
			return err
		}
		out = e
		if err := b.Put([]byte(id), enc); err != nil {
			return err
		}
		return s.mark(tx, id, e.view.GetStatus())
	})
	return out, err
}

// isFinalStatus reports whether a request in status s can change no more
// (a refusal can still be overridden by a signed block; see the gateway).
func isFinalStatus(s pb.RequestStatus) bool {
	switch s {
	case pb.RequestStatus_REQUEST_STATUS_CONFIRMED, pb.RequestStatus_REQUEST_STATUS_REFUSED, pb.RequestStatus_REQUEST_STATUS_FAILED:
		return true
	}
	return false
}

// onPublishList reports whether a request in status st belongs on the
// publish list.
func (s *gatewayStore) onPublishList(st pb.RequestStatus) bool {
	return s.publishing && (st == pb.RequestStatus_REQUEST_STATUS_SIGNED || st == pb.RequestStatus_REQUEST_STATUS_PUBLISHED)
}

// mark keeps the work lists in step with a request's status. A request
// leaves the publish list only when final: a refusal overridden by a
// signed block comes back to it, and no status before SIGNED follows one
// on it.
func (s *gatewayStore) mark(tx *bolt.Tx, id string, st pb.RequestStatus) error {
	key := []byte(id)
	open, publish := tx.Bucket(gwBucketOpen), tx.Bucket(gwBucketPublish)
	if isFinalStatus(st) {
		if err := open.Delete(key); err != nil {
			return err
		}
		return publish.Delete(key)
	}
	if err := open.Put(key, listMark); err != nil {
		return err
	}
	if s.onPublishList(st) {
		return publish.Put(key, listMark)
	}
	return nil
}

// listMark is the value stored in the work lists.
var listMark = []byte{1}

// closeOpen removes id from the open list (a request that needs nothing more
// from the send loop, such as one signed when there is no node, or one
// published, which stays on the publish list).
func (s *gatewayStore) closeOpen(id string) error {
	return s.write(func(tx *bolt.Tx) error { return tx.Bucket(gwBucketOpen).Delete([]byte(id)) })
}

// eachOpen calls f for every request on the open list.
func (s *gatewayStore) eachOpen(f func(e *entry) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		reqs := tx.Bucket(gwBucketRequests)
		return tx.Bucket(gwBucketOpen).ForEach(func(k, _ []byte) error {
			data := reqs.Get(k)
			if data == nil {
				return nil
			}
			e, err := decodeRecord(data)
			if err != nil {
				return err
			}
			return f(e)
		})
	})
}

// eachPublishing calls f with the id of every request on the publish list.
func (s *gatewayStore) eachPublishing(f func(id string) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(gwBucketPublish).ForEach(func(k, _ []byte) error { return f(string(k)) })
	})
}

// each calls f for every record, in request id order.
func (s *gatewayStore) each(f func(e *entry) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(gwBucketRequests).ForEach(func(_, v []byte) error {
			e, err := decodeRecord(v)
			if err != nil {
				return err
			}
			return f(e)
		})
	})
}

// signedBy returns the request id under which the cold side signed hash.
func (s *gatewayStore) signedBy(hash []byte) (string, bool) {
	var id string
	_ = s.db.View(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(gwBucketSigned).Get(hash))
		return nil
	})
	return id, id != ""
}
