package signer

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Re-adoption: the way back to signing for an account whose frontier is
// unconfirmed (restored from a backup into a lost state: restore.go). The
// signer may have signed blocks after the backup was taken, which it no
// longer knows; the ledger holds them if they were published. So it signs
// nothing for the account until an operator gives its current head, read
// from the network, which the signer verifies: signed by the account (or
// an epoch signer), and equal to the restored frontier or descending from
// it through the blocks between (each signed, each built on the one
// before). The record then moves to the head: a block signed after the
// backup is behind the new frontier, and a request on it is refused
// (HEAD_NOT_FRONTIER), never signed a second time.
//
// What the signer cannot check is that the head is the latest: a block it
// signed after the backup that was never published is in no node's
// ledger. docs/OPERATIONS.md ("Backup and restore drill") has the
// operator drain the hot side first.

// unconfirmedRefusal is the refusal of a request for an account whose
// frontier is unconfirmed.
func unconfirmedRefusal(rec *AccountRecord) *Refusal {
	return refuse(rUnconfirmed, "the frontier %s of %s was restored from a backup and is not confirmed: blocks may have been signed after the backup; re-adopt the account from its current head (nanokms signer adopt --head, with --chain for the blocks between)",
		frontierName(rec.FrontierHash), rec.Account.Address())
}

// readoptPlan is a verified re-adoption: the record to write over the
// restored one.
type readoptPlan struct {
	rec    AccountRecord
	before nano.Hash // the restored frontier the plan was built on
	detail string
}

// planReadopt verifies a re-adoption of cur, an unconfirmed record, by the
// key of wallet W index I (pub): head, the current head (nil for an
// account still unopened), and chain, the blocks after cur's frontier up
// to the one before head, oldest first; height, when not 0, must be what
// the signer works out when it knows cur's height.
func (s *Signer) planReadopt(cur *AccountRecord, wallet string, index uint32, head *nano.StateBlock, chain []nano.StateBlock, height uint64) (*readoptPlan, *Refusal) {
	next := AccountRecord{Account: cur.Account, Wallet: wallet, Index: index}
	from := fmt.Sprintf("the restored frontier %s", frontierName(cur.FrontierHash))
	if head == nil {
		switch {
		case cur.Frontier != nil:
			return nil, refuseField(rNotFrontier, "head", "required: %s is an opened account (%s); give its current head", cur.Account.Address(), from)
		case len(chain) > 0:
			return nil, refuseField(rMalformed, "chain", "given without a head")
		}
		return &readoptPlan{rec: next, detail: fmt.Sprintf("re-adopted wallet %q index %d, unopened, as restored", wallet, index)}, nil
	}
	if head.Account != cur.Account {
		return nil, refuseField(rMalformed, "head", "belongs to %s, but wallet %q index %d is %s", head.Account.Address(), wallet, index, cur.Account.Address())
	}
	h := head.Hash()
	if !s.v.verifyBlockSig(head, h) {
		return nil, refuseField(rHeadSig, "head", "the block's signature does not verify")
	}
	prev := cur.FrontierHash
	for i := range chain {
		c := &chain[i]
		field := fmt.Sprintf("chain[%d]", i)
		ch := c.Hash()
		switch {
		case c.Account != cur.Account:
			return nil, refuseField(rMalformed, field, "belongs to %s, not to %s", c.Account.Address(), cur.Account.Address())
		case c.Previous != prev:
			return nil, refuseField(rHeadHash, field, "built on %s, not on %s", frontierName(c.Previous), chainLink(i, prev, cur))
		case !s.v.verifyBlockSig(c, ch):
			return nil, refuseField(rHeadSig, field, "the block's signature does not verify")
		}
		prev = ch
	}
	if len(chain) == 0 && h == cur.FrontierHash {
		// The ledger is where the backup left it: the restored record
		// stands, with the frontier before it (this signer signed it).
		next.Frontier, next.FrontierHash, next.Height, next.Prior = cur.Frontier, cur.FrontierHash, cur.Height, cur.Prior
		if height != 0 && cur.Height != 0 && height != cur.Height {
			return nil, refuseField(rMalformed, "height", "%d, but the restored frontier's height is %d", height, cur.Height)
		}
		if next.Height == 0 {
			next.Height = height
		}
		blk := *cur.Frontier
		next.Frontier = &blk
		return &readoptPlan{rec: next, before: cur.FrontierHash,
			detail: fmt.Sprintf("re-adopted wallet %q index %d, head %s: the restored frontier", wallet, index, h)}, nil
	}
	if head.Previous != prev {
		if len(chain) == 0 {
			return nil, refuseField(rNotFrontier, "head", "%s is neither %s nor built on it (built on %s): give the blocks between with chain, oldest first",
				h, from, frontierName(head.Previous))
		}
		return nil, refuseField(rHeadHash, "head", "built on %s, not on chain[%d] %s", frontierName(head.Previous), len(chain)-1, prev)
	}
	steps := uint64(len(chain)) + 1
	var want uint64
	switch {
	case cur.Frontier == nil:
		want = steps
	case cur.Height > 0:
		want = cur.Height + steps
	}
	if want != 0 && height != 0 && height != want {
		return nil, refuseField(rMalformed, "height", "%d, but the restored frontier's height %d and the %d blocks after it make %d", height, cur.Height, steps, want)
	}
	if want == 0 {
		want = height
	}
	blk := *head
	next.Frontier, next.FrontierHash, next.Height = &blk, h, want
	return &readoptPlan{rec: next, before: cur.FrontierHash,
		detail: fmt.Sprintf("re-adopted wallet %q index %d, head %s: %d blocks after %s", wallet, index, h, steps, from)}, nil
}

