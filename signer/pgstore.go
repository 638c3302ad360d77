package signer

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nanokms/nanokms/internal/pgerr"
	"github.com/nanokms/nanokms/internal/pgmigrate"
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
// before its snapshot, so that turns queue rather than conflict) and reads
// its row, so seq and prev_hash are assigned inside it. The writes that
// arrive together share one transaction (pgstore_group.go).
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
	// transaction once it holds the audit chain's head and its writes
	// are prepared, before they and its COMMIT are sent.
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
