package devnode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nanokms/nanokms/nano"
)

// The state file: processed blocks in processing order, and which of them
// are confirmed. Genesis is not stored (it is derived from the dev seed);
// its hash is, so that a file made for another genesis is refused.
var (
	bucketBlocks    = []byte("blocks")    // u64-BE seq → encoded block ‖ u64-BE unix seconds
	bucketConfirmed = []byte("confirmed") // hash → empty
	bucketMeta      = []byte("meta")      // "genesis" → hash
	keyGenesis      = []byte("genesis")
)

const storedBlockLen = 32 + 32 + 32 + 16 + 32 + 64 + 8 + 8

type store struct {
	db *bolt.DB
}

func openStore(path string, genesis nano.Hash) (*store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("devnode: state file %s is in use by another process", path)
		}
		return nil, fmt.Errorf("devnode: opening state file %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketBlocks, bucketConfirmed, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if g := meta.Get(keyGenesis); g != nil {
			if string(g) != string(genesis[:]) {
				return fmt.Errorf("devnode: state file %s belongs to another genesis", path)
			}
			return nil
		}
		return meta.Put(keyGenesis, genesis[:])
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

func encodeStored(b *nano.StateBlock, ts uint64) []byte {
	out := make([]byte, 0, storedBlockLen)
	out = append(out, b.Account[:]...)
	out = append(out, b.Previous[:]...)
	out = append(out, b.Representative[:]...)
	bal := b.Balance.Bytes()
	out = append(out, bal[:]...)
	out = append(out, b.Link[:]...)
	out = append(out, b.Signature[:]...)
	out = binary.BigEndian.AppendUint64(out, uint64(b.Work))
	out = binary.BigEndian.AppendUint64(out, ts)
	return out
}

func decodeStored(v []byte) (nano.StateBlock, uint64, error) {
	var b nano.StateBlock
	if len(v) != storedBlockLen {
		return b, 0, ErrStateFileInconsistent
	}
	copy(b.Account[:], v[0:32])
	copy(b.Previous[:], v[32:64])
	copy(b.Representative[:], v[64:96])
	var bal [16]byte
	copy(bal[:], v[96:112])
	b.Balance = nano.AmountFromBytes(bal)
	copy(b.Link[:], v[112:144])
	copy(b.Signature[:], v[144:208])
	b.Work = nano.Work(binary.BigEndian.Uint64(v[208:216]))
	return b, binary.BigEndian.Uint64(v[216:224]), nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// putBlock records a processed block; it is committed (with fsync) before
// the ledger applies it.
func (s *store) putBlock(seq uint64, b *nano.StateBlock, ts uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlocks).Put(seqKey(seq), encodeStored(b, ts))
	})
}

func (s *store) putConfirmed(h nano.Hash) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketConfirmed).Put(h[:], []byte{})
	})
}

type storedBlock struct {
	seq   uint64
	block nano.StateBlock
	ts    uint64
}

// load returns the stored blocks in processing order and the confirmed set.
func (s *store) load() ([]storedBlock, map[nano.Hash]bool, error) {
	var blocks []storedBlock
	confirmed := make(map[nano.Hash]bool)
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketBlocks).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return ErrStateFileInconsistent
			}
			b, ts, err := decodeStored(v)
			if err != nil {
				return err
			}
			blocks = append(blocks, storedBlock{seq: binary.BigEndian.Uint64(k), block: b, ts: ts})
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketConfirmed).ForEach(func(k, _ []byte) error {
			if len(k) == nano.HashSize {
				confirmed[nano.Hash(k)] = true
			}
			return nil
		})
	})
	return blocks, confirmed, err
}
