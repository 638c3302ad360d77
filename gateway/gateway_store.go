package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

var (
	gwBucketRequests = []byte("requests") // request id → JSON gwRecord
	gwBucketSigned   = []byte("signed")   // block hash → request id: every block the cold side signed
	gwBucketOpen     = []byte("open")     // request id → nothing: requests not yet final (the send loop's work list)
	gwBucketPublish  = []byte("publish")  // request id → nothing: signed or published, not yet final, with a node (the publish pipeline's work list)
	gwBucketProbe    = []byte("probe")    // "space" → probeSize bytes, written to find out whether the file takes writes again
)

// gatewayStore is the gateway's bbolt file: its queue survives restarts.
//
// Besides the records it keeps two work lists, each updated in the
// transaction that changes a request's status, so that neither loop has to
// read the gateway's whole history: the open list (requests not final,
// read by the send loop, which also takes off it the requests that no
// longer hold their account's line) and the publish list (requests signed
// or published and not final, when the gateway has a node: the publish
// pipeline resumes them after a restart). A request leaves the publish
// list only by reaching a final status. Each open list entry holds a
// summary of its request (openItem), so that a pass of the send loop
// decodes only the records it sends.
//
// Every write is a transaction committed with fsync before the writer
// goes on, and the writes that arrive together share one commit
// (gateway_commit.go): status changes go through apply, which takes a
// batch of them.
type gatewayStore struct {
	db *bolt.DB
	// publishing is set when the gateway has a node: signed requests are
	// then published and kept on the publish list until final.
	publishing bool
	// onCommit, when set, is told the outcome of every commit attempted
	// (nil: it succeeded).
	onCommit func(err error)

	gc        groupCommit[*bolt.Tx]
	closeOnce sync.Once
	closeErr  error
}

func openGatewayStore(path string, publishing bool) (*gatewayStore, error) {
	// The free page list is not written with every commit (bbolt rebuilds
	// it at open by scanning the file, small for a gateway's state): a
	// commit writes only the pages it changed and the meta page.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
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
	s.gc.commit = s.commit
	s.gc.start(commitLinger)
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
			if err := open.Put(k, encodeOpenItem(e)); err != nil {
				return err
			}
		}
		if !hadPublish && s.onPublishList(st) {
			return publish.Put(k, listMark)
		}
		return nil
	})
}

// close stops the committer, once the writes queued are committed, and
// closes the file. It is idempotent.
func (s *gatewayStore) close() error {
	s.closeOnce.Do(func() {
		s.gc.stop()
		s.closeErr = s.db.Close()
	})
	return s.closeErr
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

// mark keeps the work lists in step with request e, stored under id in
// tx. A request leaves the publish list only when final: a refusal
// overridden by a signed block comes back to it, and no status before
// SIGNED follows one on it. The block of a request that turns SIGNED is
// indexed under its hash.
func (s *gatewayStore) mark(tx *bolt.Tx, id string, e *entry) error {
	key := []byte(id)
	st := e.view.GetStatus()
	open, publish := tx.Bucket(gwBucketOpen), tx.Bucket(gwBucketPublish)
	if st == pb.RequestStatus_REQUEST_STATUS_SIGNED && len(e.view.GetBlockHash()) != 0 {
		if err := tx.Bucket(gwBucketSigned).Put(e.view.GetBlockHash(), key); err != nil {
			return err
		}
	}
	if isFinalStatus(st) {
		if err := open.Delete(key); err != nil {
			return err
		}
		return publish.Delete(key)
	}
	if err := open.Put(key, encodeOpenItem(e)); err != nil {
		return err
	}
	if s.onPublishList(st) {
		return publish.Put(key, listMark)
	}
	return nil
}

// listMark is the value stored in the publish list (and, before the
// summaries, in the open list).
var listMark = []byte{1}

// openItem is the summary of a request the open list keeps: what the send
// loop needs to find the requests due.
type openItem struct {
	id        string
	status    pb.RequestStatus
	account   []byte
	submitted int64 // Unix ns
	lastSent  time.Time
}

// openItemVersion starts an encoded openItem: version ‖ status ‖
// submitted (i64) ‖ last sent (i64) ‖ account (32 bytes), big-endian.
const (
	openItemVersion = 2
	openItemLen     = 1 + 1 + 8 + 8 + 32
)

func encodeOpenItem(e *entry) []byte {
	b := make([]byte, openItemLen)
	b[0], b[1] = openItemVersion, byte(e.view.GetStatus())
	binary.BigEndian.PutUint64(b[2:], uint64(e.view.GetSubmittedUnixNano()))
	if !e.lastSent.IsZero() {
		binary.BigEndian.PutUint64(b[10:], uint64(e.lastSent.UnixNano()))
	}
	copy(b[18:], e.view.GetIntent().GetAccount())
	return b
}

// decodeOpenItem decodes an open list entry; ok is false for one without
// a summary (a file from an earlier version: read the record).
func decodeOpenItem(id string, b []byte) (it openItem, ok bool) {
	if len(b) != openItemLen || b[0] != openItemVersion {
		return openItem{}, false
	}
	it = openItem{id: id, status: pb.RequestStatus(b[1]), account: b[18:openItemLen:openItemLen],
		submitted: int64(binary.BigEndian.Uint64(b[2:]))}
	if ls := int64(binary.BigEndian.Uint64(b[10:])); ls != 0 {
		it.lastSent = time.Unix(0, ls)
	}
	return it, true
}

func itemOf(e *entry) openItem {
	return openItem{id: e.view.GetRequestId(), status: e.view.GetStatus(), account: e.view.GetIntent().GetAccount(),
		submitted: e.view.GetSubmittedUnixNano(), lastSent: e.lastSent}
}

// openItems calls f with the summary of every request on the open list
// (its record decoded for an entry without one).
func (s *gatewayStore) openItems(f func(it openItem) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		reqs := tx.Bucket(gwBucketRequests)
		return tx.Bucket(gwBucketOpen).ForEach(func(k, v []byte) error {
			if it, ok := decodeOpenItem(string(k), v); ok {
				it.account = slices.Clone(it.account) // v lives as long as the transaction
				return f(it)
			}
			data := reqs.Get(k)
			if data == nil {
				return nil
			}
			e, err := decodeRecord(data)
			if err != nil {
				return err
			}
			return f(itemOf(e))
		})
	})
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
func (s *gatewayStore) signedBy(hash []byte) (string, bool, error) {
	var id string
	err := s.db.View(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(gwBucketSigned).Get(hash))
		return nil
	})
	return id, id != "", err
}

func (s *gatewayStore) setOnCommit(f func(err error)) { s.onCommit = f }
