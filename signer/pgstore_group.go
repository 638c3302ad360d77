package signer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nanokms/nanokms/internal/pgerr"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// The PGStore's group transactions. The writes queued while a group
// commits form the next group, and each group is one SERIALIZABLE
// transaction in two round trips to the database:
//
//  1. BEGIN, the turn on the audit chain's head (LOCK TABLE), the head's
//     row, and every write's precheck reads (the group's signed decisions
//     read in one statement);
//  2. once the writes have checked what they read and sealed their audit
//     records: every write's statements (the group's audit records, and
//     each table's rows of its signed decisions, in one multi-row
//     statement each), the head's update and COMMIT.
//
// The statements that must change exactly the rows the prechecks found
// (the accounts' frontiers, the head) fail inside the transaction when
// they do not, so that the COMMIT sent behind them in the same round trip
// does not run. A write's answer is released only once the COMMIT's
// result is read.

// pgTx is one try of a group's transaction: the two batches it sends, and
// the audit chain's head as the group's writes leave it.
type pgTx struct {
	reads  *pgx.Batch // BEGIN, the turn, the head, the prechecks
	writes *pgx.Batch // the writes; the head's update and COMMIT are added last

	headSeq  uint64
	headHash []byte
	appended bool
	audit    struct {
		seq          []int64
		hash, record [][]byte
	}

	signs pgSigns // the group's signed decisions (pgstore_write.go)
}

// appendAudit seals rec as the chain's next record and adds it to the
// group's audit records.
func (t *pgTx) appendAudit(rec *pb.AuditRecord) (uint64, error) {
	seq := t.headSeq + 1
	data, h, err := sealAudit(rec, seq, t.headHash)
	if err != nil {
		return 0, err
	}
	t.audit.seq = append(t.audit.seq, int64(seq))
	t.audit.hash = append(t.audit.hash, h[:])
	t.audit.record = append(t.audit.record, data)
	t.headSeq, t.headHash, t.appended = seq, h[:], true
	return seq, nil
}

// pgCommitReq is one write waiting for a group. check, when set, queues
// in t.reads what the write's precheck reads (or adds the write to
// t.signs); apply, once those results are in, returns a precheck error
// (errStale, a *Refusal) having queued nothing, or seals its audit
// records (t.appendAudit) and queues its writes. Both run again on each
// try of the transaction.
type pgCommitReq struct {
	keys  []string // what it reads and writes: a group holds one write per key
	check func(t *pgTx)
	apply func(t *pgTx) error
	done  chan error
}

// write runs req's write in the next group transaction it may join and
// returns its result once that committed.
func (s *PGStore) write(ctx context.Context, req *pgCommitReq) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	req.done = make(chan error, 1)
	s.cmu.RLock()
	if s.closed {
		s.cmu.RUnlock()
		return ErrClosed
	}
	select {
	case s.commits <- req:
	case <-ctx.Done():
		s.cmu.RUnlock()
		return ctx.Err()
	}
	s.cmu.RUnlock()
	select {
	case err := <-req.done:
		return s.reach.note(err)
	case <-ctx.Done():
		// The write may still commit: a repeat of the request gets it.
		return ctx.Err()
	}
}

// committer commits queued writes in groups until Close. The prechecks
// of a group are all read before any of its writes, so a write that
// shares a key (an account, a request id) with one already in the group
// waits for the next group, as do the later writes sharing a key with
// it: each write is checked against what the writes queued before it on
// the same keys left.
func (s *PGStore) committer() {
	defer close(s.stopped)
	var pending []*pgCommitReq
	open := true
	for open || len(pending) > 0 {
		if len(pending) == 0 {
			r, ok := <-s.commits
			if !ok {
				return
			}
			pending = append(pending, r)
		}
	drain:
		for open && len(pending) < maxGroup {
			select {
			case r, ok := <-s.commits:
				if !ok {
					open = false
					break drain
				}
				pending = append(pending, r)
			default:
				break drain
			}
		}
		var group []*pgCommitReq
		group, pending = splitGroup(pending)
		s.commitGroup(group)
	}
}

// splitGroup returns the writes of pending that form the next group (in
// their order, no two sharing a key) and the rest, in order.
func splitGroup(pending []*pgCommitReq) (group, rest []*pgCommitReq) {
	taken := make(map[string]bool)
	for _, r := range pending {
		shared := false
		for _, k := range r.keys {
			shared = shared || taken[k]
		}
		for _, k := range r.keys {
			taken[k] = true
		}
		if shared {
			rest = append(rest, r)
		} else {
			group = append(group, r)
		}
	}
	return group, rest
}

// commitGroup runs a group's writes in one transaction, tried again while
// it fails to serialise. A write's precheck error fails that write alone;
// another error of a write runs each write on its own. Nothing is
// reported to the writers before the transaction's outcome is known.
func (s *PGStore) commitGroup(group []*pgCommitReq) {
	results, err := s.tryGroup(group)
	if err != nil && len(group) > 1 && !errors.Is(err, ErrStoreUnavailable) {
		for _, r := range group {
			res, err := s.tryGroup([]*pgCommitReq{r})
			if err == nil {
				err = res[0]
			}
			r.done <- err
		}
		return
	}
	for i, r := range group {
		if err != nil {
			r.done <- err
		} else {
			r.done <- results[i]
		}
	}
	if err == nil {
		for _, res := range results {
			if res == nil {
				s.notifyAppended()
				break
			}
		}
	}
}

