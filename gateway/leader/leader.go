package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanokms/nanokms/internal/backoff"
	"github.com/nanokms/nanokms/internal/pgmigrate"
)

// ErrLost is the cause (context.Cause) of a leader function's context when
// leadership was lost: the lock's connection failed or a check did not
// confirm the term. The error wraps the reason.
var ErrLost = errors.New("leader: leadership lost")

// ErrStepDown is the cause of a leader function's context when Run's
// context ended.
var ErrStepDown = errors.New("leader: stepping down")

// ErrRunning is returned by Run when the Elector is already running.
var ErrRunning = errors.New("leader: the elector is already running")

// ConfigError is returned by New for a Config field that is not valid.
type ConfigError struct {
	Field   string // such as "Medium"
	Problem string
}

func (e *ConfigError) Error() string { return "leader: Config." + e.Field + ": " + e.Problem }

// Config configures an Elector.
type Config struct {
	// DSN is the PostgreSQL connection string (libpq keyword=value or
	// URL). It is never logged.
	DSN string
	// Medium names the bridge medium led: the key of the advisory lock
	// (LockKey) and of the epoch's row. Required.
	Medium string
	// Holder names this gateway in gateway_leader and the logs; empty
	// means "hostname/pid".
	Holder string
	// CheckInterval is how often a candidate polls the lock and a leader
	// checks its term (default 1s). It bounds how long after the lock is
	// released another candidate takes it.
	CheckInterval time.Duration
	// CheckTimeout bounds each statement of the election (connect, poll,
	// the new term's increment, a check); a leader whose check does not
	// answer within it has lost its term (default 5s).
	CheckTimeout time.Duration
	// Log receives the changes of leadership and reachability; nil
	// discards.
	Log *slog.Logger
}

// Lease is one term of leadership of a medium.
type Lease struct {
	Medium string
	// Epoch is the term's fencing token: the medium's epoch in
	// gateway_leader, greater than every earlier term's.
	Epoch  uint64
	Holder string
	// Since is when the term began, by the database's clock.
	Since time.Time
}

// State is what an Elector is doing, for health and metrics.
type State struct {
	// Leading is true while a term runs and has not been lost.
	Leading bool
	// Epoch is the current term's epoch while Leading, else the last term
	// this Elector held (0: none yet).
	Epoch uint64
	// Since is when the current or last term began.
	Since time.Time
	// Reachable is true when the database answered the last statement.
	Reachable bool
}

// Elector campaigns for the leadership of one medium. Make it with New.
type Elector struct {
	cfg     Config
	conn    *pgx.ConnConfig
	running atomic.Bool

	mu      sync.Mutex
	st      State
	changed chan struct{} // closed and replaced on every change of st
}

// New checks cfg and returns an Elector; it connects only in Run.
func New(cfg Config) (*Elector, error) {
	switch {
	case cfg.Medium == "":
		return nil, &ConfigError{"Medium", "empty"}
	case cfg.DSN == "":
		return nil, &ConfigError{"DSN", "empty"}
	case cfg.CheckInterval < 0:
		return nil, &ConfigError{"CheckInterval", "negative"}
	case cfg.CheckTimeout < 0:
		return nil, &ConfigError{"CheckTimeout", "negative"}
	}
	cc, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		// The error may quote the connection string (and a password in it).
		return nil, &ConfigError{"DSN", "the connection string does not parse"}
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = time.Second
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = 5 * time.Second
	}
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		cfg.Holder = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Log = cfg.Log.With("medium", cfg.Medium, "holder", cfg.Holder)
	rp := cc.RuntimeParams
	rp["application_name"] = "nanokms-gateway-leader"
	// The server notices a vanished gateway host (the lock's session
	// then ends, releasing it) within about 5+2*3 seconds.
	rp["tcp_keepalives_idle"], rp["tcp_keepalives_interval"], rp["tcp_keepalives_count"] = "5", "2", "3"
	return &Elector{cfg: cfg, conn: cc, changed: make(chan struct{})}, nil
}

// Medium returns the medium the Elector campaigns for.
func (e *Elector) Medium() string { return e.cfg.Medium }

