package signer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// The PGStore's reads. Each is one statement (one snapshot) or one
// read-only REPEATABLE READ transaction, bounded by OpTimeout.

// readOp runs f with ctx bounded by OpTimeout and classifies its error.
func (s *PGStore) readOp(ctx context.Context, f func(ctx context.Context) error) error {
	s.cmu.RLock()
	closed := s.closed
	s.cmu.RUnlock()
	if closed {
		return ErrClosed
	}
	octx, cancel := context.WithTimeout(ctx, s.opts.OpTimeout)
	defer cancel()
	return s.reach.note(pgWrap(ctx, f(octx)))
}

// sumVelocity adds up amounts (16 bytes each); a sum past the largest
// amount is MaxAmount.
func sumVelocity(amounts [][]byte) (nano.Amount, error) {
	var total nano.Amount
	for _, v := range amounts {
		if len(v) != 16 {
			return nano.Amount{}, errors.New("signer: corrupt velocity record")
		}
		var err error
		if total, err = total.Add(nano.AmountFromBytes([16]byte(v))); err != nil {
			return nano.MaxAmount, nil
		}
	}
	return total, nil
}

func decodeRequest(digest, response []byte) (StoredResponse, error) {
	if len(digest) != 32 {
		return StoredResponse{}, errors.New("signer: corrupt request record")
	}
	out := StoredResponse{IntentDigest: [32]byte(digest), Response: new(pb.SignResponse)}
	if err := proto.Unmarshal(response, out.Response); err != nil {
		return StoredResponse{}, fmt.Errorf("signer: corrupt request record: %w", err)
	}
	return out, nil
}

func (s *PGStore) read(ctx context.Context, id string, a nano.PublicKey, now time.Time) (snapshot, error) {
	var out snapshot
	err := s.readOp(ctx, func(ctx context.Context) error {
		var digest, response, relBlock, record []byte
		var relSeq *int64
		var amounts [][]byte
		// One statement: one snapshot of the request, its release, the
		// account and its window.
		if err := s.pool.QueryRow(ctx, `SELECT r.intent_digest, r.response, rel.audit_seq, rel.block, acc.record,
			(SELECT array_agg(v.amount) FROM signer_velocity v WHERE v.account = $2 AND v.at_unix_nano >= $3)
			FROM (SELECT 1) one
			LEFT JOIN signer_requests r ON r.request_id = $1
			LEFT JOIN signer_released rel ON rel.request_id = $1
			LEFT JOIN signer_accounts acc ON acc.account = $2`,
			id, a[:], now.Add(-velocityWindow).UnixNano()).Scan(&digest, &response, &relSeq, &relBlock, &record, &amounts); err != nil {
			return err
		}
		if digest != nil {
			var err error
			if out.stored, err = decodeRequest(digest, response); err != nil {
				return err
			}
			out.answered = true
			if relSeq != nil {
				if len(relBlock) != 32 {
					return errors.New("signer: corrupt released-request record")
				}
				out.released = &ReleasedRequest{AuditSeq: uint64(*relSeq), Block: nano.Hash(relBlock)}
			}
			return nil
		}
		if record == nil {
			return nil
		}
		if err := out.rec.UnmarshalBinary(record); err != nil {
			return err
		}
		out.tracked = true
		var err error
		out.sent, err = sumVelocity(amounts)
		return err
	})
	return out, err
}

func (s *PGStore) request(ctx context.Context, id string) (StoredResponse, bool, error) {
	var out StoredResponse
	var ok bool
	err := s.readOp(ctx, func(ctx context.Context) error {
		var digest, response []byte
		err := s.pool.QueryRow(ctx, "SELECT intent_digest, response FROM signer_requests WHERE request_id = $1", id).Scan(&digest, &response)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		out, err = decodeRequest(digest, response)
		ok = err == nil
		return err
	})
	return out, ok, err
}

// StoredRequest returns the answer recorded for request id as it is
// stored: the intent digest and the response's protobuf bytes, which a
// repeat returns.
func (s *PGStore) StoredRequest(ctx context.Context, id string) (digest, response []byte, ok bool, err error) {
	err = s.readOp(ctx, func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, "SELECT intent_digest, response FROM signer_requests WHERE request_id = $1", id).Scan(&digest, &response)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		ok = err == nil
		return err
	})
	return digest, response, ok, err
}

func (s *PGStore) account(ctx context.Context, a nano.PublicKey) (AccountRecord, bool, error) {
	var rec AccountRecord
	var ok bool
	err := s.readOp(ctx, func(ctx context.Context) error {
		var data []byte
		err := s.pool.QueryRow(ctx, "SELECT record FROM signer_accounts WHERE account = $1", a[:]).Scan(&data)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := rec.UnmarshalBinary(data); err != nil {
			return err
		}
		ok = true
		return nil
	})
	return rec, ok, err
}

