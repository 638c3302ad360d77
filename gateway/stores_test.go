package gateway

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanokms/nanokms/internal/pgtest"
)

// The gateway's tests run on both stores: a bbolt file and a PostgreSQL
// database (of one server per test binary, started on first use, a
// database per test). forEachStore runs a test once on each; the
// tests that are about the bbolt file itself (a full file system, its
// mode, its migrations) run on bbolt only.

// storeKind names a store implementation.
type storeKind string

const (
	kindBolt storeKind = "bbolt"
	kindPG   storeKind = "postgres"
)

var storeKinds = []storeKind{kindBolt, kindPG}

// forEachStore runs f as a subtest on each store kind.
func forEachStore(t *testing.T, f func(t *testing.T, kind storeKind)) {
	t.Helper()
	for _, k := range storeKinds {
		t.Run(string(k), func(t *testing.T) { f(t, k) })
	}
}

// testStore is where one test's gateway keeps its state: a bbolt file
// (path) or a PostgreSQL database (dsn), reopened as often as the test
// likes.
type testStore struct {
	kind storeKind
	path string
	dsn  string
}

// newTestStore returns a fresh, empty state of kind: a bbolt file under
// dir (a temporary directory when ""), or a new database on the shared
// server, dropped at t's cleanup.
func newTestStore(t *testing.T, kind storeKind, dir string) *testStore {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ts := &testStore{kind: kind, path: filepath.Join(dir, "gateway.db")}
	if kind == kindPG {
		ts.dsn = sharedPG(t).NewDatabase(t)
	}
	return ts
}

// open opens a gateway on the state.
func (ts *testStore) open(opts Options) (*Gateway, error) {
	if ts.kind == kindPG {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return OpenPG(ctx, ts.dsn, PGOptions{}, opts)
	}
	return Open(ts.path, opts)
}

// mustOpen is open, failing t on an error and closing the gateway at
// t's cleanup.
func (ts *testStore) mustOpen(t *testing.T, opts Options) *Gateway {
	t.Helper()
	g, err := ts.open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// openStore opens the store alone (for the store's own tests), closed at
// t's cleanup.
func (ts *testStore) openStore(t *testing.T, publishing bool) store {
	t.Helper()
	var (
		st  store
		err error
	)
	if ts.kind == kindPG {
		st, err = openPGStore(t.Context(), ts.dsn, PGOptions{}, publishing)
	} else {
		st, err = openGatewayStore(ts.path, publishing)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.close() })
	return st
}

// helperStoreEnv passes a PostgreSQL state's connection string to a
// helper subprocess (the kill tests); without it the helper uses the
// bbolt file in its directory.
const helperStoreEnv = "NANOKMS_GATEWAY_HELPER_DSN"

// helperEnv returns the environment entries that give a helper this
// state.
func (ts *testStore) helperEnv() []string {
	if ts.kind == kindPG {
		return []string{helperStoreEnv + "=" + ts.dsn}
	}
	return nil
}

// openHelperGateway opens the helper subprocess's gateway: on the
// database its environment names, or on the bbolt file at path.
func openHelperGateway(path string, opts Options) (*Gateway, error) {
	if dsn := os.Getenv(helperStoreEnv); dsn != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return OpenPG(ctx, dsn, PGOptions{}, opts)
	}
	return Open(path, opts)
}

// The test binary's PostgreSQL server: started on first use (so that the
// bbolt-only tests never wait for it), a database per test, stopped by
// TestMain.
var pgShared struct {
	mu  sync.Mutex
	srv *pgtest.Server
}

// sharedPG returns the shared server, starting it on first use.
func sharedPG(t *testing.T) *pgtest.Server {
	t.Helper()
	pgShared.mu.Lock()
	defer pgShared.mu.Unlock()
	if pgShared.srv == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		srv, err := pgtest.New(ctx, pgtest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		pgShared.srv = srv
	}
	return pgShared.srv
}

func closeSharedPG() error {
	pgShared.mu.Lock()
	defer pgShared.mu.Unlock()
	if pgShared.srv == nil {
		return nil
	}
	err := pgShared.srv.Close()
	pgShared.srv = nil
	return err
}

// committerOf returns st's commit counts and its commit linger (in
// nanoseconds, for a test to change).
func committerOf(st store) (*storeStats, *atomic.Int64) {
	switch s := st.(type) {
	case *gatewayStore:
		return &s.gc.stats, &s.gc.linger
	case *pgStore:
		return &s.gc.stats, &s.gc.linger
	}
	panic("unknown store")
}

// statsOf returns the commit counts of st.
func statsOf(st store) *storeStats {
	stats, _ := committerOf(st)
	return stats
}

// lingerOf returns st's commit linger, in nanoseconds, for a test to
// change.
func lingerOf(st store) *atomic.Int64 {
	_, linger := committerOf(st)
	return linger
}
