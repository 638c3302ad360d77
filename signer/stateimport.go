package signer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// ErrImportConflict is wrapped by the error of an import refused because
// the store holds something the export does not (an *ImportConflict).
var ErrImportConflict = errors.New("signer: the store holds state the export does not")

// ImportConflict reports the first thing a store holds that an export
// does not, which an import would lose: a block signed (the record that
// keeps a second block off the same previous), an answer recorded (what a
// repeat of the request gets), or audit records (the export's chain must
// continue the store's).
type ImportConflict struct {
	What   string // "signed", "request" or "audit"
	Detail string
}

// Error implements error.
func (e *ImportConflict) Error() string {
	return fmt.Sprintf("%v: %s: %s; nothing was imported", ErrImportConflict, e.What, e.Detail)
}

// Unwrap returns ErrImportConflict.
func (e *ImportConflict) Unwrap() error { return ErrImportConflict }

// ErrNotRetiring is wrapped by the error of an import refused because the
// store is not live — it holds nothing, or was retired — and the export is
// not a retiring one (a *NotRetiringError).
var ErrNotRetiring = errors.New("signer: only a retiring export may be imported into a store that holds nothing")

// NotRetiringError reports an import of an export that is not a retiring
// one (a backup, an export without --retire) into a store that holds
// nothing, or a retired one: nothing can tell that its source signed
// nothing after it, so the store would be a second way to sign on the
// same heads (retire.go). Nothing was imported.
type NotRetiringError struct {
	Store      string      // the state file's path, or "the PostgreSQL database"
	Retired    *Retirement // set when the store was retired (else it holds nothing)
	Source     string      // the export's
	ExportedAt time.Time
}

