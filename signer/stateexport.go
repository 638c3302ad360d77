package signer

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Export returns the state file's whole state, read in one transaction:
// every account at its current frontier, the blocks signed, the answers
// recorded, the sources received, the sends of the velocity window before
// now, the releases and the audit chain. It fails, exporting nothing, if
// the state does not pass StateExport.Check or the chain does not reach
// the head the file recorded.
func (s *Store) Export(now time.Time) (*StateExport, error) {
	x := &StateExport{Source: "bbolt", ExportedAt: now.UTC()}
	err := s.db.View(func(tx *bolt.Tx) error { return exportBoltTx(tx, x, now) })
	if err != nil {
		return nil, fmt.Errorf("signer: exporting the state: %w", err)
	}
	if err := x.Check(); err != nil {
		return nil, fmt.Errorf("signer: exporting the state: %w", err)
	}
	return x, nil
}

// exportBoltTx reads the state file's whole state into x in tx.
func exportBoltTx(tx *bolt.Tx, x *StateExport, now time.Time) error {
	if err := exportBoltAccounts(tx, x); err != nil {
		return err
	}
	prefixes, err := exportBoltSigned(tx, x)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketRequests).ForEach(func(k, v []byte) error {
		if len(v) < 32 {
			return fmt.Errorf("%w: the answer to request %q", errCorrupt, k)
		}
		x.Requests = append(x.Requests, ExportRequest{ID: string(k), IntentDigest: [32]byte(v[:32]), Response: bytes.Clone(v[32:])})
		return nil
	}); err != nil {
		return err
	}
	if err := tx.Bucket(bucketReceived).ForEach(func(k, v []byte) error {
		if len(k) != 64 {
			return fmt.Errorf("%w: a received-source key of %d bytes", errCorrupt, len(k))
		}
		x.Received = append(x.Received, ExportReceived{Account: nano.PublicKey(k[:32]), Source: nano.Hash(k[32:]), RequestID: string(v)})
		return nil
	}); err != nil {
		return err
	}
	if err := exportBoltSends(tx, x, prefixes, now); err != nil {
		return err
	}
	if b := tx.Bucket(bucketReleased); b != nil {
		if err := b.ForEach(func(k, v []byte) error {
			if len(v) != 8+32 {
				return fmt.Errorf("%w: the release of request %q", errCorrupt, k)
			}
			x.Released = append(x.Released, ExportReleased{RequestID: string(k), AuditSeq: binary.BigEndian.Uint64(v), Block: nano.Hash(v[8:])})
			return nil
		}); err != nil {
			return err
		}
	}
	if b := tx.Bucket(bucketReleases); b != nil {
		if err := b.ForEach(func(k, v []byte) error {
			if len(k) != 32 || len(v) != 8 {
				return fmt.Errorf("%w: a release statement applied", errCorrupt)
			}
			x.Releases = append(x.Releases, ExportRelease{Digest: [32]byte(k), AuditSeq: binary.BigEndian.Uint64(v)})
			return nil
		}); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
		x.Audit = append(x.Audit, bytes.Clone(v))
		return nil
	}); err != nil {
		return err
	}
	var seq uint64
	var hash []byte
	if head := tx.Bucket(bucketMeta).Get(keyAuditHead); head != nil {
		if len(head) != 8+32 {
			return fmt.Errorf("%w: the audit head", errCorrupt)
		}
		seq, hash = binary.BigEndian.Uint64(head), head[8:]
	}
	return checkExportHead(x, seq, hash)
}

func exportBoltAccounts(tx *bolt.Tx, x *StateExport) error {
	signed := tx.Bucket(bucketSigned)
	return tx.Bucket(bucketAccounts).ForEach(func(k, v []byte) error {
		var rec AccountRecord
		if err := rec.UnmarshalBinary(v); err != nil {
			return err
		}
		if !bytes.Equal(k, rec.Account[:]) {
			return fmt.Errorf("%w: the record of %X is kept under another key", errCorrupt, rec.Account[:])
		}
		if _, err := followChain(signed, &rec); err != nil {
			return err
		}
		x.Accounts = append(x.Accounts, rec)
		return nil
	})
}

