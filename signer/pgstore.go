package signer

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nanokms/nanokms/internal/pgerr"
	"github.com/nanokms/nanokms/internal/pgmigrate"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// PGStore is the signer's state on PostgreSQL, for several signers (each
// with a token holding the same master key) sharing one database. The
// database is the authority against forks: one signed block per (account,
// previous) and one answer per request id are UNIQUE constraints, and
// every write is one SERIALIZABLE transaction that re-checks, inside it,
// what the decision was built on, retried (bounded) when it fails to
// serialise. A signer's signature is released only after its
// transaction committed. The audit records of all signers form one chain:
// each transaction takes its turn on the chain's head (a table lock taken
// before its snapshot, so that turns queue rather than conflict) and its
// row, so seq and prev_hash are assigned inside it.
//
// The schema is versioned SQL embedded in the binary (pgschema/), applied
// forward-only by OpenPGStore; a database whose schema is newer than this
// binary's is refused.
type PGStore struct {
	pool *pgxpool.Pool
	opts PGOptions

	mu       sync.Mutex
	appended chan struct{} // closed and replaced when this process appends audit records

	commits   chan *pgCommitReq
	closeOnce sync.Once
	stopped   chan struct{}
	cmu       sync.RWMutex
	closed    bool

	reach reachState

	// beforeCommit, when set (by tests), is called in each group
	// transaction after its statements and before its COMMIT.
	beforeCommit func()
	// afterTry, when set (by tests), is called after each try of a group
	// transaction with its outcome.
	afterTry func(err error)
	// duringVerify, when set (by tests), is called by VerifyAudit once it
	// has read part of what it checks and before it reads the rest.
	duringVerify func()
}

// PGOptions tune a PGStore. The zero value is usable.
type PGOptions struct {
	// OpTimeout bounds each operation: a read, or a write with its
	// retries. An operation past it fails with ErrStoreUnavailable; 0
	// means 10 seconds.
	OpTimeout time.Duration
	// MaxTries bounds how many times a transaction that fails to
	// serialise (or meets a concurrent insert of the same key) is tried;
	// 0 means 20.
	MaxTries int
	// MaxConns bounds the connection pool; 0 means 8.
	MaxConns int32
	// ReadOnly opens the store for reading only (audit verify, state
	// export): the schema is neither created nor migrated, a database
	// without one is refused (ErrNoPGSchema) as is one at another version
	// than this binary's, the sessions are read-only, and every write
	// fails with ErrReadOnly.
	ReadOnly bool
}

// ErrNoPGSchema is returned by a read-only OpenPGStore on a database that
// holds no signer schema (a database no signer has used, or the wrong
// one): nothing was created in it.
var ErrNoPGSchema = errors.New("signer: the database holds no signer state (no signer schema)")

// ErrReadOnly is returned by a write through a PGStore opened with
// PGOptions.ReadOnly. Nothing was written.
var ErrReadOnly = errors.New("signer: the state store is open read-only")

//go:embed pgschema/*.sql
var pgSchema embed.FS

// pgComponent names the signer's schema in nanokms_schema.
const pgComponent = "signer"

// pgMigrations are the schema's versions, checked when the package loads.
var pgMigrations = pgmigrate.MustLoad(pgSchema, "pgschema")

// PGSchemaVersion is the newest schema version this binary knows.
func PGSchemaVersion() int { return len(pgMigrations) }