// Holder returns the name the Elector records as the holder.
func (e *Elector) Holder() string { return e.cfg.Holder }

// State returns what the Elector is doing now.
func (e *Elector) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st
}

// Changed returns a channel closed at the next change of State.
func (e *Elector) Changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

func (e *Elector) update(f func(*State)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.st
	f(&e.st)
	if e.st != old {
		close(e.changed)
		e.changed = make(chan struct{})
	}
}

// reached records whether the database answered, logging a change.
func (e *Elector) reached(err error) {
	ok := err == nil
	e.mu.Lock()
	was := e.st.Reachable
	e.mu.Unlock()
	if ok == was {
		return
	}
	e.update(func(s *State) { s.Reachable = ok })
	if ok {
		e.cfg.Log.Info("leader election: the database answers")
	} else {
		e.cfg.Log.Warn("leader election: the database does not answer", "error", err.Error())
	}
}

// Run campaigns until ctx ends, then returns nil. Each time it holds the
// medium's lock it begins a new term (the epoch incremented) and calls
// lead with the Lease and a context cancelled the moment the term is lost
// (its cause wraps ErrLost) or ctx ends (ErrStepDown). When lead returns
// (an error is logged) or the term is lost, Run waits for lead to return,
// releases the lock and campaigns again: lead must return promptly once
// its context is cancelled, and must fence its writes (Fence), since
// another term may begin before it notices. Run returns an error only
// when the Elector is already running (ErrRunning) or the database's
// schema is newer than this binary's (wrapping pgmigrate.ErrNewer); while
// the database is unreachable it retries with backoff.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context, lease Lease) error) error {
	if !e.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer e.running.Store(false)
	b := &backoff.Capped{Min: e.cfg.CheckInterval, Max: max(e.cfg.CheckInterval, 5*time.Second)}
	migrated := false
	for ctx.Err() == nil {
		conn, err := e.connect(ctx)
		if err == nil && !migrated {
			mctx, cancel := context.WithTimeout(ctx, e.cfg.CheckTimeout)
			err = Migrate(mctx, conn)
			cancel()
			if errors.Is(err, pgmigrate.ErrNewer) {
				closeConn(conn)
				return err
			}
			migrated = err == nil
		}
		var lease Lease
		if err == nil {
			err = e.campaign(ctx, conn)
		}
		if err == nil {
			lease, err = e.begin(ctx, conn)
		}
		if err == nil {
			b.Reset()
			e.term(ctx, conn, lease, lead)
			continue
		}
		if conn != nil {
			closeConn(conn)
		}
		if ctx.Err() != nil {
			break
		}
		e.reached(err)
		if !backoff.Sleep(ctx, b.Next()) {
			break
		}
	}
	return nil
}

// connect opens the election's own connection.
func (e *Elector) connect(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, e.cfg.CheckTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, e.conn)
	if err != nil {
		return nil, fmt.Errorf("leader: connecting: %w", err)
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx) // the session's end releases its locks
}

// campaign polls the medium's lock on conn every CheckInterval until it
// holds it (nil) or conn fails or ctx ends (an error).
func (e *Elector) campaign(ctx context.Context, conn *pgx.Conn) error {
	for {
		qctx, cancel := context.WithTimeout(ctx, e.cfg.CheckTimeout)
		var got bool
		err := conn.QueryRow(qctx, "SELECT pg_try_advisory_lock($1, $2)", LockNamespace, LockKey(e.cfg.Medium)).Scan(&got)
		cancel()
		if err != nil {
			return fmt.Errorf("leader: polling the lock: %w", err)
		}
		e.reached(nil)
		if got {
			return nil
		}
		if err := e.idle(ctx, conn); err != nil {
			return err
		}
	}
}

// idle waits CheckInterval on conn, returning early with an error when
// the connection fails (the server ends the session) or ctx ends.
func (e *Elector) idle(ctx context.Context, conn *pgx.Conn) error {
	wctx, cancel := context.WithTimeout(ctx, e.cfg.CheckInterval)
	defer cancel()
	err := conn.PgConn().WaitForNotification(wctx)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
		return nil // the interval passed quietly
	case err == nil:
		return nil // a notification: nobody listens, but it is harmless
	}
	return fmt.Errorf("leader: the connection failed: %w", err)
}

