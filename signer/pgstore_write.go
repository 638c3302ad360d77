package signer

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// The PGStore's writes. Each is a write of a group transaction
// (pgstore_group.go) that first reads, in that transaction, what the
// write depends on and returns errStale (or a refusal) before writing
// anything if it changed; the UNIQUE constraints catch what a concurrent
// transaction of another signer inserts meanwhile (the transaction fails
// and is tried again, and the precheck then sees it).

var _ State = (*PGStore)(nil)

// Keys of pgCommitReq: what a write reads and writes.
func accountKey(a nano.PublicKey) string { return "a:" + string(a[:]) }
func requestKey(id string) string        { return "r:" + id }

// pgSign is one signed decision's precheck: what the group's transaction
// read of it.
type pgSign struct {
	d *Decision

	found            bool // the row of the precheck was read
	answered, signed bool
	frontier         []byte
	version          *int32 // the record's first byte: its version (record.go)
}

// pgSigns are the signed decisions of a group: their prechecks are read
// in one statement, and the rows of those that pass are written in one
// statement per table.
type pgSigns struct {
	checks []*pgSign

	reqID                                []string
	reqDigest, reqResponse               [][]byte
	signedPrev, signedHash, signedRecord [][]byte
	account, before, frontier, record    [][]byte
	recvAccount, recvSource              [][]byte
	recvID                               []string
	velAccount, velHash, velAmount       [][]byte
	velAt                                []int64
}

// check adds d to the group's prechecks.
func (g *pgSigns) check(d *Decision) *pgSign {
	c := &pgSign{d: d}
	g.checks = append(g.checks, c)
	return c
}

// queueCheck queues the prechecks of the group's signed decisions: is the
// request answered, the account's frontier and its record's version, was
// a block signed on the previous.
func (g *pgSigns) queueCheck(b *pgx.Batch) {
	if len(g.checks) == 0 {
		return
	}
	ids := make([]string, len(g.checks))
	accts, prevs := make([][]byte, len(g.checks)), make([][]byte, len(g.checks))
	for i, c := range g.checks {
		ids[i], accts[i], prevs[i] = c.d.RequestID, c.d.Record.Account[:], c.d.Block.Previous[:]
	}
	b.Queue(`SELECT v.n,
		EXISTS (SELECT 1 FROM signer_requests r WHERE r.request_id = v.request_id),
		a.frontier, get_byte(a.record, 0),
		EXISTS (SELECT 1 FROM signer_signed s WHERE s.account = v.account AND s.previous = v.previous)
		FROM unnest($1::text[], $2::bytea[], $3::bytea[]) WITH ORDINALITY AS v(request_id, account, previous, n)
		LEFT JOIN signer_accounts a ON a.account = v.account`, ids, accts, prevs).Query(func(rows pgx.Rows) error {
		var n int64
		var answered, signed bool
		var frontier []byte
		var version *int32
		_, err := pgx.ForEachRow(rows, []any{&n, &answered, &frontier, &version, &signed}, func() error {
			if n < 1 || n > int64(len(g.checks)) || g.checks[n-1].found {
				return errors.New("signer: the group's precheck returned an unexpected row")
			}
			c := g.checks[n-1]
			c.found, c.answered, c.signed, c.frontier, c.version = true, answered, signed, bytes.Clone(frontier), version
			return nil
		})
		return err
	})
}

// n is how many signed decisions passed their precheck.
func (g *pgSigns) n() int { return len(g.reqID) }