// sendKey finds a send's block hash from the first 8 bytes the velocity
// bucket keeps of it.
type sendKey struct {
	account nano.PublicKey
	prefix  [8]byte
}

func exportBoltSigned(tx *bolt.Tx, x *StateExport) (map[sendKey][]nano.Hash, error) {
	prefixes := map[sendKey][]nano.Hash{}
	err := tx.Bucket(bucketSigned).ForEach(func(k, v []byte) error {
		var sb SignedBlock
		if err := sb.UnmarshalBinary(v); err != nil {
			return err
		}
		if len(k) != 64 || !bytes.Equal(k[:32], sb.Block.Account[:]) || !bytes.Equal(k[32:], sb.Block.Previous[:]) {
			return fmt.Errorf("%w: signed block %s is kept under another key", errCorrupt, sb.Hash)
		}
		x.Signed = append(x.Signed, sb)
		sk := sendKey{account: sb.Block.Account, prefix: [8]byte(sb.Hash[:8])}
		prefixes[sk] = append(prefixes[sk], sb.Hash)
		return nil
	})
	return prefixes, err
}

// exportBoltSends exports the velocity entries of the window before now,
// each with its block's full hash (the bucket keeps 8 bytes of it).
// Older entries no longer count for anything and are left out.
func exportBoltSends(tx *bolt.Tx, x *StateExport, prefixes map[sendKey][]nano.Hash, now time.Time) error {
	from := now.Add(-velocityWindow).UnixNano()
	err := tx.Bucket(bucketVelocity).ForEach(func(k, v []byte) error {
		if len(k) != 32+8+8 || len(v) != 16 {
			return fmt.Errorf("%w: a velocity entry", errCorrupt)
		}
		at := int64(binary.BigEndian.Uint64(k[32:40]))
		if at < from {
			return nil
		}
		a := nano.PublicKey(k[:32])
		hashes := prefixes[sendKey{account: a, prefix: [8]byte(k[40:])}]
		if len(hashes) != 1 {
			return fmt.Errorf("%w: the send of %s at %s in the velocity window names %d signed blocks, not one", errCorrupt, a.Address(), time.Unix(0, at).UTC(), len(hashes))
		}
		x.Sends = append(x.Sends, ExportSend{Account: a, At: at, Hash: hashes[0], Amount: nano.AmountFromBytes([16]byte(v))})
		return nil
	})
	slices.SortFunc(x.Sends, func(a, b ExportSend) int { return bytes.Compare(appendSend(nil, &a)[:72], appendSend(nil, &b)[:72]) })
	return err
}

// checkExportHead checks that x's audit chain ends at the head the store
// recorded (seq and hash).
func checkExportHead(x *StateExport, seq uint64, hash []byte) error {
	if seq != uint64(len(x.Audit)) {
		return &AuditBreak{Seq: uint64(len(x.Audit)) + 1, Reason: fmt.Sprintf("the chain ends at record %d but the store recorded %d records: records were removed from its end", len(x.Audit), seq)}
	}
	if seq == 0 {
		return nil
	}
	last := new(pb.AuditRecord)
	if err := proto.Unmarshal(x.Audit[seq-1], last); err != nil || !bytes.Equal(last.GetHash(), hash) {
		return &AuditBreak{Seq: seq, Reason: "the last record's hash is not the recorded head's"}
	}
	return nil
}

// Export returns the whole state of the signers on the database, read in
// one read-only REPEATABLE READ transaction (the signers may keep
// running: what they commit meanwhile is not in it), as Store.Export
// does.
func (s *PGStore) Export(ctx context.Context, now time.Time) (*StateExport, error) {
	s.cmu.RLock()
	closed := s.closed
	s.cmu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	x := &StateExport{Source: "postgres", ExportedAt: now.UTC()}
	err := s.reach.note(pgWrap(ctx, s.exportTx(ctx, x, now)))
	if err != nil {
		return nil, fmt.Errorf("signer: exporting the state: %w", err)
	}
	if err := x.Check(); err != nil {
		return nil, fmt.Errorf("signer: exporting the state: %w", err)
	}
	return x, nil
}

