package signer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Retiring a store (nanokms signer state export --retire). An export
// copied into a store that holds nothing is that store's whole truth: a
// signer started on it signs on the export's frontiers. An old export (or
// a backup) put there would let it sign a second block on a head its
// source signed on after the export. So an import into a store that holds
// nothing takes only a retiring export (stateimport.go): one read in the
// same transaction that marks its source retired and appends a "retired"
// audit record to its chain (the export's last record). A retired store
// serves no more: the signer does not start on it (*RetiredError), every
// write to it is refused with a *RetiredError — on PostgreSQL a running
// signer's next decision transaction sees the mark and commits nothing —
// and a second retiring export of it is refused (there is one retiring
// export of a store, and so one store that continues it). A plain export,
// a backup and audit verify still read it.
//
// The order, and its crash windows: the retiring transaction appends the
// record, sets the mark, reads the state, and the caller writes the export
// file and syncs it, all before the transaction commits; only then is the
// mark durable. A crash (or a failure) before the file is whole and synced
// leaves the source not retired, and no whole file (a file cut short is
// refused by import: its end record is missing). A crash after the file is
// synced and before the commit is durable leaves a whole retiring export
// of a source that is not retired: the command did not report success,
// and such a file must be deleted, never imported (docs/OPERATIONS.md). A
// commit that fails (without a crash) makes the command remove the file.
// The source is never retired without a whole export file on disk.

// DecisionRetired is the audit decision of a retiring export: the last
// record of the retired store's chain, and of the export's.
const DecisionRetired = "retired"

// ErrStoreRetired is wrapped by every *RetiredError.
var ErrStoreRetired = errors.New("signer: the state store is retired")

// Retirement says when and how a store was retired.
type Retirement struct {
	At       time.Time // the retiring export's time
	AuditSeq uint64    // its "retired" audit record
	To       string    // the export file it was written to
}

// RetiredError reports a store that was retired: it signs nothing more.
// It wraps ErrStoreRetired and ErrStoreUnavailable (StatusOf maps it to
// Unavailable with STATE_STORE_UNAVAILABLE: nothing signed was released).
type RetiredError struct {
	Store string // the state file's path, or "the PostgreSQL database"
	Retirement
}

// Error implements error.
func (e *RetiredError) Error() string {
	return fmt.Sprintf("%v: %s was retired at %s (audit record %d) by 'signer state export --retire' to %q: it signs nothing more; "+
		"start the signer on the store it was imported into", ErrStoreRetired, e.Store, e.At.UTC().Format(time.RFC3339), e.AuditSeq, e.To)
}

// Unwrap returns ErrStoreRetired and ErrStoreUnavailable.
func (e *RetiredError) Unwrap() []error { return []error{ErrStoreRetired, ErrStoreUnavailable} }

// keyRetired is the meta key of a retired state file's mark:
// u64 at (Unix ns) ‖ u64 audit seq ‖ export file name.
var keyRetired = []byte("retired")

func encodeRetirement(r *Retirement) []byte {
	out := binary.BigEndian.AppendUint64(nil, uint64(r.At.UnixNano()))
	out = binary.BigEndian.AppendUint64(out, r.AuditSeq)
	return append(out, r.To...)
}

// boltRetirement returns the state file's mark, nil when not retired.
func boltRetirement(tx *bolt.Tx) (*Retirement, error) {
	v := tx.Bucket(bucketMeta).Get(keyRetired)
	if v == nil {
		return nil, nil
	}
	if len(v) < 16 {
		return nil, fmt.Errorf("%w: the retirement mark", errCorrupt)
	}
	return &Retirement{At: time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(), AuditSeq: binary.BigEndian.Uint64(v[8:]), To: string(v[16:])}, nil
}

