package gateway

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nanokms/nanokms/internal/pgerr"
	"github.com/nanokms/nanokms/internal/pgmigrate"
)

// The gateway's state on PostgreSQL: pgStore keeps the records bbolt's
// gatewayStore keeps, in the same binary form, in the table
// gateway_requests, with the columns the work lists select on (open and
// publishing, each with a partial index) beside each record. Every write
// is a transaction committed before its caller goes on, and the writes
// that arrive together share one (groupCommit), as on bbolt. The schema
// holds the rules whatever the writer: request ids are the primary key,
// a status only moves forward (a trigger), each signed block's hash is
// recorded once (the primary key of gateway_signed), and nothing is
// deleted.
//
// The schema is versioned SQL embedded in the binary (pgschema/), applied
// forward-only by OpenPG with internal/pgmigrate; a database whose schema
// is newer than this binary knows is refused (pgmigrate.ErrNewer).

// PGOptions tune the gateway's PostgreSQL store. The zero value is usable.
type PGOptions struct {
	// OpTimeout bounds each operation: a read, or a group's transaction.
	// An operation past it fails with ErrStoreUnavailable; 0 means 10
	// seconds.
	OpTimeout time.Duration
	// MaxConns bounds the connection pool; 0 means 8.
	MaxConns int32
}

//go:embed pgschema/*.sql
var pgSchema embed.FS

// pgListenerApp begins the application_name of the listener's connection
// (pglisten.go), which the gateway's instance name follows.
const pgListenerApp = "nanokms-gateway-listener"

// pgComponent names the gateway's schema in nanokms_schema.
const pgComponent = "gateway"

// pgMigrations are the schema's versions, checked when the package loads.
var pgMigrations = pgmigrate.MustLoad(pgSchema, "pgschema")

// PGSchemaVersion is the newest gateway schema version this binary knows.
func PGSchemaVersion() int { return len(pgMigrations) }

// OpenPG opens the gateway on the PostgreSQL database dsn names (a libpq
// connection string or a postgres:// URL): it connects, brings the
// database's gateway schema up to this binary's version, and returns the
// gateway. It fails, using nothing, when the schema is newer than this
// binary knows (wrapping pgmigrate.ErrNewer), and with an error wrapping
// ErrStoreUnavailable when the database is not reached. No error quotes
// the connection string.
func OpenPG(ctx context.Context, dsn string, pg PGOptions, opts Options) (*Gateway, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	st, err := openPGStore(ctx, dsn, pg, opts.Ledger != nil)
	if err != nil {
		return nil, err
	}
	return newGateway(st, opts), nil
}

// pgStore is the gateway's store on PostgreSQL.
type pgStore struct {
	pool       *pgxpool.Pool
	opts       PGOptions
	publishing bool // as gatewayStore's

	gc        groupCommit[*pgTx]
	closeOnce sync.Once

	omu      sync.Mutex
	onCommit func(err error)

	// fence, when set, is the term of leadership the medium's driver
	// writes under (several gateways on the database, pgfence.go); nil
	// for the database's single gateway.
	fence atomic.Pointer[pgFence]
	// listenCfg is the configuration of the listener's own connection
	// (pglisten.go).
	listenCfg *pgx.ConnConfig
}

