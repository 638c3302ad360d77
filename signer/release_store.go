package signer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Buckets of the state file written by releases, created by the first
// release (a state file without them has had none). Keys as in store.go.
var (
	bucketReleased = []byte("released") // request id → u64 release audit seq ‖ withdrawn hash[32]
	bucketReleases = []byte("releases") // release statement digest[32] → u64 release audit seq
)

// ReleasedRequest says that the block signed for a request id was
// withdrawn by a release.
type ReleasedRequest struct {
	AuditSeq uint64    // the release's audit record
	Block    nano.Hash // the withdrawn block
}

// getReleased returns the release of request id's block, if any.
func getReleased(tx *bolt.Tx, id string) (ReleasedRequest, bool, error) {
	b := tx.Bucket(bucketReleased)
	if b == nil {
		return ReleasedRequest{}, false, nil
	}
	v := b.Get([]byte(id))
	if v == nil {
		return ReleasedRequest{}, false, nil
	}
	if len(v) != 8+32 {
		return ReleasedRequest{}, false, errors.New("signer: corrupt released-request record")
	}
	return ReleasedRequest{AuditSeq: binary.BigEndian.Uint64(v[:8]), Block: nano.Hash(v[8:])}, true, nil
}

// releasedOf is getReleased as a pointer: nil when not released.
func releasedOf(tx *bolt.Tx, id string) (*ReleasedRequest, error) {
	r, ok, err := getReleased(tx, id)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

// Released returns the release of the block signed for request id, if any.
func (s *Store) Released(id string) (ReleasedRequest, bool, error) {
	var out ReleasedRequest
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, ok, err = getReleased(tx, id)
		return err
	})
	return out, ok, err
}

// releaseApplied returns the audit record of the release whose statement
// has digest, if it was applied.
func (s *Store) releaseApplied(digest [32]byte) (uint64, bool, error) {
	var seq uint64
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		seq, ok, err = getReleaseApplied(tx, digest)
		return err
	})
	return seq, ok, err
}

func getReleaseApplied(tx *bolt.Tx, digest [32]byte) (uint64, bool, error) {
	b := tx.Bucket(bucketReleases)
	if b == nil {
		return 0, false, nil
	}
	v := b.Get(digest[:])
	if v == nil {
		return 0, false, nil
	}
	if len(v) != 8 {
		return 0, false, errors.New("signer: corrupt release record")
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// CommitRelease applies plan durably, in one transaction: the restored
// account record, the withdrawn block removed from the blocks signed on
// its previous, its request marked released, a withdrawn send's velocity
// entry and a withdrawn receive's source removed, the statement's digest
// recorded and a "released" audit record appended, whose seq it returns.
// It fails with errStale if the record moved since plan was made or the
// statement was applied meanwhile.
func (s *Store) CommitRelease(plan *releasePlan, digest [32]byte, detail string, at time.Time) (uint64, error) {
	a := plan.rec.Account
	w := plan.withdrawn
	var seq uint64
	err := s.write(func(tx *bolt.Tx) error {
		seq = 0
		var cur AccountRecord
		ok, _, err := getAccount(tx, a, &cur)
		if err != nil {
			return err
		}
		signedKey := acctKey(a, w.Block.Previous[:])
		var sb SignedBlock
		found, err := getRecord(tx.Bucket(bucketSigned), signedKey, &sb)
		if err != nil {
			return err
		}
		if !ok || cur.FrontierHash != w.Hash || !found || sb.Hash != w.Hash || tx.Bucket(bucketSigned).Get(acctKey(a, w.Hash[:])) != nil {
			return errStale
		}
		if _, applied, err := getReleaseApplied(tx, digest); err != nil || applied {
			if err != nil {
				return err
			}
			return errStale
		}
		released, err := tx.CreateBucketIfNotExists(bucketReleased)
		if err != nil {
			return err
		}
		releases, err := tx.CreateBucketIfNotExists(bucketReleases)
		if err != nil {
			return err
		}
		if seq, err = appendAudit(tx, &pb.AuditRecord{
			TimeUnixNano: at.UnixNano(),
			Decision:     DecisionReleased,
			RequestId:    w.RequestID,
			Account:      a[:],
			Detail:       detail,
			BlockHash:    w.Hash[:],
			IntentHash:   digest[:],
		}); err != nil {
			return err
		}
		var seqBytes [8]byte
		binary.BigEndian.PutUint64(seqBytes[:], seq)
		if err := putRecord(tx.Bucket(bucketAccounts), a[:], &plan.restored); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSigned).Delete(signedKey); err != nil {
			return err
		}
		if err := released.Put([]byte(w.RequestID), append(seqBytes[:], w.Hash[:]...)); err != nil {
			return err
		}
		if err := releases.Put(digest[:], seqBytes[:]); err != nil {
			return err
		}
		// A receive's source: received under the withdrawn request.
		recv := tx.Bucket(bucketReceived)
		if rk := acctKey(a, w.Block.Link[:]); bytes.Equal(recv.Get(rk), []byte(w.RequestID)) {
			if err := recv.Delete(rk); err != nil {
				return err
			}
		}
		return deleteVelocity(tx, a, w.Hash, at)
	})
	if err != nil {
		return 0, err
	}
	s.notifyAppended()
	return seq, nil
}

// deleteVelocity removes the velocity entries of the send with hash from
// a's rolling window (entries older than the window no longer count).
func deleteVelocity(tx *bolt.Tx, a nano.PublicKey, hash nano.Hash, now time.Time) error {
	c := tx.Bucket(bucketVelocity).Cursor()
	var from [8]byte
	binary.BigEndian.PutUint64(from[:], uint64(now.Add(-velocityWindow).UnixNano()))
	var doomed [][]byte
	for k, _ := c.Seek(acctKey(a, from[:])); k != nil && bytes.HasPrefix(k, a[:]); k, _ = c.Next() {
		if len(k) != 32+8+8 {
			return fmt.Errorf("signer: corrupt velocity key of %d bytes", len(k))
		}
		if bytes.Equal(k[40:], hash[:8]) {
			doomed = append(doomed, append([]byte(nil), k...))
		}
	}
	for _, k := range doomed {
		if err := tx.Bucket(bucketVelocity).Delete(k); err != nil {
			return err
		}
	}
	return nil
}