func (s *PGStore) accounts(ctx context.Context) ([]AccountRecord, error) {
	var out []AccountRecord
	err := s.readOp(ctx, func(ctx context.Context) error {
		out = nil
		rows, err := s.pool.Query(ctx, "SELECT record FROM signer_accounts ORDER BY account")
		if err != nil {
			return err
		}
		var data []byte
		_, err = pgx.ForEachRow(rows, []any{&data}, func() error {
			var rec AccountRecord
			if err := rec.UnmarshalBinary(data); err != nil {
				return err
			}
			out = append(out, rec)
			return nil
		})
		return err
	})
	return out, err
}

func (s *PGStore) sent(ctx context.Context, a nano.PublicKey, now time.Time) (nano.Amount, error) {
	var total nano.Amount
	err := s.readOp(ctx, func(ctx context.Context) error {
		var amounts [][]byte
		if err := s.pool.QueryRow(ctx, "SELECT array_agg(amount) FROM signer_velocity WHERE account = $1 AND at_unix_nano >= $2",
			a[:], now.Add(-velocityWindow).UnixNano()).Scan(&amounts); err != nil {
			return err
		}
		var err error
		total, err = sumVelocity(amounts)
		return err
	})
	return total, err
}

func (s *PGStore) signedOn(ctx context.Context, a nano.PublicKey, previous nano.Hash) (SignedBlock, bool, error) {
	var sb SignedBlock
	var ok bool
	err := s.readOp(ctx, func(ctx context.Context) error {
		var data []byte
		err := s.pool.QueryRow(ctx, "SELECT record FROM signer_signed WHERE account = $1 AND previous = $2", a[:], previous[:]).Scan(&data)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := sb.UnmarshalBinary(data); err != nil {
			return err
		}
		ok = true
		return nil
	})
	return sb, ok, err
}

func (s *PGStore) received(ctx context.Context, a nano.PublicKey, source nano.Hash) (bool, error) {
	var ok bool
	err := s.readOp(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM signer_received WHERE account = $1 AND source = $2)", a[:], source[:]).Scan(&ok)
	})
	return ok, err
}

func (s *PGStore) releaseApplied(ctx context.Context, digest [32]byte) (uint64, bool, error) {
	var seq int64
	var ok bool
	err := s.readOp(ctx, func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, "SELECT audit_seq FROM signer_releases WHERE digest = $1", digest[:]).Scan(&seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		ok = err == nil
		return err
	})
	return uint64(seq), ok, err
}