// begin starts a new term on conn, which holds the lock: the medium's
// epoch incremented (1 for the first term) in one statement.
func (e *Elector) begin(ctx context.Context, conn *pgx.Conn) (Lease, error) {
	qctx, cancel := context.WithTimeout(ctx, e.cfg.CheckTimeout)
	defer cancel()
	var epoch int64
	var since time.Time
	err := conn.QueryRow(qctx, `INSERT INTO gateway_leader (medium, epoch, holder, since) VALUES ($1, 1, $2, now())
		ON CONFLICT (medium) DO UPDATE SET epoch = gateway_leader.epoch + 1, holder = EXCLUDED.holder, since = EXCLUDED.since
		RETURNING epoch, since`, e.cfg.Medium, e.cfg.Holder).Scan(&epoch, &since)
	if err != nil {
		return Lease{}, fmt.Errorf("leader: beginning a term: %w", err)
	}
	return Lease{Medium: e.cfg.Medium, Epoch: uint64(epoch), Holder: e.cfg.Holder, Since: since}, nil //nolint:gosec // epoch > 0 by the table's CHECK
}

// term runs lead for lease until it returns or the term is lost, then
// closes conn (releasing the lock).
func (e *Elector) term(ctx context.Context, conn *pgx.Conn, lease Lease, lead func(context.Context, Lease) error) {
	defer closeConn(conn)
	log := e.cfg.Log.With("epoch", lease.Epoch)
	e.update(func(s *State) { s.Leading, s.Epoch, s.Since = true, lease.Epoch, lease.Since })
	log.Info("leading the medium")
	// The term's context has ctx's values but its own cause: ErrStepDown
	// when ctx ends.
	lctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stopAfter := context.AfterFunc(ctx, func() { cancel(ErrStepDown) })
	defer stopAfter()
	var lost error
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := e.watch(lctx, conn, lease); err != nil {
			lost = err
			e.update(func(s *State) { s.Leading = false })
			log.Warn("lost the leadership of the medium", "error", err.Error())
			cancel(fmt.Errorf("%w: %w", ErrLost, err))
		}
	})
	err := lead(lctx, lease)
	cancel(errors.New("leader: the leader's function returned"))
	wg.Wait()
	e.update(func(s *State) { s.Leading = false })
	switch {
	case lost != nil:
	case ctx.Err() != nil:
		log.Info("stepped down from leading the medium")
	case err != nil:
		log.Warn("the medium's driver failed; releasing the leadership", "error", err.Error())
	default:
		log.Info("the medium's driver returned; releasing the leadership")
	}
}

// watch checks the term every CheckInterval, watching conn between
// checks, until ctx ends (nil) or the term is lost (the reason).
func (e *Elector) watch(ctx context.Context, conn *pgx.Conn, lease Lease) error {
	for {
		if err := e.idle(ctx, conn); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			e.reached(err)
			return err
		}
		if err := e.check(ctx, conn, lease); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// check confirms, on conn, that its session still holds the lock and that
// the medium's epoch is still lease's.
func (e *Elector) check(ctx context.Context, conn *pgx.Conn, lease Lease) error {
	qctx, cancel := context.WithTimeout(ctx, e.cfg.CheckTimeout)
	defer cancel()
	var held bool
	var epoch *int64
	err := conn.QueryRow(qctx, `SELECT
		EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
			AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 2),
		(SELECT epoch FROM gateway_leader WHERE medium = $3)`,
		int64(uint32(LockNamespace)), int64(uint32(LockKey(lease.Medium))), lease.Medium).Scan(&held, &epoch) //nolint:gosec // oid bit patterns
	switch {
	case err != nil:
		e.reached(err)
		return fmt.Errorf("leader: checking the term: %w", err)
	case !held:
		return errors.New("leader: the session no longer holds the medium's lock")
	case epoch == nil || uint64(*epoch) != lease.Epoch: //nolint:gosec // > 0 by the table's CHECK
		return fmt.Errorf("leader: the medium's epoch moved on from %d", lease.Epoch)
	}
	e.reached(nil)
	return nil
}
