package gateway

import (
	"fmt"

	"github.com/jackc/pgx/v5"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Writing the gateway's state on PostgreSQL: each write runs in its
// group's transaction (pgstore.go) and takes one or two round trips:
// the records it changes are read and locked with one SELECT … FOR
// UPDATE, and every statement it makes goes in one batch.

// pgRow is what gateway_requests holds of a request besides its record.
type pgRow struct {
	status     pb.RequestStatus
	account    []byte
	submitted  int64
	lastSent   int64
	open       bool
	publishing bool
}

// rowOf returns the columns of record e, whose publishing flag was
// wasPublishing: the work lists as gatewayStore.mark keeps them (a
// request leaves the publish list only by reaching a final status).
func (s *pgStore) rowOf(e *entry, wasPublishing bool) pgRow {
	st := e.view.GetStatus()
	r := pgRow{status: st, account: e.view.GetIntent().GetAccount(), submitted: e.view.GetSubmittedUnixNano()}
	if !e.lastSent.IsZero() {
		r.lastSent = e.lastSent.UnixNano()
	}
	if !isFinalStatus(st) {
		r.open = true
		r.publishing = wasPublishing || (s.publishing && (st == pb.RequestStatus_REQUEST_STATUS_SIGNED || st == pb.RequestStatus_REQUEST_STATUS_PUBLISHED))
	}
	return r
}

// insert stores a new record, in the next group commit; it fails with
// errExists if the id is taken.
func (s *pgStore) insert(e *entry) error {
	data, err := encodeRecord(e)
	if err != nil {
		return err
	}
	id := e.view.GetRequestId()
	r := s.rowOf(e, false)
	var exists bool
	err = s.gc.write("insert", 1, func(t *pgTx) error {
		exists = false
		if err := crashPoint("insert", id); err != nil {
			return err
		}
		tag, err := t.tx.Exec(t.ctx, `INSERT INTO gateway_requests
			(request_id, status, account, submitted, last_sent, open, publishing, record)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (request_id) DO NOTHING`,
			id, int16(r.status), nonNil(r.account), r.submitted, r.lastSent, r.open, r.publishing, data)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			exists = true
			return nil
		}
		if r.status == pb.RequestStatus_REQUEST_STATUS_SIGNED && len(e.view.GetBlockHash()) != 0 {
			b := &pgx.Batch{}
			queueSigned(b, e.view.GetBlockHash(), id)
			return t.tx.SendBatch(t.ctx, b).Close()
		}
		return nil
	})
	if err == nil && exists {
		return errExists
	}
	return err
}

// nonNil returns b, or an empty slice for nil (the column is NOT NULL).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// queueSigned queues the statements that record the block hash signed for
// request id: once; a hash recorded for another request fails the
// transaction.
func queueSigned(b *pgx.Batch, hash []byte, id string) {
	b.Queue("INSERT INTO gateway_signed (hash, request_id) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING", hash, id)
	b.Queue("SELECT request_id FROM gateway_signed WHERE hash = $1", hash).QueryRow(func(row pgx.Row) error {
		var owner string
		if err := row.Scan(&owner); err != nil {
			return err
		}
		if owner != id {
			return fmt.Errorf("gateway: block %x is recorded as signed for request %q, not %q", hash, owner, id)
		}
		return nil
	})
}

// apply runs the changes of batch, in order, in one transaction of the
// next group commit, and takes closing off the open list in it (see
// store).
func (s *pgStore) apply(what string, batch []*change, closing []string) error {
	// Every change is the medium's driver's: fenced by the term it was
	// made under, when several gateways share the database.
	f := s.fence.Load()
	return s.gc.write(what, len(batch), func(t *pgTx) error {
		if err := t.fenceFor(f); err != nil {
			return err
		}
		return s.applyIn(t, f, batch, closing)
	})
}

// pgStored is a record as read (and locked) by applyIn, and as the
// changes before leave it.
type pgStored struct {
	data       []byte
	publishing bool
	changed    bool
	e          *entry // the last change's result
}

func (s *pgStore) applyIn(t *pgTx, f *pgFence, batch []*change, closing []string) error {
	stored := map[string]*pgStored{}
	var ids []string
	for _, c := range batch {
		c.out, c.err = nil, nil
		if _, ok := stored[c.id]; !ok {
			stored[c.id] = nil
			ids = append(ids, c.id)
		}
	}
	if len(ids) > 0 {
		rows, err := t.tx.Query(t.ctx, `SELECT request_id, record, publishing FROM gateway_requests
			WHERE request_id = ANY($1) ORDER BY request_id FOR UPDATE`, ids)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			st := &pgStored{}
			if err := rows.Scan(&id, &st.data, &st.publishing); err != nil {
				rows.Close()
				return err
			}
			stored[id] = st
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	var signed []*entry
	for _, c := range batch {
		st := stored[c.id]
		if st == nil {
			c.err = errNoRecord
			continue
		}
		e, enc, err := c.run(st.data)
		if err != nil {
			return err
		}
		if e == nil {
			continue
		}
		st.data, st.changed, st.e = enc, true, e
		st.publishing = s.rowOf(e, st.publishing).publishing
		if e.view.GetStatus() == pb.RequestStatus_REQUEST_STATUS_SIGNED && len(e.view.GetBlockHash()) != 0 {
			signed = append(signed, e)
		}
		c.out = e
	}
	b := &pgx.Batch{}
	for _, id := range ids {
		st := stored[id]
		if st == nil || !st.changed {
			continue
		}
		r := s.rowOf(st.e, st.publishing)
		b.Queue(`UPDATE gateway_requests SET status = $2, account = $3, submitted = $4, last_sent = $5,
			open = $6, publishing = $7, record = $8, epoch = CASE WHEN $9 > 0 THEN $9 ELSE epoch END WHERE request_id = $1`,
			id, int16(r.status), nonNil(r.account), r.submitted, r.lastSent, r.open, r.publishing, st.data, f.epochValue())
	}
	seen := map[string]bool{}
	for _, e := range signed {
		h, id := e.view.GetBlockHash(), e.view.GetRequestId()
		if k := string(h) + "\x00" + id; !seen[k] {
			seen[k] = true
			queueSigned(b, h, id)
		}
	}
	if len(closing) > 0 {
		b.Queue("UPDATE gateway_requests SET open = false, epoch = CASE WHEN $2 > 0 THEN $2 ELSE epoch END WHERE request_id = ANY($1) AND open",
			closing, f.epochValue())
	}
	if b.Len() == 0 {
		return nil
	}
	return t.tx.SendBatch(t.ctx, b).Close()
}