// tryGroup runs group's writes in one SERIALIZABLE transaction, up to
// MaxTries times while it fails to serialise, within OpTimeout.
func (s *PGStore) tryGroup(group []*pgCommitReq) ([]error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.OpTimeout)
	defer cancel()
	results := make([]error, len(group))
	var err error
	for try := 0; try < s.opts.MaxTries; try++ {
		if try > 0 {
			// Jittered backoff: the signers that collided retry apart.
			d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(try, 6)))
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %w", ErrStoreUnavailable, ctx.Err())
			}
		}
		err = s.runGroup(ctx, group, results)
		if s.afterTry != nil {
			s.afterTry(err)
		}
		if err == nil || !pgerr.Retry(err) {
			break
		}
	}
	switch {
	case err == nil:
		return results, nil
	case pgerr.Retry(err):
		return nil, fmt.Errorf("%w: conflicting decisions kept the transaction from committing in %d tries: %w", ErrStoreUnavailable, s.opts.MaxTries, err)
	}
	return nil, pgWrap(context.Background(), err)
}

// errMovedInTx is what a group transaction fails with when a statement
// that must change exactly the rows its prechecks found does not (the
// statements divide by zero then: see pgExpect).
var errMovedInTx = errors.New("signer: an account's frontier or the audit chain's head moved inside its transaction")

// pgExpect wraps a data-modifying statement (with RETURNING 1) so that it
// fails, inside the transaction, unless it returns exactly n rows, n
// being the parameter numbered param: the COMMIT pipelined behind it
// then does not run.
func pgExpect(stmt string, param int) string {
	return fmt.Sprintf("WITH changed AS (%s) SELECT 1 / (count(*) = $%d)::int FROM changed", stmt, param)
}

// runGroup is one try of a group's transaction.
func (s *PGStore) runGroup(ctx context.Context, group []*pgCommitReq, results []error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer func() {
		// Ends what a failed try left open (a connection still in a
		// transaction would be closed by the pool rather than reused).
		if conn.Conn().PgConn().TxStatus() != 'I' {
			rctx, cancel := context.WithTimeout(context.Background(), s.opts.OpTimeout)
			_, _ = conn.Exec(rctx, "ROLLBACK")
			cancel()
		}
		conn.Release()
	}()
	t := &pgTx{reads: &pgx.Batch{}, writes: &pgx.Batch{}}
	t.reads.Queue("BEGIN ISOLATION LEVEL SERIALIZABLE")
	// The writes of every signer take turns (each appends to the one
	// audit chain): the turn is taken first, by LOCK TABLE, which takes
	// no snapshot, so that the transaction's snapshot (taken by the
	// statement after it) comes after the previous turn's commit. A
	// snapshot taken before waiting would be out of date once the wait
	// ended, and the transaction would fail to serialise at once. Plain
	// reads (a signer's reads, audit verify, state export) are not
	// blocked. The lock (EXCLUSIVE) keeps every other writer of the head
	// out until this transaction ends, so its row is read without FOR
	// UPDATE, and its update below checks that it had not moved.
	t.reads.Queue("LOCK TABLE signer_audit_head IN EXCLUSIVE MODE")
	var startSeq int64
	var retired error
	t.reads.Queue("SELECT seq, hash, " + pgRetiredCols + " FROM signer_audit_head").QueryRow(func(row pgx.Row) error {
		var rat, rseq *int64
		var rto *string
		if err := row.Scan(&startSeq, &t.headHash, &rat, &rseq, &rto); err != nil {
			return err
		}
		if r := pgRetirement(rat, rseq, rto); r != nil {
			// Retired under this signer (retire.go): nothing more commits.
			retired = &RetiredError{Store: pgRetiredStore, Retirement: *r}
		}
		return nil
	})
	for _, r := range group {
		if r.check != nil {
			r.check(t)
		}
	}
	t.signs.queueCheck(t.reads)
	if err := sendBatch(ctx, conn, t.reads); err != nil {
		return err
	}
	if retired != nil {
		return retired
	}
	t.headSeq = uint64(startSeq)
	for i, r := range group {
		results[i] = r.apply(t)
		if results[i] != nil && !precheckErr(results[i]) {
			return results[i]
		}
	}
	if t.appended {
		t.writes.Queue("INSERT INTO signer_audit (seq, hash, record) SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])",
			t.audit.seq, t.audit.hash, t.audit.record)
		t.signs.queueWrites(t.writes)
		t.writes.Queue(pgExpect("UPDATE signer_audit_head SET seq = $1, hash = $2 WHERE seq = $3 RETURNING 1", 4),
			int64(t.headSeq), t.headHash, startSeq, 1)
	}
	t.writes.Queue("COMMIT")
	if s.beforeCommit != nil {
		s.beforeCommit()
	}
	err = sendBatch(ctx, conn, t.writes)
	if pgerr.Code(err) == "22012" { // division_by_zero: pgExpect's
		return fmt.Errorf("%w: %w", errMovedInTx, err)
	}
	return err
}

// sendBatch sends b in one round trip and reads every result, running
// the queued callbacks; it returns the first error.
func sendBatch(ctx context.Context, conn *pgxpool.Conn, b *pgx.Batch) error {
	return conn.SendBatch(ctx, b).Close()
}