// Error implements error.
func (e *NotRetiringError) Error() string {
	what := "holds nothing"
	if e.Retired != nil {
		what = fmt.Sprintf("was retired at %s", e.Retired.At.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("%v: %s %s, and the export (from %s at %s) is not a retiring one: its source may have signed after it; nothing was imported",
		ErrNotRetiring, e.Store, what, e.Source, e.ExportedAt.UTC().Format(time.RFC3339))
}

// Unwrap returns ErrNotRetiring.
func (e *NotRetiringError) Unwrap() error { return ErrNotRetiring }

// checkLiveImport refuses x for a store that is not live (empty, or
// retired) unless x is a retiring export.
func checkLiveImport(x *StateExport, store string, empty bool, retired *Retirement) error {
	if (empty || retired != nil) && !x.Retiring {
		return &NotRetiringError{Store: store, Retired: retired, Source: x.Source, ExportedAt: x.ExportedAt}
	}
	return nil
}

// importIndex answers whether the export holds what a store holds.
type importIndex struct {
	x        *StateExport
	signed   map[[64]byte]nano.Hash
	requests map[string]*ExportRequest
}

func newImportIndex(x *StateExport) *importIndex {
	ix := &importIndex{x: x, signed: make(map[[64]byte]nano.Hash, len(x.Signed)), requests: make(map[string]*ExportRequest, len(x.Requests))}
	for _, sb := range x.Signed {
		ix.signed[signedKey(sb.Block.Account, sb.Block.Previous)] = sb.Hash
	}
	for i := range x.Requests {
		ix.requests[x.Requests[i].ID] = &x.Requests[i]
	}
	return ix
}

func signedKey(a nano.PublicKey, previous nano.Hash) (k [64]byte) {
	copy(k[:32], a[:])
	copy(k[32:], previous[:])
	return k
}

// signed checks that the export holds the block hash the store recorded
// as signed on previous for account a.
func (ix *importIndex) signedBlock(a nano.PublicKey, previous, hash nano.Hash) error {
	h, ok := ix.signed[signedKey(a, previous)]
	switch {
	case !ok:
		return &ImportConflict{What: "signed", Detail: fmt.Sprintf("block %s, signed on %s for %s, is not in the export", hash, previous, a.Address())}
	case h != hash:
		return &ImportConflict{What: "signed", Detail: fmt.Sprintf("block %s was signed on %s for %s, where the export holds %s: importing would let a second block be signed on it", hash, previous, a.Address(), h)}
	}
	return nil
}

// request checks that the export holds the answer the store recorded for
// request id, byte for byte.
func (ix *importIndex) request(id string, digest, response []byte) error {
	r, ok := ix.requests[id]
	switch {
	case !ok:
		return &ImportConflict{What: "request", Detail: fmt.Sprintf("the answer to request %q is not in the export", id)}
	case !bytes.Equal(r.IntentDigest[:], digest) || !bytes.Equal(r.Response, response):
		return &ImportConflict{What: "request", Detail: fmt.Sprintf("the answer to request %q differs from the export's", id)}
	}
	return nil
}

// auditHead checks that the store's chain, ending at record seq with
// hash, is a prefix of the export's.
func (ix *importIndex) auditHead(seq uint64, hash []byte) error {
	if seq == 0 {
		return nil
	}
	if seq > uint64(len(ix.x.Audit)) {
		return &ImportConflict{What: "audit", Detail: fmt.Sprintf("the store's chain has %d records, the export's %d", seq, len(ix.x.Audit))}
	}
	rec := new(pb.AuditRecord)
	if err := proto.Unmarshal(ix.x.Audit[seq-1], rec); err != nil || !bytes.Equal(rec.GetHash(), hash) {
		return &ImportConflict{What: "audit", Detail: fmt.Sprintf("the store's chain is not the export's up to its record %d", seq)}
	}
	return nil
}

// Import replaces the state file's whole state with x's, in one
// transaction, after checking x (StateExport.Check) and that the file
// holds nothing x does not: every block signed in the file must be in x
// (the same block on the same previous), every answer recorded too (byte
// for byte), and the file's audit chain must be the beginning of x's.
// Otherwise it fails with an *ImportConflict and changes nothing. A file
// x continues takes x whole. A file that holds nothing, or was retired
// (retire.go), takes only a retiring export, whole (and is no longer
// retired: the mark is not part of an export); any other export is refused
// with a *NotRetiringError, changing nothing.
func (s *Store) Import(x *StateExport) error {
	if err := x.Check(); err != nil {
		return fmt.Errorf("signer: importing: %w", err)
	}
	ix := newImportIndex(x)
	err := s.write(func(tx *bolt.Tx) error {
		retired, err := boltRetirement(tx)
		if err != nil {
			return err
		}
		if err := checkLiveImport(x, "state file "+s.path, boltEmpty(tx), retired); err != nil {
			return err
		}
		if err := ix.checkBolt(tx); err != nil {
			return err
		}
		return writeBolt(tx, x)
	})
	if err != nil {
		var ic *ImportConflict
		var nr *NotRetiringError
		if errors.As(err, &ic) || errors.As(err, &nr) {
			return err
		}
		return fmt.Errorf("signer: importing: %w", err)
	}
	s.notifyAppended()
	return nil
}

func (ix *importIndex) checkBolt(tx *bolt.Tx) error {
	if err := tx.Bucket(bucketSigned).ForEach(func(k, v []byte) error {
		var sb SignedBlock
		if err := sb.UnmarshalBinary(v); err != nil {
			return err
		}
		return ix.signedBlock(sb.Block.Account, sb.Block.Previous, sb.Hash)
	}); err != nil {
		return err
	}
	if err := tx.Bucket(bucketRequests).ForEach(func(k, v []byte) error {
		if len(v) < 32 {
			return fmt.Errorf("%w: the answer to request %q", errCorrupt, k)
		}
		return ix.request(string(k), v[:32], v[32:])
	}); err != nil {
		return err
	}
	head := tx.Bucket(bucketMeta).Get(keyAuditHead)
	if head == nil {
		return nil
	}
	if len(head) != 8+32 {
		return fmt.Errorf("%w: the audit head", errCorrupt)
	}
	return ix.auditHead(binary.BigEndian.Uint64(head), head[8:])
}

// writeBolt replaces every bucket's contents with x's.
func writeBolt(tx *bolt.Tx, x *StateExport) error {
	for _, name := range slices.Concat(allBuckets, [][]byte{bucketReleased, bucketReleases}) {
		if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return err
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	accounts, signed := tx.Bucket(bucketAccounts), tx.Bucket(bucketSigned)
	for i := range x.Accounts {
		r := &x.Accounts[i]
		if err := putRecord(accounts, r.Account[:], r); err != nil {
			return err
		}
	}
	for i := range x.Signed {
		sb := &x.Signed[i]
		if err := putRecord(signed, acctKey(sb.Block.Account, sb.Block.Previous[:]), sb); err != nil {
			return err
		}
	}
	b := tx.Bucket(bucketRequests)
	for _, r := range x.Requests {
		if err := b.Put([]byte(r.ID), append(r.IntentDigest[:len(r.IntentDigest):len(r.IntentDigest)], r.Response...)); err != nil {
			return err
		}
	}
	b = tx.Bucket(bucketReceived)
	for _, r := range x.Received {
		if err := b.Put(acctKey(r.Account, r.Source[:]), []byte(r.RequestID)); err != nil {
			return err
		}
	}
	b = tx.Bucket(bucketVelocity)
	for _, v := range x.Sends {
		var ts [8]byte
		binary.BigEndian.PutUint64(ts[:], uint64(v.At))
		amt := v.Amount.Bytes()
		if err := b.Put(acctKey(v.Account, ts[:], v.Hash[:8]), amt[:]); err != nil {
			return err
		}
	}
	b = tx.Bucket(bucketReleased)
	for _, r := range x.Released {
		if err := b.Put([]byte(r.RequestID), append(binary.BigEndian.AppendUint64(nil, r.AuditSeq), r.Block[:]...)); err != nil {
			return err
		}
	}
	b = tx.Bucket(bucketReleases)
	for _, r := range x.Releases {
		if err := b.Put(bytes.Clone(r.Digest[:]), binary.BigEndian.AppendUint64(nil, r.AuditSeq)); err != nil {
			return err
		}
	}
	b = tx.Bucket(bucketAudit)
	var head []byte
	for i, data := range x.Audit {
		if err := b.Put(binary.BigEndian.AppendUint64(nil, uint64(i+1)), data); err != nil {
			return err
		}
		if i == len(x.Audit)-1 {
			rec := new(pb.AuditRecord)
			if err := proto.Unmarshal(data, rec); err != nil {
				return err
			}
			head = append(binary.BigEndian.AppendUint64(nil, uint64(i+1)), rec.GetHash()...)
		}
	}
	if head != nil {
		return tx.Bucket(bucketMeta).Put(keyAuditHead, head)
	}
	return nil
}

// Import replaces the whole state of the database with x's, in one
// SERIALIZABLE transaction that holds the audit chain's head (so that no
// signer's decision commits between the check and the writes), after the
// checks Store.Import makes, against the database: every block signed in
// it must be in x, every answer recorded, and its chain must be the
// beginning of x's; otherwise it fails with an *ImportConflict and
// changes nothing. A database that holds nothing, or was retired, takes
// only a retiring export (else a *NotRetiringError), and is no longer
// retired once it did. Stop the signers first: a decision a signer read
// before the import and commits after it is checked against the imported
// state (and refused or answered from it), but is better not made.
func (s *PGStore) Import(ctx context.Context, x *StateExport) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	if err := x.Check(); err != nil {
		return fmt.Errorf("signer: importing: %w", err)
	}
	s.cmu.RLock()
	closed := s.closed
	s.cmu.RUnlock()
	if closed {
		return ErrClosed
	}
	err := s.importTx(ctx, x, nil)
	var ic *ImportConflict
	var nr *NotRetiringError
	if errors.As(err, &ic) || errors.As(err, &nr) {
		return err
	}
	if err := s.reach.note(pgWrap(ctx, err)); err != nil {
		return fmt.Errorf("signer: importing: %w", err)
	}
	s.notifyAppended()
	return nil
}

// importTx imports x in one transaction. restore, when set, is told
// (in the transaction) whether the database holds nothing, and returns
// the export to import in place of x (restore.go); a retired database is
// refused then with its *RetiredError. Without restore, a database that
// holds nothing or was retired takes only a retiring x.
func (s *PGStore) importTx(ctx context.Context, x *StateExport, restore func(lost bool) (*StateExport, error)) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // a no-op after Commit
	var headSeq int64
	var headHash []byte
	var rat, rseq *int64
	var rto *string
	if err := tx.QueryRow(ctx, "SELECT seq, hash, "+pgRetiredCols+" FROM signer_audit_head FOR UPDATE").Scan(&headSeq, &headHash, &rat, &rseq, &rto); err != nil {
		return err
	}
	retired := pgRetirement(rat, rseq, rto)
	var accounts bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM signer_accounts)").Scan(&accounts); err != nil {
		return err
	}
	empty := headSeq == 0 && !accounts
	if restore != nil {
		if retired != nil {
			return &RetiredError{Store: pgRetiredStore, Retirement: *retired}
		}
		if x, err = restore(empty); err != nil {
			return err
		}
	} else if err := checkLiveImport(x, pgRetiredStore, empty, retired); err != nil {
		return err
	}
	ix := newImportIndex(x)
	var b1, b2, b3 []byte
	var id string
	rows, err := tx.Query(ctx, "SELECT account, previous, hash FROM signer_signed")
	if err != nil {
		return err
	}
	if _, err := pgx.ForEachRow(rows, []any{&b1, &b2, &b3}, func() error {
		return ix.signedBlock(nano.PublicKey(b1), nano.Hash(b2), nano.Hash(b3))
	}); err != nil {
		return err
	}
	if rows, err = tx.Query(ctx, "SELECT request_id, intent_digest, response FROM signer_requests"); err != nil {
		return err
	}
	if _, err := pgx.ForEachRow(rows, []any{&id, &b1, &b2}, func() error { return ix.request(id, b1, b2) }); err != nil {
		return err
	}
	if err := ix.auditHead(uint64(headSeq), headHash); err != nil {
		return err
	}
	for _, table := range []string{"signer_accounts", "signer_signed", "signer_requests", "signer_received", "signer_velocity", "signer_audit", "signer_released", "signer_releases"} {
		if _, err := tx.Exec(ctx, "DELETE FROM "+table); err != nil {
			return err
		}
	}
	if err := copyRows(ctx, tx, x); err != nil {
		return err
	}
	seq, hash := int64(0), make([]byte, 32)
	if n := len(x.Audit); n > 0 {
		rec := new(pb.AuditRecord)
		if err := proto.Unmarshal(x.Audit[n-1], rec); err != nil {
			return err
		}
		seq, hash = int64(n), rec.GetHash()
	}
	if _, err := tx.Exec(ctx, "UPDATE signer_audit_head SET seq = $1, hash = $2, retired_at = NULL, retired_seq = NULL, retired_to = NULL", seq, hash); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// copyRows writes x's rows with COPY.