// queueWrites queues the rows of the decisions that passed their
// precheck: the answers, the signed blocks, the accounts' records (each
// updated from the frontier its precheck read, or the transaction fails),
// the sources received and the velocity entries.
func (g *pgSigns) queueWrites(b *pgx.Batch) {
	if g.n() == 0 {
		return
	}
	b.Queue("INSERT INTO signer_requests (request_id, intent_digest, response) SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[])",
		g.reqID, g.reqDigest, g.reqResponse)
	b.Queue(`INSERT INTO signer_signed (account, previous, hash, request_id, record)
		SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::text[], $5::bytea[])`,
		g.account, g.signedPrev, g.signedHash, g.reqID, g.signedRecord)
	b.Queue(pgExpect(`UPDATE signer_accounts a SET frontier = v.frontier, record = v.record
		FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bytea[]) AS v(account, before, frontier, record)
		WHERE a.account = v.account AND a.frontier = v.before RETURNING 1`, 5),
		g.account, g.before, g.frontier, g.record, len(g.account))
	if len(g.recvAccount) > 0 {
		b.Queue(`INSERT INTO signer_received (account, source, request_id) SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::text[])
			ON CONFLICT (account, source) DO UPDATE SET request_id = EXCLUDED.request_id`, g.recvAccount, g.recvSource, g.recvID)
	}
	if len(g.velAccount) > 0 {
		b.Queue(`INSERT INTO signer_velocity (account, at_unix_nano, hash, amount) SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bytea[])
			ON CONFLICT (account, at_unix_nano, hash) DO UPDATE SET amount = EXCLUDED.amount`, g.velAccount, g.velAt, g.velHash, g.velAmount)
	}
}

