package signer

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// AdoptBatch records many tracked accounts in one transaction, each with
// the audit record Adopt writes, all at time at: it is for tools that
// build large state files (benchmark fixtures, migrations), and like Adopt
// it checks nothing about the records (Signer.Adopt verifies a head; this
// does not). Either every record is written or none: it fails with a
// REFUSAL_REASON_ALREADY_TRACKED refusal, writing nothing, if any account
// is tracked already or appears twice in recs.
func (s *Store) AdoptBatch(recs []AccountRecord, at time.Time) error {
	if len(recs) == 0 {
		return nil
	}
	seen := make(map[nano.PublicKey]int, len(recs))
	for i := range recs {
		if j, dup := seen[recs[i].Account]; dup {
			return refuse(pb.RefusalReason_REFUSAL_REASON_ALREADY_TRACKED, "recs[%d]: account %s is also recs[%d]", i, recs[i].Account.Address(), j)
		}
		seen[recs[i].Account] = i
	}
	err := s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		// Every check before the first write: a refusal must leave the
		// transaction, which other writes share, untouched.
		for i := range recs {
			if b.Get(recs[i].Account[:]) != nil {
				return refuse(pb.RefusalReason_REFUSAL_REASON_ALREADY_TRACKED, "recs[%d]: account %s is already tracked", i, recs[i].Account.Address())
			}
		}
		for i := range recs {
			rec := &recs[i]
			if _, err := appendAudit(tx, adoptionAudit(rec, at)); err != nil {
				return err
			}
			if err := putRecord(b, rec.Account[:], rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.notifyAppended()
	}
	return err
}

// adoptionAudit is the audit record of adopting rec at time at, as Adopt
// writes it (TestAdoptBatch compares the two).
func adoptionAudit(rec *AccountRecord, at time.Time) *pb.AuditRecord {
	detail := fmt.Sprintf("wallet %q index %d, unopened", rec.Wallet, rec.Index)
	if rec.Frontier != nil {
		detail = fmt.Sprintf("wallet %q index %d, head %s", rec.Wallet, rec.Index, rec.FrontierHash)
	}
	return &pb.AuditRecord{
		TimeUnixNano: at.UnixNano(),
		Decision:     DecisionAdopted,
		Account:      rec.Account[:],
		Detail:       detail,
		BlockHash:    blockHashOrNil(*rec),
	}
}