func copyRows(ctx context.Context, tx pgx.Tx, x *StateExport) error {
	type table struct {
		name string
		cols []string
		rows [][]any
	}
	var tables []table
	add := func(name string, cols []string, n int, row func(i int) ([]any, error)) error {
		t := table{name: name, cols: cols, rows: make([][]any, 0, n)}
		for i := range n {
			r, err := row(i)
			if err != nil {
				return err
			}
			t.rows = append(t.rows, r)
		}
		tables = append(tables, t)
		return nil
	}
	errs := []error{
		add("signer_accounts", []string{"account", "frontier", "record"}, len(x.Accounts), func(i int) ([]any, error) {
			r := &x.Accounts[i]
			data, err := r.MarshalBinary()
			return []any{r.Account[:], r.FrontierHash[:], data}, err
		}),
		add("signer_signed", []string{"account", "previous", "hash", "request_id", "record"}, len(x.Signed), func(i int) ([]any, error) {
			sb := &x.Signed[i]
			data, err := sb.MarshalBinary()
			return []any{sb.Block.Account[:], sb.Block.Previous[:], sb.Hash[:], sb.RequestID, data}, err
		}),
		add("signer_requests", []string{"request_id", "intent_digest", "response"}, len(x.Requests), func(i int) ([]any, error) {
			r := &x.Requests[i]
			return []any{r.ID, r.IntentDigest[:], r.Response}, nil
		}),
		add("signer_received", []string{"account", "source", "request_id"}, len(x.Received), func(i int) ([]any, error) {
			r := &x.Received[i]
			return []any{r.Account[:], r.Source[:], r.RequestID}, nil
		}),
		add("signer_velocity", []string{"account", "at_unix_nano", "hash", "amount"}, len(x.Sends), func(i int) ([]any, error) {
			v := &x.Sends[i]
			amt := v.Amount.Bytes()
			return []any{v.Account[:], v.At, v.Hash[:], amt[:]}, nil
		}),
		add("signer_released", []string{"request_id", "audit_seq", "block"}, len(x.Released), func(i int) ([]any, error) {
			r := &x.Released[i]
			return []any{r.RequestID, int64(r.AuditSeq), r.Block[:]}, nil
		}),
		add("signer_releases", []string{"digest", "audit_seq"}, len(x.Releases), func(i int) ([]any, error) {
			r := &x.Releases[i]
			return []any{r.Digest[:], int64(r.AuditSeq)}, nil
		}),
		add("signer_audit", []string{"seq", "hash", "record"}, len(x.Audit), func(i int) ([]any, error) {
			rec := new(pb.AuditRecord)
			if err := proto.Unmarshal(x.Audit[i], rec); err != nil {
				return nil, err
			}
			return []any{int64(i + 1), rec.GetHash(), x.Audit[i]}, nil
		}),
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, t := range tables {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, pgx.CopyFromRows(t.rows)); err != nil {
			return fmt.Errorf("writing %s: %w", t.name, err)
		}
	}
	return nil
}
