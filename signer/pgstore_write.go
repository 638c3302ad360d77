package signer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/protobuf/proto"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// The PGStore's writes. Each is a function of a group transaction
// (pgstore.go) that first reads, in that transaction, what the write
// depends on and returns errStale (or a refusal) before writing anything
// if it changed; the UNIQUE constraints catch what a concurrent
// transaction of another signer inserts meanwhile (the transaction fails
// and is tried again, and the precheck then sees it).

var _ State = (*PGStore)(nil)

func (s *PGStore) commitSigned(ctx context.Context, d *Decision) (*pb.SignResponse, error) {
	var resp *pb.SignResponse
	a := d.Record.Account
	err := s.write(ctx, func(t *pgTx) error {
		resp = nil
		var answered, signed bool
		var frontier []byte
		var version *int32 // the record's first byte: its version (record.go)
		err := t.tx.QueryRow(t.ctx, `SELECT
			EXISTS (SELECT 1 FROM signer_requests WHERE request_id = $1),
			(SELECT frontier FROM signer_accounts WHERE account = $2),
			EXISTS (SELECT 1 FROM signer_signed WHERE account = $2 AND previous = $3),
			(SELECT get_byte(record, 0) FROM signer_accounts WHERE account = $2)`,
			d.RequestID, a[:], d.Block.Previous[:]).Scan(&answered, &frontier, &signed, &version)
		if err != nil {
			return err
		}
		if answered || signed || frontier == nil || !bytes.Equal(frontier, d.Before[:]) {
			return errStale
		}
		if version != nil {
			if _, unconfirmed, _ := recordLayout(byte(*version)); unconfirmed {
				// Restored from a backup (an import while this signer ran):
				// not a frontier to sign on.
				return unconfirmedRefusal(&d.Record)
			}
		}
		intentHash := d.IntentDigest
		seq, err := t.appendAudit(&pb.AuditRecord{
			TimeUnixNano: d.Time.UnixNano(),
			Decision:     DecisionSigned,
			RequestId:    d.RequestID,
			Account:      a[:],
			Detail:       d.Subtype + " " + d.Hash.String(),
			BlockHash:    d.Hash[:],
			IntentHash:   intentHash[:],
		})
		if err != nil {
			return err
		}
		r := &pb.SignResponse{
			RequestId: d.RequestID,
			Block:     pb.BlockFromNano(&d.Block),
			Hash:      d.Hash[:],
			Subtype:   d.Subtype,
			AuditSeq:  seq,
		}
		data, err := proto.Marshal(r)
		if err != nil {
			return err
		}
		sb, err := (&SignedBlock{Block: d.Block, Hash: d.Hash, RequestID: d.RequestID}).MarshalBinary()
		if err != nil {
			return err
		}
		rec, err := d.Record.MarshalBinary()
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue("INSERT INTO signer_requests (request_id, intent_digest, response) VALUES ($1, $2, $3)", d.RequestID, intentHash[:], data)
		b.Queue("INSERT INTO signer_signed (account, previous, hash, request_id, record) VALUES ($1, $2, $3, $4, $5)",
			a[:], d.Block.Previous[:], d.Hash[:], d.RequestID, sb)
		b.Queue("UPDATE signer_accounts SET frontier = $2, record = $3 WHERE account = $1 AND frontier = $4", a[:], d.Hash[:], rec, d.Before[:]).
			Exec(func(tag pgconn.CommandTag) error {
				if tag.RowsAffected() != 1 {
					return errStale
				}
				return nil
			})
		if !d.Source.IsZero() {
			b.Queue(`INSERT INTO signer_received (account, source, request_id) VALUES ($1, $2, $3)
				ON CONFLICT (account, source) DO UPDATE SET request_id = EXCLUDED.request_id`, a[:], d.Source[:], d.RequestID)
		}
		if !d.Sent.IsZero() {
			amt := d.Sent.Bytes()
			b.Queue(`INSERT INTO signer_velocity (account, at_unix_nano, hash, amount) VALUES ($1, $2, $3, $4)
				ON CONFLICT (account, at_unix_nano, hash) DO UPDATE SET amount = EXCLUDED.amount`, a[:], d.Time.UnixNano(), d.Hash[:], amt[:])
		}
		if err := t.tx.SendBatch(t.ctx, b).Close(); err != nil {
			if errors.Is(err, errStale) {
				// Past the precheck: the transaction has written; it
				// must not commit (only a precheck error may be shared).
				return fmt.Errorf("signer: the account record of %s moved inside its transaction", a.Address())
			}
			return err
		}
		resp = r
		return nil
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
	return s.write(ctx, func(t *pgTx) error {
		var tracked bool
		if err := t.tx.QueryRow(t.ctx, "SELECT EXISTS (SELECT 1 FROM signer_accounts WHERE account = $1)", rec.Account[:]).Scan(&tracked); err != nil {
			return err
		}
		if tracked {
			return refuse(pb.RefusalReason_REFUSAL_REASON_ALREADY_TRACKED, "account %s is already tracked", rec.Account.Address())
		}
		if _, err := t.appendAudit(adoptionAudit(&rec, at)); err != nil {
			return err
		}
		_, err := t.tx.Exec(t.ctx, "INSERT INTO signer_accounts (account, frontier, record) VALUES ($1, $2, $3)", rec.Account[:], rec.FrontierHash[:], data)
		return err
	})
}

func (s *PGStore) recordRefusal(ctx context.Context, requestID string, account, intentDigest []byte, r *Refusal, at time.Time) error {
	return s.write(ctx, func(t *pgTx) error {
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
	})
}

func (s *PGStore) commitRelease(ctx context.Context, plan *releasePlan, digest [32]byte, detail string, at time.Time) (uint64, error) {
	a := plan.rec.Account
	w := plan.withdrawn
	restored, err := plan.restored.MarshalBinary()
	if err != nil {
		return 0, err
	}
	var seq uint64
	err = s.write(ctx, func(t *pgTx) error {
		seq = 0
		var frontier, signedHash []byte
		var onTop, applied bool
		if err := t.tx.QueryRow(t.ctx, `SELECT
			(SELECT frontier FROM signer_accounts WHERE account = $1),
			(SELECT hash FROM signer_signed WHERE account = $1 AND previous = $2),
			EXISTS (SELECT 1 FROM signer_signed WHERE account = $1 AND previous = $3),
			EXISTS (SELECT 1 FROM signer_releases WHERE digest = $4)`,
			a[:], w.Block.Previous[:], w.Hash[:], digest[:]).Scan(&frontier, &signedHash, &onTop, &applied); err != nil {
			return err
		}
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
		b := &pgx.Batch{}
		b.Queue("UPDATE signer_accounts SET frontier = $2, record = $3 WHERE account = $1", a[:], plan.restored.FrontierHash[:], restored)
		b.Queue("DELETE FROM signer_signed WHERE account = $1 AND previous = $2", a[:], w.Block.Previous[:])
		b.Queue("INSERT INTO signer_released (request_id, audit_seq, block) VALUES ($1, $2, $3)", w.RequestID, int64(seq), w.Hash[:])
		b.Queue("INSERT INTO signer_releases (digest, audit_seq) VALUES ($1, $2)", digest[:], int64(seq))
		// A receive's source: received under the withdrawn request.
		b.Queue("DELETE FROM signer_received WHERE account = $1 AND source = $2 AND request_id = $3", a[:], w.Block.Link[:], w.RequestID)
		// A send's velocity entry (one older than the window no longer counts).
		b.Queue("DELETE FROM signer_velocity WHERE account = $1 AND hash = $2 AND at_unix_nano >= $3", a[:], w.Hash[:], at.Add(-velocityWindow).UnixNano())
		return t.tx.SendBatch(t.ctx, b).Close()
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}
