package coldbridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

var (
	gwBucketRequests = []byte("requests") // request id → JSON gwRecord
	gwBucketSigned   = []byte("signed")   // block hash → request id: every block the cold side signed
	gwBucketOpen     = []byte("open")     // request id → nothing: requests not yet final (the send loop's work list)
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
type gatewayStore struct {
	db *bolt.DB
}

func openGatewayStore(path string) (*gatewayStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("coldbridge: gateway state file %s is in use by another process", path)
		}
		return nil, fmt.Errorf("coldbridge: opening gateway state %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		hadOpen := tx.Bucket(gwBucketOpen) != nil
		for _, b := range [][]byte{gwBucketRequests, gwBucketSigned, gwBucketOpen} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if hadOpen {
			return nil
		}
		// A state file from before the open list: build it.
		return tx.Bucket(gwBucketRequests).ForEach(func(k, v []byte) error {
			e, err := decodeRecord(v)
			if err != nil {
				return err
			}
			return markOpen(tx, string(k), e.view.GetStatus())
		})
	}); err != nil {
		db.Close()
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		db.Close()
		return nil, fmt.Errorf("coldbridge: gateway state file %s is readable by others (mode %v)", path, fi.Mode().Perm())
	}
	return &gatewayStore{db: db}, nil
}

func (s *gatewayStore) close() error { return s.db.Close() }

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
		return nil, fmt.Errorf("coldbridge: corrupt gateway record: %w", err)
	}
	e := &entry{view: new(pb.Request), wire: new(pb.BridgeRequest), digest: r.Digest, gathered: r.Gathered, recoveries: r.Recoveries}
	if err := proto.Unmarshal(r.View, e.view); err != nil {
		return nil, fmt.Errorf("coldbridge: corrupt gateway record: %w", err)
	}
	if err := proto.Unmarshal(r.Wire, e.wire); err != nil {
		return nil, fmt.Errorf("coldbridge: corrupt gateway record: %w", err)
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
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(gwBucketRequests)
		if b.Get([]byte(e.view.GetRequestId())) != nil {
			return errExists
		}
		if err := b.Put([]byte(e.view.GetRequestId()), data); err != nil {
			return err
		}
		return tx.Bucket(gwBucketOpen).Put([]byte(e.view.GetRequestId()), openMark)
	})
}

// update applies f to the record of id inside one transaction and stores
// the result; f returning an error leaves the record unchanged.
func (s *gatewayStore) update(id string, f func(e *entry, tx *bolt.Tx) error) (*entry, error) {
	var out *entry
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(gwBucketRequests)
		data := b.Get([]byte(id))
		if data == nil {
			return fmt.Errorf("coldbridge: no request %q", id)
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
		return markOpen(tx, id, e.view.GetStatus())
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

// markOpen keeps the open bucket in step with a request's status.
func markOpen(tx *bolt.Tx, id string, s pb.RequestStatus) error {
	if isFinalStatus(s) {
		return tx.Bucket(gwBucketOpen).Delete([]byte(id))
	}
	return tx.Bucket(gwBucketOpen).Put([]byte(id), openMark)
}

// openMark is the value stored in the open bucket.
var openMark = []byte{1}

// closeOpen removes id from the open list (a request that needs nothing more
// from the send loop, such as one signed when there is no node).
func (s *gatewayStore) closeOpen(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(gwBucketOpen).Delete([]byte(id)) })
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
