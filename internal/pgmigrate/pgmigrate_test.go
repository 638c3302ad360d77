package pgmigrate_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nanokms/nanokms/internal/pgmigrate"
	"github.com/nanokms/nanokms/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

var v2 = fstest.MapFS{
	"m/0001_first.sql":  {Data: []byte("CREATE TABLE a (x int PRIMARY KEY);")},
	"m/0002_second.sql": {Data: []byte("CREATE TABLE b (y int PRIMARY KEY); INSERT INTO a VALUES (1);")},
}

func load(t *testing.T, fsys fstest.MapFS) []pgmigrate.Migration {
	t.Helper()
	migs, err := pgmigrate.Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	return migs
}

func pool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestLoadRefusesBadSets(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"repeat":   {"m/0001_a.sql": {}, "m/0001_b.sql": {}},
		"not one":  {"m/0002_b.sql": {}},
		"bad name": {"m/0001_a.sql": {}, "m/2_b.sql": {}},
		"other":    {"m/0001_a.sql": {}, "m/README": {}},
		"empty":    {"m/.keep": {}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := pgmigrate.Load(fsys, "m"); err == nil {
				t.Fatal("Load accepted it")
			}
		})
	}
}

// TestApply: migrations apply once and in order, a second Apply changes
// nothing, a binary that knows fewer versions is refused, and a failing
// migration leaves the version where it was.
func TestApply(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	p := pool(t, dsn)
	ctx := t.Context()

	v, err := pgmigrate.Apply(ctx, p, "test", load(t, v2))
	if err != nil || v != 2 {
		t.Fatalf("Apply = %d, %v; want 2", v, err)
	}
	// Again: nothing to do (0002's INSERT would fail on its primary key).
	if v, err := pgmigrate.Apply(ctx, p, "test", load(t, v2)); err != nil || v != 2 {
		t.Fatalf("second Apply = %d, %v; want 2", v, err)
	}
	older := fstest.MapFS{"m/0001_first.sql": v2["m/0001_first.sql"]}
	if v, err := pgmigrate.Apply(ctx, p, "test", load(t, older)); !errors.Is(err, pgmigrate.ErrNewer) || v != 2 {
		t.Fatalf("Apply by an older binary = %d, %v; want 2, ErrNewer", v, err)
	}
	// Another component is independent.
	if v, err := pgmigrate.Apply(ctx, p, "other", load(t, fstest.MapFS{"m/0001_x.sql": {Data: []byte("CREATE TABLE c (z int);")}})); err != nil || v != 1 {
		t.Fatalf("Apply other = %d, %v", v, err)
	}

	bad := fstest.MapFS{
		"m/0001_first.sql":  v2["m/0001_first.sql"],
		"m/0002_second.sql": v2["m/0002_second.sql"],
		"m/0003_bad.sql":    {Data: []byte("CREATE TABLE d (w int); SELECT no_such_function();")},
	}
	if _, err := pgmigrate.Apply(ctx, p, "test", load(t, bad)); err == nil {
		t.Fatal("a failing migration was applied")
	}
	var version int
	var dExists bool
	if err := p.QueryRow(ctx, "SELECT version, to_regclass('d') IS NOT NULL FROM nanokms_schema WHERE component = 'test'").Scan(&version, &dExists); err != nil {
		t.Fatal(err)
	}
	if version != 2 || dExists {
		t.Fatalf("after a failed migration: version %d, table d exists %v; want 2, false", version, dExists)
	}
}

// TestCurrent: the version applied, read without changing anything: 0 on
// a database without the schema table (which it does not create) and for
// a component never applied.
func TestCurrent(t *testing.T) {
	srv := pgtest.Start(t)
	p := pool(t, srv.NewDatabase(t))
	ctx := t.Context()
	if v, err := pgmigrate.Current(ctx, p, "test"); err != nil || v != 0 {
		t.Fatalf("Current on an empty database = %d, %v; want 0", v, err)
	}
	var exists bool
	if err := p.QueryRow(ctx, "SELECT to_regclass('nanokms_schema') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Fatalf("Current created nanokms_schema (%v)", err)
	}
	if _, err := pgmigrate.Apply(ctx, p, "test", load(t, v2)); err != nil {
		t.Fatal(err)
	}
	if v, err := pgmigrate.Current(ctx, p, "test"); err != nil || v != 2 {
		t.Fatalf("Current = %d, %v; want 2", v, err)
	}
	if v, err := pgmigrate.Current(ctx, p, "other"); err != nil || v != 0 {
		t.Fatalf("Current of a component never applied = %d, %v; want 0", v, err)
	}
}

// TestApplyConcurrently: processes starting at once apply each migration
// once (0002's INSERT fails if it runs twice).
func TestApplyConcurrently(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	migs := load(t, v2)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		p := pool(t, dsn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := pgmigrate.Apply(context.Background(), p, "test", migs)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var n int
	if err := pool(t, dsn).QueryRow(t.Context(), "SELECT count(*) FROM a").Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows in a = %d, %v; want 1", n, err)
	}
}

// MustLoad returns what Load returns, and panics where Load fails.
func TestMustLoad(t *testing.T) {
	if m := pgmigrate.MustLoad(v2, "m"); len(m) != 2 {
		t.Errorf("MustLoad(v2) = %d migrations, want 2", len(m))
	}
	defer func() {
		if recover() == nil {
			t.Error("MustLoad of a gap in the versions did not panic")
		}
	}()
	pgmigrate.MustLoad(fstest.MapFS{"0002_b.sql": {Data: []byte("SELECT 1;")}}, ".")
}