func (s *PGStore) exportTx(ctx context.Context, x *StateExport, now time.Time) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read-only
	return exportPGRows(ctx, tx, x, now)
}

// exportPGRows reads the database's whole state into x in tx.
func exportPGRows(ctx context.Context, tx pgx.Tx, x *StateExport, now time.Time) error {
	var headSeq int64
	var headHash []byte
	if err := tx.QueryRow(ctx, "SELECT seq, hash FROM signer_audit_head").Scan(&headSeq, &headHash); err != nil {
		return err
	}
	var b1, b2 []byte
	var s1 string
	var i1 int64
	each := func(sql string, dest []any, fn func() error, args ...any) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		_, err = pgx.ForEachRow(rows, dest, fn)
		return err
	}
	steps := []func() error{
		func() error {
			return each("SELECT record FROM signer_accounts ORDER BY account", []any{&b1}, func() error {
				var rec AccountRecord
				if err := rec.UnmarshalBinary(b1); err != nil {
					return err
				}
				x.Accounts = append(x.Accounts, rec)
				return nil
			})
		},
		func() error {
			return each("SELECT record FROM signer_signed ORDER BY account, previous", []any{&b1}, func() error {
				var sb SignedBlock
				if err := sb.UnmarshalBinary(b1); err != nil {
					return err
				}
				x.Signed = append(x.Signed, sb)
				return nil
			})
		},
		func() error {
			return each(`SELECT request_id, intent_digest, response FROM signer_requests ORDER BY request_id COLLATE "C"`, []any{&s1, &b1, &b2}, func() error {
				if len(b1) != 32 {
					return fmt.Errorf("%w: the answer to request %q", errCorrupt, s1)
				}
				x.Requests = append(x.Requests, ExportRequest{ID: s1, IntentDigest: [32]byte(b1), Response: bytes.Clone(b2)})
				return nil
			})
		},
		func() error {
			return each("SELECT account, source, request_id FROM signer_received ORDER BY account, source", []any{&b1, &b2, &s1}, func() error {
				x.Received = append(x.Received, ExportReceived{Account: nano.PublicKey(b1), Source: nano.Hash(b2), RequestID: s1})
				return nil
			})
		},
		func() error {
			var amount []byte
			return each("SELECT account, at_unix_nano, hash, amount FROM signer_velocity WHERE at_unix_nano >= $1 ORDER BY account, at_unix_nano, hash",
				[]any{&b1, &i1, &b2, &amount}, func() error {
					x.Sends = append(x.Sends, ExportSend{Account: nano.PublicKey(b1), At: i1, Hash: nano.Hash(b2), Amount: nano.AmountFromBytes([16]byte(amount))})
					return nil
				}, now.Add(-velocityWindow).UnixNano())
		},
		func() error {
			return each(`SELECT request_id, audit_seq, block FROM signer_released ORDER BY request_id COLLATE "C"`, []any{&s1, &i1, &b1}, func() error {
				x.Released = append(x.Released, ExportReleased{RequestID: s1, AuditSeq: uint64(i1), Block: nano.Hash(b1)})
				return nil
			})
		},
		func() error {
			return each("SELECT digest, audit_seq FROM signer_releases ORDER BY digest", []any{&b1, &i1}, func() error {
				x.Releases = append(x.Releases, ExportRelease{Digest: [32]byte(b1), AuditSeq: uint64(i1)})
				return nil
			})
		},
		func() error {
			return each("SELECT record FROM signer_audit ORDER BY seq", []any{&b1}, func() error {
				x.Audit = append(x.Audit, bytes.Clone(b1))
				return nil
			})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return checkExportHead(x, uint64(headSeq), headHash)
}