func (s *PGStore) commitSigned(ctx context.Context, d *Decision) (*pb.SignResponse, error) {
	var resp *pb.SignResponse
	var c *pgSign
	a := d.Record.Account
	err := s.write(ctx, &pgCommitReq{
		keys:  []string{accountKey(a), requestKey(d.RequestID)},
		check: func(t *pgTx) { c = t.signs.check(d) },
		apply: func(t *pgTx) error {
			resp = nil
			if !c.found {
				return errors.New("signer: the group's precheck returned no row for a decision")
			}
			if c.answered || c.signed || c.frontier == nil || !bytes.Equal(c.frontier, d.Before[:]) {
				return errStale
			}
			if c.version != nil {
				if _, unconfirmed, _ := recordLayout(byte(*c.version)); unconfirmed {
					// Restored from a backup (an import while this signer ran):
					// not a frontier to sign on.
					return unconfirmedRefusal(&d.Record)
				}
			}
			// Everything that can fail before the audit record is sealed:
			// a write past its precheck must queue all its rows.
			sb, err := (&SignedBlock{Block: d.Block, Hash: d.Hash, RequestID: d.RequestID}).MarshalBinary()
			if err != nil {
				return err
			}
			rec, err := d.Record.MarshalBinary()
			if err != nil {
				return err
			}
			intentHash := d.IntentDigest
			seq, err := t.appendAudit(d.auditRecord())
			if err != nil {
				return err
			}
			r := d.response(seq)
			data, err := proto.Marshal(r)
			if err != nil {
				return err
			}
			g := &t.signs
			g.reqID = append(g.reqID, d.RequestID)
			g.reqDigest = append(g.reqDigest, intentHash[:])
			g.reqResponse = append(g.reqResponse, data)
			g.signedPrev = append(g.signedPrev, d.Block.Previous[:])
			g.signedHash = append(g.signedHash, d.Hash[:])
			g.signedRecord = append(g.signedRecord, sb)
			g.account = append(g.account, a[:])
			g.before = append(g.before, d.Before[:])
			g.frontier = append(g.frontier, d.Hash[:])
			g.record = append(g.record, rec)
			if !d.Source.IsZero() {
				g.recvAccount = append(g.recvAccount, a[:])
				g.recvSource = append(g.recvSource, d.Source[:])
				g.recvID = append(g.recvID, d.RequestID)
			}
			if !d.Sent.IsZero() {
				amt := d.Sent.Bytes()
				g.velAccount = append(g.velAccount, a[:])
				g.velAt = append(g.velAt, d.Time.UnixNano())
				g.velHash = append(g.velHash, d.Hash[:])
				g.velAmount = append(g.velAmount, amt[:])
			}
			resp = r
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *PGStore) adopt(ctx context.Context, rec AccountRecord, at time.Time) error {
	data, err := rec.MarshalBinary()
	if err != nil {
		return err
	}
	var tracked bool
	return s.write(ctx, &pgCommitReq{
		keys: []string{accountKey(rec.Account)},
		check: func(t *pgTx) {
			t.reads.Queue("SELECT EXISTS (SELECT 1 FROM signer_accounts WHERE account = $1)", rec.Account[:]).QueryRow(func(row pgx.Row) error {
				return row.Scan(&tracked)
			})
		},
		apply: func(t *pgTx) error {
			if tracked {
				return refuse(pb.RefusalReason_REFUSAL_REASON_ALREADY_TRACKED, "account %s is already tracked", rec.Account.Address())
			}
			if _, err := t.appendAudit(adoptionAudit(&rec, at)); err != nil {
				return err
			}
			t.writes.Queue("INSERT INTO signer_accounts (account, frontier, record) VALUES ($1, $2, $3)", rec.Account[:], rec.FrontierHash[:], data)
			return nil
		},
	})
}

func (s *PGStore) recordRefusal(ctx context.Context, requestID string, account, intentDigest []byte, r *Refusal, at time.Time) error {
	return s.write(ctx, &pgCommitReq{apply: func(t *pgTx) error {
		_, err := t.appendAudit(&pb.AuditRecord{
			TimeUnixNano: at.UnixNano(),
			Decision:     DecisionRefused,
			RequestId:    requestID,
			Account:      account,
			Reason:       signerapi.ReasonName(r.Reason),
			Detail:       r.Detail,
			IntentHash:   intentDigest,
		})
		return err
	}})
}

func (s *PGStore) commitRelease(ctx context.Context, plan *releasePlan, digest [32]byte, detail string, at time.Time) (uint64, error) {
	a := plan.rec.Account
	w := plan.withdrawn
	restored, err := plan.restored.MarshalBinary()
	if err != nil {
		return 0, err
	}
	var seq uint64
	var frontier, signedHash []byte
	var onTop, applied bool
	err = s.write(ctx, &pgCommitReq{
		keys: []string{accountKey(a), requestKey(w.RequestID), "d:" + string(digest[:])},
		check: func(t *pgTx) {
			t.reads.Queue(`SELECT
				(SELECT frontier FROM signer_accounts WHERE account = $1),
				(SELECT hash FROM signer_signed WHERE account = $1 AND previous = $2),
				EXISTS (SELECT 1 FROM signer_signed WHERE account = $1 AND previous = $3),
				EXISTS (SELECT 1 FROM signer_releases WHERE digest = $4)`,
				a[:], w.Block.Previous[:], w.Hash[:], digest[:]).QueryRow(func(row pgx.Row) error {
				return row.Scan(&frontier, &signedHash, &onTop, &applied)
			})
		},
		apply: func(t *pgTx) error {
			seq = 0
			if !bytes.Equal(frontier, w.Hash[:]) || !bytes.Equal(signedHash, w.Hash[:]) || onTop || applied {
				return errStale
			}
			var err error
			if seq, err = t.appendAudit(&pb.AuditRecord{
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
			b := t.writes
			b.Queue("UPDATE signer_accounts SET frontier = $2, record = $3 WHERE account = $1", a[:], plan.restored.FrontierHash[:], restored)
			b.Queue("DELETE FROM signer_signed WHERE account = $1 AND previous = $2", a[:], w.Block.Previous[:])
			b.Queue("INSERT INTO signer_released (request_id, audit_seq, block) VALUES ($1, $2, $3)", w.RequestID, int64(seq), w.Hash[:])
			b.Queue("INSERT INTO signer_releases (digest, audit_seq) VALUES ($1, $2)", digest[:], int64(seq))
			// A receive's source: received under the withdrawn request.
			b.Queue("DELETE FROM signer_received WHERE account = $1 AND source = $2 AND request_id = $3", a[:], w.Block.Link[:], w.RequestID)
			// A send's velocity entry (one older than the window no longer counts).
			b.Queue("DELETE FROM signer_velocity WHERE account = $1 AND hash = $2 AND at_unix_nano >= $3", a[:], w.Hash[:], at.Add(-velocityWindow).UnixNano())
			return nil
		},
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}
