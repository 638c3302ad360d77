package dev

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/nanokms/nanokms/signer"
)

// The stores a world's signers keep their state in (--store).
const (
	benchStoreBolt = "bbolt"      // one signer, a bbolt file synced at each commit
	benchStorePG   = "postgres"   // one signer on a PostgreSQL database
	benchStorePG2  = "postgres-2" // two signers on one PostgreSQL database, the load split between them
)

// benchStores are the values --store takes, in the order the help lists.
var benchStores = []string{benchStoreBolt, benchStorePG, benchStorePG2}

// benchShared is what the worlds of one run share.
type benchShared struct {
	pg *benchPG // the PostgreSQL server, started by the first world on it
}

// startPGSigners starts the world's signers on a new database of the
// run's PostgreSQL server (starting the server first if no world has):
// one signer, or two for benchStorePG2, each with a PGStore (its own
// connection pool) and a Unix socket of its own, configured as
// `nanokms-cold signer` would be with [signer.postgres] (the connection
// string in the environment variable the configuration names is not
// needed in this process: the store is opened with it directly). They
// share the run's token.
func (w *benchWorld) startPGSigners(ctx context.Context, opts benchSignerOptions, name string) error {
	if w.shared.pg == nil {
		pg, err := startBenchPG(ctx, opts.dir, w.prog)
		if err != nil {
			return err
		}
		w.shared.pg, w.pg = pg, pg
	}
	dsn, err := w.shared.pg.newDatabase(ctx)
	if err != nil {
		return fmt.Errorf("making the benchmark's database: %w", err)
	}
	n := 1
	if w.kind == benchStorePG2 {
		n = 2
	}
	for i := range n {
		sock := filepath.Join(w.dir, fmt.Sprintf("%s-%d.sock", name, i+1))
		cfg, err := w.config("\n[signer.postgres]\ndsn_env = \"NANOKMS_BENCH_DSN\"\n", sock)
		if err != nil {
			return err
		}
		p := cfg.Signer.Postgres
		st, err := signer.OpenPGStore(ctx, dsn, signer.PGOptions{OpTimeout: p.OpTimeout, MaxConns: int32(p.MaxConns)})
		if err != nil {
			return fmt.Errorf("opening the benchmark's database: %w", err)
		}
		w.pgStores = append(w.pgStores, st)
		if err := w.serve(signer.NewWithState(st, w.tok, &cfg.Policy, signer.Options{MaxIntentTTL: cfg.Signer.MaxIntentTTL}), cfg); err != nil {
			return err
		}
		w.prog.say("signer serving on %s, state on PostgreSQL (%s)", cfg.Signer.Listen, w.kind)
	}
	return nil
}
