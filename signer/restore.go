package signer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Restoring a backup (nanokms signer restore). A backup is a state export
// taken while the signer ran (Server.Backup); by the time it is restored,
// the signer may have signed more. Put back as it is, it would let the
// signer sign a second block on a head it already signed on: a fork. So a
// restore is an import (stateimport.go) with one more rule:
//
//   - Over a store that holds state (the signer's own, live), the import's
//     checks decide: a store holding anything the backup does not (a block
//     signed, an answer, audit records past the backup's) is refused with
//     an *ImportConflict and nothing changes; a backup that holds all of
//     the store (the same state, or a later one) is taken, and the accounts
//     stay as they are.
//   - Over a store that holds nothing (the live state was lost: a new file,
//     an empty database), nothing can tell what the signer signed after the
//     backup. Every account is restored with its frontier unconfirmed
//     (AccountRecord.Unconfirmed): the signer refuses to sign for it
//     (FRONTIER_UNCONFIRMED) until it is re-adopted from its current head
//     (readopt.go), which must be the restored frontier or descend from it.
//
// Either way a "restored" audit record, continuing the backup's chain,
// says what was done. A retired store (retire.go) is refused with its
// *RetiredError: its state moved to the store its retiring export was
// imported into, which a restore here would make a second signer of.

// DecisionRestored is the audit decision of a restore.
const DecisionRestored = "restored"

// RestoreResult says what a restore did.
type RestoreResult struct {
	// Lost is set when the store held nothing: every account was restored
	// with its frontier unconfirmed.
	Lost bool
	// Accounts is how many accounts the backup holds; Unconfirmed how many
	// of them are unconfirmed after the restore (all of them when Lost;
	// otherwise those the backup held unconfirmed).
	Accounts, Unconfirmed int
	// AuditSeq is the restore's audit record.
	AuditSeq uint64
}

// restoreExport returns the export a restore of x imports: a copy of x
// whose account records are unconfirmed when lost, with a "restored" audit
// record at the end of its chain (time at).
func restoreExport(x *StateExport, lost bool, at time.Time) (*StateExport, RestoreResult, error) {
	y := *x
	y.Retiring = false // its last audit record is the restore's
	y.Accounts = make([]AccountRecord, len(x.Accounts))
	copy(y.Accounts, x.Accounts)
	res := RestoreResult{Lost: lost, Accounts: len(y.Accounts)}
	for i := range y.Accounts {
		if lost {
			y.Accounts[i].Unconfirmed = true
		}
		if y.Accounts[i].Unconfirmed {
			res.Unconfirmed++
		}
	}
	detail := fmt.Sprintf("restored a backup exported at %s from %s (%d audit records, %d accounts) over the state it continues; %d frontiers unconfirmed",
		x.ExportedAt.UTC().Format(time.RFC3339), x.Source, len(x.Audit), len(x.Accounts), res.Unconfirmed)
	if lost {
		detail = fmt.Sprintf("restored a backup exported at %s from %s (%d audit records, %d accounts) into a state that held nothing: every frontier unconfirmed until re-adopted",
			x.ExportedAt.UTC().Format(time.RFC3339), x.Source, len(x.Audit), len(x.Accounts))
	}
	prev := make([]byte, 32)
	if n := len(x.Audit); n > 0 {
		last := new(pb.AuditRecord)
		if err := proto.Unmarshal(x.Audit[n-1], last); err != nil {
			return nil, RestoreResult{}, fmt.Errorf("signer: restoring: the backup's last audit record: %w", err)
		}
		prev = last.GetHash()
	}
	res.AuditSeq = uint64(len(x.Audit)) + 1
	data, _, err := sealAudit(&pb.AuditRecord{TimeUnixNano: at.UnixNano(), Decision: DecisionRestored, Detail: detail}, res.AuditSeq, prev)
	if err != nil {
		return nil, RestoreResult{}, err
	}
	y.Audit = append(append(make([][]byte, 0, len(x.Audit)+1), x.Audit...), data)
	if err := y.Check(); err != nil {
		return nil, RestoreResult{}, fmt.Errorf("signer: restoring: %w", err)
	}
	return &y, res, nil
}

// Restore replaces the state file's state with the backup x's (restore.go
// says how): refused with an *ImportConflict, changing nothing, over a
// file that holds anything x does not; with every frontier unconfirmed
// over a file that holds nothing. at is the time of its audit record.
func (s *Store) Restore(x *StateExport, at time.Time) (RestoreResult, error) {
	if err := x.Check(); err != nil {
		return RestoreResult{}, fmt.Errorf("signer: restoring: %w", err)
	}
	var res RestoreResult
	err := s.write(func(tx *bolt.Tx) error {
		if retired, err := boltRetirement(tx); err != nil || retired != nil {
			if retired != nil {
				return &RetiredError{Store: "state file " + s.path, Retirement: *retired}
			}
			return err
		}
		y, r, err := restoreExport(x, boltEmpty(tx), at)
		if err != nil {
			return err
		}
		if err := newImportIndex(y).checkBolt(tx); err != nil {
			return err
		}
		res = r
		return writeBolt(tx, y)
	})
	if err != nil {
		var ic *ImportConflict
		var re *RetiredError
		if errors.As(err, &ic) || errors.As(err, &re) {
			return RestoreResult{}, err
		}
		return RestoreResult{}, fmt.Errorf("signer: restoring: %w", err)
	}
	s.notifyAppended()
	return res, nil
}

// boltEmpty reports whether the state file holds nothing: no audit record
// (every decision, adoption and release appends one) and no account.
func boltEmpty(tx *bolt.Tx) bool {
	head := tx.Bucket(bucketMeta).Get(keyAuditHead)
	noAudit := len(head) < 8 || bytes.Equal(head[:8], make([]byte, 8))
	k, _ := tx.Bucket(bucketAccounts).Cursor().First()
	return noAudit && k == nil
}

// Restore replaces the database's state with the backup x's, as
// Store.Restore does, in the one SERIALIZABLE transaction of an import
// (PGStore.Import): whether the database holds nothing is read in it.
// Stop every signer on the database first.
func (s *PGStore) Restore(ctx context.Context, x *StateExport, at time.Time) (RestoreResult, error) {
	if s.opts.ReadOnly {
		return RestoreResult{}, ErrReadOnly
	}
	if err := x.Check(); err != nil {
		return RestoreResult{}, fmt.Errorf("signer: restoring: %w", err)
	}
	s.cmu.RLock()
	closed := s.closed
	s.cmu.RUnlock()
	if closed {
		return RestoreResult{}, ErrClosed
	}
	var res RestoreResult
	err := s.importTx(ctx, x, func(lost bool) (*StateExport, error) {
		y, r, err := restoreExport(x, lost, at)
		res = r
		return y, err
	})
	var ic *ImportConflict
	var re *RetiredError
	if errors.As(err, &ic) || errors.As(err, &re) {
		return RestoreResult{}, err
	}
	if err := s.reach.note(pgWrap(ctx, err)); err != nil {
		return RestoreResult{}, fmt.Errorf("signer: restoring: %w", err)
	}
	s.notifyAppended()
	return res, nil
}
