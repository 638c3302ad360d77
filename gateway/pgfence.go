package gateway

import (
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/nanokms/nanokms/gateway/leader"
)

// Fencing the driver's writes on PostgreSQL. When several gateways share
// the database (Options.Elector), the one that leads the medium writes
// under its term: every transaction holding a change of the driver (apply,
// the publish list's claim) calls leader.Fence first, so that it fails
// with an error wrapping leader.ErrDeposed, storing nothing, once another
// term began, and the rows it changes take the term's epoch. Between
// terms the fence is the epoch 0, which no term has: a driver write then
// fails the same way. A submission (insert) is the API's, never fenced:
// in a group with a deposed driver write it fails with it, and is then
// run again alone (groupCommit), so the API never fails for the driver.

// pgFence is a term of leadership of a medium, as the store fences with.
type pgFence struct {
	medium string
	epoch  uint64 // 0: no term (between terms)
}

// epochValue is the epoch the rows a write changes take: the term's, or
// 0 (their epoch kept) without a fence.
func (f *pgFence) epochValue() int64 {
	if f == nil {
		return 0
	}
	return int64(f.epoch) //nolint:gosec // an epoch is a bigint in gateway_leader
}

// setFence makes the store fence the writes that follow with the term of
// medium with epoch (0: between terms, every driver write refused).
func (s *pgStore) setFence(medium string, epoch uint64) {
	s.fence.Store(&pgFence{medium: medium, epoch: epoch})
}

// fenceFor calls leader.Fence for f in t, once per transaction; nil f
// (the database's single gateway) fences nothing.
func (t *pgTx) fenceFor(f *pgFence) error {
	if f == nil || (t.fenced != nil && *t.fenced == *f) {
		return nil
	}
	if err := leader.Fence(t.ctx, t.tx, f.medium, f.epoch); err != nil {
		return fmt.Errorf("gateway: the driver's write: %w", err)
	}
	t.fenced = f
	return nil
}

// claimPublishing returns the ids of the requests on the publish list,
// claimed for f's term: each row not locked by another transaction (a
// deposed leader's, say: FOR UPDATE SKIP LOCKED, so that a new leader is
// never held up by one) takes the term's epoch, in a fenced transaction.
// A row skipped is claimed by a later pass.
func (s *pgStore) claimPublishing(f *pgFence) ([]string, error) {
	var ids []string
	err := s.gc.write("claim", 0, func(t *pgTx) error {
		ids = ids[:0]
		if err := t.fenceFor(f); err != nil {
			return err
		}
		rows, err := t.tx.Query(t.ctx, `UPDATE gateway_requests r SET epoch = $1 FROM (
				SELECT request_id FROM gateway_requests WHERE publishing ORDER BY request_id FOR UPDATE SKIP LOCKED) c
			WHERE r.request_id = c.request_id RETURNING r.request_id`, f.epochValue())
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	slices.Sort(ids)
	return ids, err
}
