package signer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nanokms/nanokms/internal/pgtest"
)

// The test binary's shared PostgreSQL server: started on first use (so
// that tests of the bbolt store alone never wait for it), a database per
// test, stopped by TestMain.
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

// openPG opens a PGStore on dsn, closed at t's cleanup.
func openPG(t *testing.T, dsn string) *PGStore {
	t.Helper()
	return openPGWith(t, dsn, PGOptions{})
}

func openPGWith(t *testing.T, dsn string, opts PGOptions) *PGStore {
	t.Helper()
	st, err := OpenPGStore(t.Context(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// forEachStore runs f once on each State implementation: a bbolt file,
// and a database on PostgreSQL.
func forEachStore(t *testing.T, f func(t *testing.T, wo worldOptions)) {
	t.Helper()
	for _, k := range []struct {
		name string
		pg   bool
	}{{"bbolt", false}, {"postgres", true}} {
		t.Run(k.name, func(t *testing.T) { f(t, worldOptions{pg: k.pg}) })
	}
}