// retiredAudit is the audit record of a retiring export to file to, at.
func retiredAudit(at time.Time, to, source string) *pb.AuditRecord {
	return &pb.AuditRecord{TimeUnixNano: at.UnixNano(), Decision: DecisionRetired,
		Detail: fmt.Sprintf("retired by a retiring state export to %q: the state moves to the store it is imported into; this %s store signs nothing more", to, source)}
}

// checkRetireTo checks the export file name a retirement records.
func checkRetireTo(to string) error {
	if to == "" || len(to) > maxDetailLen/2 || !utf8.ValidString(to) {
		return errors.New("signer: retiring: the export file's name must be 1 to 256 bytes of UTF-8")
	}
	return nil
}

// CheckLive returns a *RetiredError if the state file was retired, nil if
// it serves.
func (s *Store) CheckLive() error {
	var r *Retirement
	if err := s.db.View(func(tx *bolt.Tx) (err error) { r, err = boltRetirement(tx); return err }); err != nil {
		return fmt.Errorf("signer: reading the state file: %w", err)
	}
	if r != nil {
		return &RetiredError{Store: "state file " + s.path, Retirement: *r}
	}
	return nil
}

// ExportRetire exports the state file's whole state as Export does, as a
// retiring export, and retires the file, in one write transaction: it
// appends the "retired" audit record (the export's last), marks the file
// retired (the mark names to, the export file), reads the state and calls
// write with it before committing. If write fails, nothing is committed:
// the file is not retired. If the commit fails after write succeeded, the
// error says so and the caller removes what write wrote. A file already
// retired is refused with its *RetiredError. Stop the signer first (it
// holds the file).
func (s *Store) ExportRetire(now time.Time, to string, write func(*StateExport) error) (*StateExport, error) {
	if err := checkRetireTo(to); err != nil {
		return nil, err
	}
	s.cmu.RLock()
	defer s.cmu.RUnlock()
	if s.closed || s.commits == nil {
		return nil, ErrClosed
	}
	x := &StateExport{Source: "bbolt", ExportedAt: now.UTC(), Retiring: true}
	wrote := false
	var writeErr error
	// Not through the group committer: write has effects outside the
	// transaction, which must run once (the committer runs a failed write
	// again on its own).
	err := s.db.Update(func(tx *bolt.Tx) error {
		if r, err := boltRetirement(tx); err != nil || r != nil {
			if r != nil {
				return &RetiredError{Store: "state file " + s.path, Retirement: *r}
			}
			return err
		}
		seq, err := appendAudit(tx, retiredAudit(now, to, "bbolt"))
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(keyRetired, encodeRetirement(&Retirement{At: now, AuditSeq: seq, To: to})); err != nil {
			return err
		}
		if err := exportBoltTx(tx, x, now); err != nil {
			return err
		}
		if err := x.Check(); err != nil {
			return err
		}
		if err := write(x); err != nil {
			writeErr = err
			return err
		}
		wrote = true
		return nil
	})
	if err != nil {
		var re *RetiredError
		switch {
		case errors.As(err, &re), writeErr != nil:
			return nil, err
		case wrote:
			return nil, fmt.Errorf("signer: retiring: the export was written but the state file could not be marked retired: %w", err)
		}
		return nil, fmt.Errorf("signer: exporting the state: %w", err)
	}
	s.notifyAppended()
	return x, nil
}

// pgRetired is where signer_audit_head keeps the retirement mark
// (pgschema/0002).
const pgRetiredCols = "retired_at, retired_seq, retired_to"

// pgRetirement makes the mark of the head row's retired columns, nil when
// not retired.
func pgRetirement(at, seq *int64, to *string) *Retirement {
	if at == nil {
		return nil
	}
	r := &Retirement{At: time.Unix(0, *at).UTC()}
	if seq != nil {
		r.AuditSeq = uint64(*seq)
	}
	if to != nil {
		r.To = *to
	}
	return r
}

// pgRetiredStore names the database in a *RetiredError.
const pgRetiredStore = "the PostgreSQL database"