func openPGStore(ctx context.Context, dsn string, opts PGOptions, publishing bool) (*pgStore, error) {
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = 10 * time.Second
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 8
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The error may quote the connection string (and a password in it).
		return nil, errors.New("gateway: the PostgreSQL connection string does not parse")
	}
	cfg.MaxConns = opts.MaxConns
	rp := cfg.ConnConfig.RuntimeParams
	rp["application_name"] = "nanokms-gateway"
	// A gateway stopped inside a transaction (frozen, cut off) holds the
	// rows it locked: the server ends such a session, releasing them.
	rp["idle_in_transaction_session_timeout"] = fmt.Sprint(2 * opts.OpTimeout.Milliseconds())
	octx, cancel := context.WithTimeout(ctx, opts.OpTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(octx, cfg)
	if err != nil {
		return nil, fmt.Errorf("gateway: connecting to PostgreSQL: %w", pgWrap(err))
	}
	if _, err := pgmigrate.Apply(octx, pool, pgComponent, pgMigrations); err != nil {
		pool.Close()
		if errors.Is(err, pgmigrate.ErrNewer) {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		return nil, fmt.Errorf("gateway: preparing the PostgreSQL schema: %w", pgWrap(err))
	}
	lc := cfg.ConnConfig.Copy()
	lc.RuntimeParams["application_name"] = pgListenerApp
	s := &pgStore{pool: pool, opts: opts, publishing: publishing, listenCfg: lc}
	s.gc.commit = s.commit
	s.gc.alone = func(err error) bool { return !errors.Is(err, ErrStoreUnavailable) }
	s.gc.start(0) // no linger: see commitLinger
	return s, nil
}

// pgWrap returns err wrapped with ErrStoreUnavailable when it says the
// database was not reached or was lost.
func pgWrap(err error) error {
	if err == nil || errors.Is(err, ErrStoreUnavailable) || !pgerr.Unavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
}

func (s *pgStore) setOnCommit(f func(err error)) {
	s.omu.Lock()
	s.onCommit = f
	s.omu.Unlock()
}

// tell tells onCommit the outcome err of an operation.
func (s *pgStore) tell(err error) {
	s.omu.Lock()
	f := s.onCommit
	s.omu.Unlock()
	if f != nil {
		f(err)
	}
}

// close finishes the queued writes and closes the connections. It is
// idempotent.
func (s *pgStore) close() error {
	s.closeOnce.Do(func() {
		s.gc.stop()
		s.pool.Close()
	})
	return nil
}

// pgTx is a group's transaction.
type pgTx struct {
	ctx context.Context
	tx  pgx.Tx
	// fenced is the term the transaction has been fenced for (Fence
	// called in it), so that a group's writes fence it once.
	fenced *pgFence
}

// commit runs fn, which carries n writes, in one transaction within
// OpTimeout and commits it. An error of fn that is not the database's
// unavailability is returned as it is (nothing committed); otherwise the
// outcome (nil, or an error wrapping ErrStoreUnavailable when the
// database was lost) is told to onCommit.
func (s *pgStore) commit(fn func(tx *pgTx) error, _ int) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.OpTimeout)
	defer cancel()
	err := s.runTx(ctx, fn)
	var ferr *fnError
	if errors.As(err, &ferr) && !pgerr.Unavailable(ferr.err) {
		return ferr.err
	}
	if ferr != nil {
		err = ferr.err
	}
	if err != nil {
		err = fmt.Errorf("gateway: writing the gateway's state database: %w", pgWrap(err))
	}
	s.tell(err)
	return err
}

// fnError carries the error of a group's writes out of runTx.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

func (s *pgStore) runTx(ctx context.Context, fn func(tx *pgTx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // a no-op after Commit
	if err := fn(&pgTx{ctx: ctx, tx: tx}); err != nil {
		return &fnError{err}
	}
	return tx.Commit(ctx)
}

// read runs a read within OpTimeout; an error wrapping
// ErrStoreUnavailable is told to onCommit (the store's fault), which the
// next commit that succeeds clears.
func (s *pgStore) read(f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.OpTimeout)
	defer cancel()
	err := pgWrap(f(ctx))
	if errors.Is(err, ErrStoreUnavailable) {
		err = fmt.Errorf("gateway: reading the gateway's state database: %w", err)
		s.tell(err)
	}
	return err
}

// probe makes a small write (the probe row), which clears the store's
// fault when it commits.
func (s *pgStore) probe(bool) error {
	return s.gc.write("probe", 0, func(t *pgTx) error {
		_, err := t.tx.Exec(t.ctx, "UPDATE gateway_probe SET at = now()")
		return err
	})
}