func (s *PGStore) accountPage(ctx context.Context, after *nano.PublicKey, limit int, now time.Time) (*pb.ListAccountsResponse, error) {
	resp := &pb.ListAccountsResponse{}
	err := s.readOp(ctx, func(ctx context.Context) error {
		resp = &pb.ListAccountsResponse{}
		tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		defer tx.Rollback(context.Background()) //nolint:errcheck // read-only
		var from []byte
		if after != nil {
			from = after[:]
		}
		rows, err := tx.Query(ctx, "SELECT record FROM signer_accounts WHERE $1::bytea IS NULL OR account > $1 ORDER BY account LIMIT $2", from, limit+1)
		if err != nil {
			return err
		}
		var recs []AccountRecord
		var data []byte
		if _, err := pgx.ForEachRow(rows, []any{&data}, func() error {
			var rec AccountRecord
			if err := rec.UnmarshalBinary(data); err != nil {
				return err
			}
			recs = append(recs, rec)
			return nil
		}); err != nil {
			return err
		}
		// Cut the page at limit and at the byte budget (listing.go).
		n, budget := 0, pageByteBudget
		for n < len(recs) && n < limit {
			cost := accountStateMax + len(recs[n].Wallet)
			if cost > budget && n > 0 {
				break
			}
			budget -= cost
			n++
		}
		more := n < len(recs)
		recs = recs[:n]
		keys := make([][]byte, n)
		for i := range recs {
			keys[i] = recs[i].Account[:]
		}
		sums := make(map[nano.PublicKey][][]byte, n)
		vrows, err := tx.Query(ctx, "SELECT account, amount FROM signer_velocity WHERE account = ANY($1) AND at_unix_nano >= $2",
			keys, now.Add(-velocityWindow).UnixNano())
		if err != nil {
			return err
		}
		var acct, amount []byte
		if _, err := pgx.ForEachRow(vrows, []any{&acct, &amount}, func() error {
			if len(acct) != nano.PublicKeySize {
				return errCorrupt
			}
			k := nano.PublicKey(acct)
			sums[k] = append(sums[k], bytes.Clone(amount))
			return nil
		}); err != nil {
			return err
		}
		for i := range recs {
			rec := &recs[i]
			sent, err := sumVelocity(sums[rec.Account])
			if err != nil {
				return err
			}
			st := &pb.AccountState{
				Account:     bytes.Clone(rec.Account[:]),
				Address:     rec.Account.Address(),
				Wallet:      rec.Wallet,
				Index:       rec.Index,
				Frontier:    bytes.Clone(rec.FrontierHash[:]),
				Height:      rec.Height,
				BalanceRaw:  rec.Balance().String(),
				Sent_24HRaw: sent.String(),

				FrontierUnconfirmed: rec.Unconfirmed,
			}
			if rec.Frontier != nil {
				st.Representative = bytes.Clone(rec.Frontier.Representative[:])
			}
			resp.Accounts = append(resp.Accounts, st)
		}
		if more && n > 0 {
			resp.NextPageToken = encodePageToken(recs[n-1].Account)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// auditPage is how many audit records one query of auditFrom reads.
const auditPage = 1000

func (s *PGStore) auditFrom(ctx context.Context, from uint64, fn func(*pb.AuditRecord) error) (uint64, error) {
	next := max(from, 1)
	for {
		var page []*pb.AuditRecord
		err := s.readOp(ctx, func(ctx context.Context) error {
			page = page[:0]
			rows, err := s.pool.Query(ctx, "SELECT seq, record FROM signer_audit WHERE seq >= $1 ORDER BY seq LIMIT $2", int64(next), auditPage)
			if err != nil {
				return err
			}
			var seq int64
			var data []byte
			_, err = pgx.ForEachRow(rows, []any{&seq, &data}, func() error {
				rec := new(pb.AuditRecord)
				if err := proto.Unmarshal(data, rec); err != nil {
					return &AuditBreak{Seq: uint64(seq), Reason: "record does not decode"}
				}
				page = append(page, rec)
				return nil
			})
			return err
		})
		if err != nil {
			return next, err
		}
		// fn (a stream's Send) is called with no query open.
		for _, rec := range page {
			if err := fn(rec); err != nil {
				return next, err
			}
			next = rec.GetSeq() + 1
		}
		if len(page) < auditPage {
			return next, nil
		}
	}
}

// verifyAudit checks one snapshot of the chain: the head and the records
// are read in one read-only REPEATABLE READ transaction, so that records
// other signers append meanwhile are neither seen nor taken for a break.
// Each statement is bounded by OpTimeout, the whole walk by ctx alone (a
// long chain takes longer than one operation).
func (s *PGStore) verifyAudit(ctx context.Context) (uint64, error) {
	s.cmu.RLock()
	closed := s.closed
	s.cmu.RUnlock()
	if closed {
		return 0, ErrClosed
	}
	c := NewAuditChecker()
	err := s.reach.note(pgWrap(ctx, s.walkAudit(ctx, c)))
	return c.Count(), err
}

func (s *PGStore) walkAudit(ctx context.Context, c *AuditChecker) error {
	bctx, cancel := context.WithTimeout(ctx, s.opts.OpTimeout)
	defer cancel()
	tx, err := s.pool.BeginTx(bctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read-only
	var headSeq int64
	var headHash []byte
	// The snapshot is taken by the transaction's first statement.
	if err := tx.QueryRow(bctx, "SELECT seq, hash FROM signer_audit_head").Scan(&headSeq, &headHash); err != nil {
		return err
	}
	cancel()
	if s.duringVerify != nil {
		s.duringVerify()
	}
	for next := int64(1); ; {
		n, err := s.auditPageIn(ctx, tx, next, c)
		if err != nil {
			return err
		}
		next += int64(n)
		if n < auditPage {
			break
		}
	}
	switch {
	case uint64(headSeq) != c.Count():
		return &AuditBreak{Seq: c.Count() + 1, Reason: fmt.Sprintf("the chain ends at record %d but the store recorded %d records: records were removed from its end", c.Count(), headSeq)}
	case !bytes.Equal(headHash, c.prevHash[:]):
		return &AuditBreak{Seq: c.Count(), Reason: "the last record's hash is not the recorded head's"}
	}
	return nil
}

// auditPageIn checks up to auditPage records of tx's snapshot from seq
// from on, and returns how many it read.
func (s *PGStore) auditPageIn(ctx context.Context, tx pgx.Tx, from int64, c *AuditChecker) (int, error) {
	qctx, cancel := context.WithTimeout(ctx, s.opts.OpTimeout)
	defer cancel()
	rows, err := tx.Query(qctx, "SELECT seq, record FROM signer_audit WHERE seq >= $1 ORDER BY seq LIMIT $2", from, auditPage)
	if err != nil {
		return 0, err
	}
	var n int
	var seq int64
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&seq, &data}, func() error {
		n++
		rec := new(pb.AuditRecord)
		if err := proto.Unmarshal(data, rec); err != nil {
			return &AuditBreak{Seq: uint64(seq), Reason: "record does not decode"}
		}
		return c.Check(rec)
	})
	return n, err
}

// VerifyAudit walks the whole audit chain of every signer on the database
// and returns the number of records and the first break (an
// *AuditBreak), if any.
func (s *PGStore) VerifyAudit(ctx context.Context) (uint64, error) { return s.verifyAudit(ctx) }