// CheckLive returns a *RetiredError if the database was retired, nil if it
// serves.
func (s *PGStore) CheckLive(ctx context.Context) error {
	octx, cancel := context.WithTimeout(ctx, s.opts.OpTimeout)
	defer cancel()
	var at, seq *int64
	var to *string
	if err := s.pool.QueryRow(octx, "SELECT "+pgRetiredCols+" FROM signer_audit_head").Scan(&at, &seq, &to); err != nil {
		return fmt.Errorf("signer: reading the state database: %w", pgWrap(ctx, err))
	}
	if r := pgRetirement(at, seq, to); r != nil {
		return &RetiredError{Store: pgRetiredStore, Retirement: *r}
	}
	return nil
}

// ExportRetire exports the database's whole state as a retiring export and
// retires it, as Store.ExportRetire does, in one SERIALIZABLE transaction
// that holds the audit chain's head from before its snapshot to its
// commit: no signer's decision commits in between, and each one after it
// sees the mark and commits nothing (runGroup). Stop every signer on the
// database first all the same: those still running refuse every request
// from then on.
func (s *PGStore) ExportRetire(ctx context.Context, now time.Time, to string, write func(*StateExport) error) (*StateExport, error) {
	if s.opts.ReadOnly {
		return nil, ErrReadOnly
	}
	if err := checkRetireTo(to); err != nil {
		return nil, err
	}
	s.cmu.RLock()
	closed := s.closed
	s.cmu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	x := &StateExport{Source: "postgres", ExportedAt: now.UTC(), Retiring: true}
	wrote := false
	var writeErr error
	err := s.retireTx(ctx, x, now, to, func(x *StateExport) error {
		if err := write(x); err != nil {
			writeErr = err
			return err
		}
		wrote = true
		return nil
	})
	var re *RetiredError
	switch {
	case errors.As(err, &re), writeErr != nil:
		return nil, err
	case err != nil && wrote:
		return nil, fmt.Errorf("signer: retiring: the export was written but the database could not be marked retired: %w", s.reach.note(pgWrap(ctx, err)))
	case err != nil:
		return nil, fmt.Errorf("signer: exporting the state: %w", s.reach.note(pgWrap(ctx, err)))
	}
	s.notifyAppended()
	return x, nil
}

func (s *PGStore) retireTx(ctx context.Context, x *StateExport, now time.Time, to string, write func(*StateExport) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // a no-op after Commit
	// The file is written inside the transaction: it may be idle longer
	// than the signers' sessions may.
	if _, err := tx.Exec(ctx, "SET LOCAL idle_in_transaction_session_timeout = 0"); err != nil {
		return err
	}
	// The turn on the chain's head first (as runGroup takes it), then the
	// snapshot.
	if _, err := tx.Exec(ctx, "LOCK TABLE signer_audit_head IN EXCLUSIVE MODE"); err != nil {
		return err
	}
	var seq int64
	var hash []byte
	var rat, rseq *int64
	var rto *string
	if err := tx.QueryRow(ctx, "SELECT seq, hash, "+pgRetiredCols+" FROM signer_audit_head FOR UPDATE").Scan(&seq, &hash, &rat, &rseq, &rto); err != nil {
		return err
	}
	if r := pgRetirement(rat, rseq, rto); r != nil {
		return &RetiredError{Store: pgRetiredStore, Retirement: *r}
	}
	rseqNew := seq + 1
	data, h, err := sealAudit(retiredAudit(now, to, "postgres"), uint64(rseqNew), hash)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO signer_audit (seq, hash, record) VALUES ($1, $2, $3)", rseqNew, h[:], data); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "UPDATE signer_audit_head SET seq = $1, hash = $2, retired_at = $3, retired_seq = $1, retired_to = $4",
		rseqNew, h[:], now.UnixNano(), to); err != nil {
		return err
	}
	if err := exportPGRows(ctx, tx, x, now); err != nil {
		return err
	}
	if err := x.Check(); err != nil {
		return err
	}
	if err := write(x); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