// OpenPGStore connects to the database dsn names (a libpq connection
// string or URL), brings its schema up to this binary's version (unless
// opts.ReadOnly) and returns the store. It fails, using nothing, if the
// schema is newer than this binary knows (wrapping pgmigrate.ErrNewer).
func OpenPGStore(ctx context.Context, dsn string, opts PGOptions) (*PGStore, error) {
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = 10 * time.Second
	}
	if opts.MaxTries <= 0 {
		opts.MaxTries = 20
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 8
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The error may quote the connection string (and a password in it).
		return nil, errors.New("signer: the PostgreSQL connection string does not parse")
	}
	cfg.MaxConns = opts.MaxConns
	rp := cfg.ConnConfig.RuntimeParams
	rp["application_name"] = "nanokms-signer"
	// A signer stopped inside a transaction (frozen, cut off) holds the
	// audit head's row: the server ends such a session, releasing it.
	rp["idle_in_transaction_session_timeout"] = fmt.Sprint(2 * opts.OpTimeout.Milliseconds())
	if opts.ReadOnly {
		rp["default_transaction_read_only"] = "on"
	}
	octx, cancel := context.WithTimeout(ctx, opts.OpTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(octx, cfg)
	if err != nil {
		return nil, fmt.Errorf("signer: connecting to PostgreSQL: %w", pgWrap(ctx, err))
	}
	if err := prepareSchema(octx, pool, opts.ReadOnly); err != nil {
		pool.Close()
		return nil, err
	}
	s := &PGStore{pool: pool, opts: opts, reach: newReachState(), appended: make(chan struct{}),
		commits: make(chan *pgCommitReq, maxGroup), stopped: make(chan struct{})}
	go s.committer()
	return s, nil
}

// prepareSchema brings the schema up to this binary's version, or, for a
// read-only store, checks that it is at that version.
func prepareSchema(ctx context.Context, pool *pgxpool.Pool, readOnly bool) error {
	if !readOnly {
		_, err := pgmigrate.Apply(ctx, pool, pgComponent, pgMigrations)
		switch {
		case errors.Is(err, pgmigrate.ErrNewer):
			return fmt.Errorf("signer: %w", err)
		case err != nil:
			return fmt.Errorf("signer: preparing the PostgreSQL schema: %w", pgWrap(ctx, err))
		}
		return nil
	}
	v, err := pgmigrate.Current(ctx, pool, pgComponent)
	switch {
	case err != nil:
		return fmt.Errorf("signer: reading the PostgreSQL schema version: %w", pgWrap(ctx, err))
	case v == 0:
		return ErrNoPGSchema
	case v > PGSchemaVersion():
		return fmt.Errorf("signer: %w: %s schema version %d, this binary knows up to %d", pgmigrate.ErrNewer, pgComponent, v, PGSchemaVersion())
	case v < PGSchemaVersion():
		return fmt.Errorf("signer: the database's signer schema is at version %d, older than this binary's %d: start a signer of this release on it once, which brings it up to date", v, PGSchemaVersion())
	}
	return nil
}

// Close finishes the queued writes and closes the connections. It is
// safe to call more than once; operations after Close fail with
// ErrClosed.
func (s *PGStore) Close() error {
	s.closeOnce.Do(func() {
		s.cmu.Lock()
		s.closed = true
		close(s.commits)
		s.cmu.Unlock()
		<-s.stopped
		s.pool.Close()
	})
	return nil
}

// pgWrap returns err wrapped with ErrStoreUnavailable when it says the
// database was lost or unreachable; the parent context's own error when
// the caller gave up.
func pgWrap(parent context.Context, err error) error {
	if err == nil {
		return nil
	}
	if perr := parent.Err(); perr != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err)) {
		return perr
	}
	if pgerr.Unavailable(err) {
		return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	return err
}

// reachState is whether the database answered the last operation, and
// whether it was found retired (retire.go): a retired database is down
// until a Ping finds it live again, whatever the reads that succeed.
type reachState struct{ downState }

func newReachState() reachState {
	return reachState{downState{
		downMsg: "state database unavailable: nothing is decided until it answers again; the health service reports NOT_SERVING",
		upMsg:   "state database available again",
	}}
}

// note records the outcome of an operation and returns err.
func (r *reachState) note(err error) error {
	switch {
	case err == nil:
		if r.isDown.Load() {
			r.set(false, nil)
		}
	case errors.Is(err, ErrStoreRetired):
		r.pin("state database retired: nothing is decided on it any more; the health service reports NOT_SERVING", err)
	case errors.Is(err, ErrStoreUnavailable):
		r.set(true, err)
	}
	return err
}

// live records that the database was found live (not retired), and
// returns nil.
func (r *reachState) live() error {
	r.unpin()
	return r.note(nil)
}

func (r *reachState) isRetired() bool { return r.pinned() }

func (s *PGStore) writable() (bool, <-chan struct{}) { return s.reach.get() }

