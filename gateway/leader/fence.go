package leader

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/nanokms/nanokms/internal/pgmigrate"
)

// ErrDeposed is returned by Fence (wrapped) when the caller's epoch is not
// the medium's current one: another term of leadership began (or none with
// that epoch ever did). The transaction must be rolled back; the caller no
// longer leads the medium.
var ErrDeposed = errors.New("leader: deposed (the medium's leader epoch moved on)")

// Component names this package's schema in pgmigrate's nanokms_schema table.
const Component = "gateway_leader"

// LockNamespace is the first key of every medium's advisory lock
// (pg_try_advisory_lock(LockNamespace, LockKey(medium))): "nkld" in ASCII.
const LockNamespace int32 = 0x6e6b6c64

//go:embed schema/*.sql
var schemaFS embed.FS

// migrations are the schema's versions, checked when the package loads.
var migrations = pgmigrate.MustLoad(schemaFS, "schema")

// SchemaVersion is the newest gateway_leader schema version this binary knows.
func SchemaVersion() int { return len(migrations) }

// Migrate brings the gateway_leader schema up to this binary's version. It
// fails, changing nothing, with an error wrapping pgmigrate.ErrNewer when
// the database's is newer.
func Migrate(ctx context.Context, conn pgmigrate.Conn) error {
	if _, err := pgmigrate.Apply(ctx, conn, Component, migrations); err != nil {
		return fmt.Errorf("leader: preparing the schema: %w", err)
	}
	return nil
}

// LockKey returns the second key of medium's advisory lock: FNV-1a-32 of
// the medium's name, its bits taken as an int32.
func LockKey(medium string) int32 {
	h := fnv.New32a()
	h.Write([]byte(medium))
	return int32(h.Sum32()) //nolint:gosec // a bit pattern, not a quantity
}

// Fence checks, inside tx, that epoch is medium's current leader epoch, and
// holds the medium's row FOR SHARE until tx ends, so that no new term can
// begin (its increment waits) before tx commits or rolls back. It returns
// an error wrapping ErrDeposed when the epoch moved on (or is not one a
// term ever had); any other error is the database's.
//
// Callers put it first in every transaction the medium's driver commits
// (frames recorded as written, answers, claims). Under REPEATABLE READ or
// SERIALIZABLE a term that began after tx's snapshot makes Fence fail with
// a serialization failure (SQLSTATE 40001), which the caller retries as
// any other; under READ COMMITTED it sees the new epoch and returns
// ErrDeposed.
func Fence(ctx context.Context, tx pgx.Tx, medium string, epoch uint64) error {
	if epoch == 0 || epoch > math.MaxInt64 {
		return fmt.Errorf("%w: %q: epoch %d is no term's", ErrDeposed, medium, epoch)
	}
	var cur int64
	err := tx.QueryRow(ctx, "SELECT epoch FROM gateway_leader WHERE medium = $1 FOR SHARE", medium).Scan(&cur)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: %q has had no leader", ErrDeposed, medium)
	case err != nil:
		return fmt.Errorf("leader: fencing %q: %w", medium, err)
	case uint64(cur) != epoch: //nolint:gosec // cur > 0 by the table's CHECK
		return fmt.Errorf("%w: %q is at epoch %d, not %d", ErrDeposed, medium, cur, epoch)
	}
	return nil
}
