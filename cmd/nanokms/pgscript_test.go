package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/nanokms/nanokms/internal/pgtest"
)

// The scripts' PostgreSQL server: started by the first pgdb, stopped when
// the tests end (softhsmMain.Run).
var scriptPG struct {
	mu  sync.Mutex
	srv *pgtest.Server
	n   int
}

func closeScriptPG() error {
	scriptPG.mu.Lock()
	defer scriptPG.mu.Unlock()
	if scriptPG.srv == nil {
		return nil
	}
	err := scriptPG.srv.Close()
	scriptPG.srv = nil
	return err
}

// cmdPGDB implements `pgdb FILE`: a new, empty database on the scripts'
// PostgreSQL server (started on first use), its connection string written
// to FILE with mode 0600; the database is dropped when the script ends.
func cmdPGDB(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: pgdb FILE")
	}
	scriptPG.mu.Lock()
	if scriptPG.srv == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		srv, err := pgtest.New(ctx, pgtest.Options{})
		cancel()
		if err != nil {
			scriptPG.mu.Unlock()
			ts.Fatalf("pgdb: %v", err)
		}
		scriptPG.srv = srv
	}
	srv := scriptPG.srv
	scriptPG.n++
	name := fmt.Sprintf("script_%d", scriptPG.n)
	scriptPG.mu.Unlock()

	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, srv.ConnString(pgtest.Superuser))
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE DATABASE " + name); err != nil {
		ts.Fatalf("pgdb: %v", err)
	}
	ts.Defer(func() {
		if err := exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			ts.Logf("pgdb: drop %s: %v", name, err)
		}
	})
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(srv.ConnString(name)+"\n"), 0o600))
}

// cmdFlipByte implements `flipbyte FILE OFFSET`: flip the low bit of the
// byte at OFFSET of FILE (negative: from the end).
func cmdFlipByte(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: flipbyte FILE OFFSET")
	}
	var off int
	if _, err := fmt.Sscan(args[1], &off); err != nil {
		ts.Fatalf("flipbyte: offset %q: %v", args[1], err)
	}
	path := ts.MkAbs(args[0])
	data, err := os.ReadFile(path)
	ts.Check(err)
	if off < 0 {
		off += len(data)
	}
	if off < 0 || off >= len(data) {
		ts.Fatalf("flipbyte: offset %s outside the %d bytes of %s", args[1], len(data), args[0])
	}
	data[off] ^= 1
	ts.Check(os.WriteFile(path, data, 0o600))
}