// Ping checks that the database answers and is not retired, and marks
// the store available when it does.
func (s *PGStore) Ping(ctx context.Context) error {
	if err := s.CheckLive(ctx); err != nil {
		return s.reach.note(err)
	}
	return s.reach.live()
}

func (s *PGStore) watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	s.reach.watch(ctx, interval, log, func() { _ = s.Ping(ctx) })
}

// pgTx is a write transaction of a group, with the audit chain's head as
// the group's writes leave it.
type pgTx struct {
	ctx      context.Context
	tx       pgx.Tx
	headSeq  uint64
	headHash []byte
	appended bool
}

// appendAudit seals rec as the chain's next record and inserts it.
func (t *pgTx) appendAudit(rec *pb.AuditRecord) (uint64, error) {
	seq := t.headSeq + 1
	data, h, err := sealAudit(rec, seq, t.headHash)
	if err != nil {
		return 0, err
	}
	if _, err := t.tx.Exec(t.ctx, "INSERT INTO signer_audit (seq, hash, record) VALUES ($1, $2, $3)", int64(seq), h[:], data); err != nil {
		return 0, err
	}
	t.headSeq, t.headHash, t.appended = seq, h[:], true
	return seq, nil
}

// pgCommitReq is one write waiting for the next group.
type pgCommitReq struct {
	fn   func(*pgTx) error
	done chan error
}

// write runs fn in the next group transaction and returns its result
// once that committed. fn must return a precheck error (errStale, a
// *Refusal) before writing anything, and may run more than once (each
// time in a new transaction).
func (s *PGStore) write(ctx context.Context, fn func(*pgTx) error) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	req := &pgCommitReq{fn: fn, done: make(chan error, 1)}
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

// committer commits queued writes in groups until Close.
func (s *PGStore) committer() {
	defer close(s.stopped)
	for req := range s.commits {
		group := []*pgCommitReq{req}
	drain:
		for len(group) < maxGroup {
			select {
			case r, ok := <-s.commits:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		s.commitGroup(group)
	}
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

// runGroup is one try of a group's transaction.
func (s *PGStore) runGroup(ctx context.Context, group []*pgCommitReq, results []error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // a no-op after Commit
	t := &pgTx{ctx: ctx, tx: tx}
	// The writes of every signer take turns (each appends to the one
	// audit chain): the turn is taken first, by LOCK TABLE, which takes
	// no snapshot, so that the transaction's snapshot (taken by its first
	// query, below) comes after the previous turn's commit. A snapshot
	// taken before waiting would be out of date once the wait ended, and
	// the transaction would fail to serialise at once. Plain reads (a
	// signer's reads, audit verify, state export) are not blocked.
	if _, err := tx.Exec(ctx, "LOCK TABLE signer_audit_head IN EXCLUSIVE MODE"); err != nil {
		return err
	}
	var seq int64
	var rat, rseq *int64
	var rto *string
	if err := tx.QueryRow(ctx, "SELECT seq, hash, "+pgRetiredCols+" FROM signer_audit_head FOR UPDATE").Scan(&seq, &t.headHash, &rat, &rseq, &rto); err != nil {
		return err
	}
	if r := pgRetirement(rat, rseq, rto); r != nil {
		// Retired under this signer (retire.go): nothing more commits.
		return &RetiredError{Store: pgRetiredStore, Retirement: *r}
	}
	t.headSeq = uint64(seq)
	startSeq := t.headSeq
	for i, r := range group {
		results[i] = r.fn(t)
		if results[i] != nil && !precheckErr(results[i]) {
			return results[i]
		}
	}
	if t.appended {
		tag, err := tx.Exec(ctx, "UPDATE signer_audit_head SET seq = $1, hash = $2 WHERE seq = $3", int64(t.headSeq), t.headHash, int64(startSeq))
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return errors.New("signer: the audit chain's head moved inside a transaction")
		}
	}
	if s.beforeCommit != nil {
		s.beforeCommit()
	}
	return tx.Commit(ctx)
}

func (s *PGStore) auditAppended() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appended
}

func (s *PGStore) notifyAppended() {
	s.mu.Lock()
	close(s.appended)
	s.appended = make(chan struct{})
	s.mu.Unlock()
}
