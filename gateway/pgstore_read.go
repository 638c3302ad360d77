package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Reading the gateway's state on PostgreSQL. Each read is one query
// within OpTimeout; the readers that call a function for each row read
// all the rows first, so that the function may use the store.

func (s *pgStore) get(id string) (*entry, bool, error) {
	var data []byte
	err := s.read(func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, "SELECT record FROM gateway_requests WHERE request_id = $1", id).Scan(&data)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	e, err := decodeRecord(data)
	return e, e != nil, err
}

// openItems calls f with the summary of every request on the open list,
// read from its columns (the partial index gateway_requests_open).
func (s *pgStore) openItems(f func(it openItem) error) error {
	var items []openItem
	err := s.read(func(ctx context.Context) error {
		items = items[:0]
		rows, err := s.pool.Query(ctx, `SELECT request_id, status, account, submitted, last_sent
			FROM gateway_requests WHERE open ORDER BY request_id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				it       openItem
				st       int16
				lastSent int64
			)
			if err := rows.Scan(&it.id, &st, &it.account, &it.submitted, &lastSent); err != nil {
				return err
			}
			it.status = pb.RequestStatus(st)
			if lastSent != 0 {
				it.lastSent = time.Unix(0, lastSent)
			}
			items = append(items, it)
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	for _, it := range items {
		if err := f(it); err != nil {
			return err
		}
	}
	return nil
}

// eachPublishing calls f with the id of every request on the publish
// list (the partial index gateway_requests_publishing); under a fence
// (several gateways), those the term claims (claimPublishing).
func (s *pgStore) eachPublishing(f func(id string) error) error {
	var ids []string
	var err error
	if fc := s.fence.Load(); fc != nil {
		ids, err = s.claimPublishing(fc)
	} else {
		err = s.read(func(ctx context.Context) error {
			rows, err := s.pool.Query(ctx, "SELECT request_id FROM gateway_requests WHERE publishing ORDER BY request_id")
			if err != nil {
				return err
			}
			ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
	}
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := f(id); err != nil {
			return err
		}
	}
	return nil
}

// each calls f for every record, in request id order.
func (s *pgStore) each(f func(e *entry) error) error {
	var recs [][]byte
	err := s.read(func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, "SELECT record FROM gateway_requests ORDER BY request_id")
		if err != nil {
			return err
		}
		recs, err = pgx.CollectRows(rows, pgx.RowTo[[]byte])
		return err
	})
	if err != nil {
		return err
	}
	for _, data := range recs {
		e, err := decodeRecord(data)
		if err != nil {
			return err
		}
		if err := f(e); err != nil {
			return err
		}
	}
	return nil
}

// signedBy returns the request id under which the cold side signed hash.
func (s *pgStore) signedBy(hash []byte) (string, bool, error) {
	var id string
	err := s.read(func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, "SELECT request_id FROM gateway_signed WHERE hash = $1", hash).Scan(&id)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return id, err == nil, err
}