// chainLink names what block i of a re-adoption's chain must be built on.
func chainLink(i int, prev nano.Hash, cur *AccountRecord) string {
	if i == 0 {
		return "the restored frontier " + frontierName(cur.FrontierHash)
	}
	return fmt.Sprintf("chain[%d] %s", i-1, prev)
}

// readoptAudit is the audit record of a re-adoption.
func readoptAudit(p *readoptPlan, at time.Time) *pb.AuditRecord {
	return &pb.AuditRecord{
		TimeUnixNano: at.UnixNano(),
		Decision:     DecisionAdopted,
		Account:      p.rec.Account[:],
		Detail:       p.detail,
		BlockHash:    blockHashOrNil(p.rec),
	}
}

// checkReadopt returns errStale unless cur (ok: the account is tracked)
// is still the unconfirmed record p was built on.
func checkReadopt(cur *AccountRecord, ok bool, p *readoptPlan) error {
	if !ok || !cur.Unconfirmed || cur.FrontierHash != p.before {
		return errStale
	}
	return nil
}

// readopt writes a re-adoption's record over the unconfirmed one and its
// audit record, in one transaction; errStale when the record is no longer
// the unconfirmed one the plan was built on.
func (s *Store) readopt(p *readoptPlan, at time.Time) error {
	err := s.write(func(tx *bolt.Tx) error {
		var cur AccountRecord
		ok, _, err := getAccount(tx, p.rec.Account, &cur)
		if err != nil {
			return err
		}
		if err := checkReadopt(&cur, ok, p); err != nil {
			return err
		}
		if _, err := appendAudit(tx, readoptAudit(p, at)); err != nil {
			return err
		}
		return putRecord(tx.Bucket(bucketAccounts), p.rec.Account[:], &p.rec)
	})
	if err == nil {
		s.notifyAppended()
	}
	return err
}

func (b boltState) readopt(_ context.Context, p *readoptPlan, at time.Time) error {
	return b.s.readopt(p, at)
}

func (s *PGStore) readopt(ctx context.Context, p *readoptPlan, at time.Time) error {
	data, err := p.rec.MarshalBinary()
	if err != nil {
		return err
	}
	var raw []byte
	var found bool
	return s.write(ctx, &pgCommitReq{
		keys: []string{accountKey(p.rec.Account)},
		check: func(t *pgTx) {
			raw, found = nil, false
			t.reads.Queue("SELECT record FROM signer_accounts WHERE account = $1", p.rec.Account[:]).Query(func(rows pgx.Rows) error {
				_, err := pgx.ForEachRow(rows, []any{&raw}, func() error { found = true; return nil })
				return err
			})
		},
		apply: func(t *pgTx) error {
			var cur AccountRecord
			if found {
				if err := cur.UnmarshalBinary(raw); err != nil {
					return err
				}
			}
			if err := checkReadopt(&cur, found, p); err != nil {
				return err
			}
			if _, err := t.appendAudit(readoptAudit(p, at)); err != nil {
				return err
			}
			t.writes.Queue(pgExpect("UPDATE signer_accounts SET frontier = $2, record = $3 WHERE account = $1 AND frontier = $4 RETURNING 1", 5),
				p.rec.Account[:], p.rec.FrontierHash[:], data, p.before[:], 1)
			return nil
		},
	})
}
