// Package pgmigrate brings a PostgreSQL schema up to the version a binary
// knows, from versioned SQL files embedded in that binary.
//
// A schema is named (a component such as "signer") and its migrations are
// files NNNN_description.sql in an fs.FS, numbered from 0001 without gaps.
// The version applied is kept in the table nanokms_schema (component →
// version). Apply takes a transaction-scoped advisory lock for the
// component, so that several processes starting at once migrate it once,
// and applies the missing migrations in order, each in its own
// transaction with the version row, so that a migration is applied whole
// or not at all.
//
// It must never go backwards: migrations are forward-only (there are no
// down migrations), and a database whose schema is newer than the binary
// knows is refused (ErrNewer) rather than used: an older binary could
// otherwise write rows that a newer schema's rules would reject or not
// see.
package pgmigrate

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// ErrNewer is wrapped by Apply's error when the database's schema is newer
// than the newest migration known.
var ErrNewer = errors.New("pgmigrate: the database schema is newer than this binary knows")

// Migration is one versioned SQL file.
type Migration struct {
	Version int
	Name    string // the file name
	SQL     string
}

var fileName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

// MustLoad is Load for migrations embedded in the binary (go:embed), read
// when a package loads: a bad file there is the build's own mistake, so it
// panics.
func MustLoad(fsys fs.FS, dir string) []Migration {
	m, err := Load(fsys, dir)
	if err != nil {
		panic(err)
	}
	return m
}

// Load reads the migrations in dir of fsys: every file must be named
// NNNN_description.sql, and the versions must run from 1 without a gap or
// a repeat.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("pgmigrate: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			return nil, fmt.Errorf("pgmigrate: %s: not a migration file (want NNNN_description.sql)", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		sql, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("pgmigrate: %w", err)
		}
		out = append(out, Migration{Version: v, Name: e.Name(), SQL: string(sql)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("pgmigrate: %s: version %d where %d was expected (versions run from 1 without gaps)", m.Name, m.Version, i+1)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("pgmigrate: no migrations in %s", dir)
	}
	return out, nil
}

// Conn is what Apply needs of a connection or a pool.
type Conn interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Querier is what Current needs of a connection or a pool.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Current returns the version of component's schema in the database,
// changing nothing: 0 when the database has no nanokms_schema table or no
// row for component (nothing was applied).
func Current(ctx context.Context, q Querier, component string) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('nanokms_schema') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("pgmigrate: reading the %s schema version: %w", component, err)
	}
	if !exists {
		return 0, nil
	}
	var version int
	err := q.QueryRow(ctx, "SELECT version FROM nanokms_schema WHERE component = $1", component).Scan(&version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("pgmigrate: reading the %s schema version: %w", component, err)
	}
	return version, nil
}

// Apply brings component's schema up to the last of migs (as Load returns
// them) and returns the version the database is at. It fails with ErrNewer,
// changing nothing, when the database is at a later version.
func Apply(ctx context.Context, conn Conn, component string, migs []Migration) (int, error) {
	known := len(migs)
	for {
		v, done, err := step(ctx, conn, component, migs)
		if err != nil {
			return v, err
		}
		if done {
			if v > known {
				return v, fmt.Errorf("%w: %s schema version %d, this binary knows up to %d", ErrNewer, component, v, known)
			}
			return v, nil
		}
	}
}

// step applies the next migration, if one is due, in one transaction under
// the component's advisory lock; done is true when none was due.
func step(ctx context.Context, conn Conn, component string, migs []Migration) (version int, done bool, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("pgmigrate: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey(component)); err != nil {
		return 0, false, fmt.Errorf("pgmigrate: locking the %s schema: %w", component, err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS nanokms_schema (
		component  text PRIMARY KEY,
		version    integer NOT NULL CHECK (version >= 0),
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, false, fmt.Errorf("pgmigrate: creating nanokms_schema: %w", err)
	}
	err = tx.QueryRow(ctx, "SELECT version FROM nanokms_schema WHERE component = $1", component).Scan(&version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		version = 0
	case err != nil:
		return 0, false, fmt.Errorf("pgmigrate: reading the %s schema version: %w", component, err)
	}
	if version >= len(migs) {
		return version, true, tx.Commit(ctx)
	}
	m := migs[version]
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return version, false, fmt.Errorf("pgmigrate: %s migration %s: %w", component, m.Name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO nanokms_schema (component, version) VALUES ($1, $2)
		ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, applied_at = now()`, component, m.Version); err != nil {
		return version, false, fmt.Errorf("pgmigrate: recording %s version %d: %w", component, m.Version, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return version, false, fmt.Errorf("pgmigrate: %s migration %s: %w", component, m.Name, err)
	}
	return m.Version, false, nil
}

// lockKey is the advisory lock key of component's migrations.
func lockKey(component string) int64 {
	h := fnv.New64a()
	h.Write([]byte("nanokms/pgmigrate\x00" + component))
	return int64(h.Sum64())
}
