package dev

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// TestPostgres: nanokms-dev postgres serves a database whose connection
// string it writes to --dsn-out, takes writes, and on SIGTERM stops the
// server and leaves nothing behind, --dsn-out included.
func TestPostgres(t *testing.T) {
	bin, err := exec.LookPath("nanokms-dev")
	if err != nil {
		t.Fatalf("the test binary as nanokms-dev is not on PATH (TestMain sets it up): %v", err)
	}
	dir := t.TempDir()
	chmodForPG(t, dir)
	dsnFile := filepath.Join(dir, "dsn")
	cmd := exec.Command(bin, "postgres", "--dir", dir, "--dsn-out", dsnFile, "--database", "demo_1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(5*time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), `"msg":"postgres serving"`) {
			break
		}
	}
	data, err := os.ReadFile(dsnFile)
	if err != nil {
		t.Fatalf("%v\n--- stderr\n%s", err, log.String())
	}
	if fi, err := os.Stat(dsnFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("--dsn-out: %v, mode %v; want 0600", err, fi.Mode())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	var db string
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatalf("the database takes no writes: %v", err)
	}
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil || db != "demo_1" {
		t.Fatalf("current_database() = %q, %v; want demo_1", db, err)
	}
	conn.Close(ctx)

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n--- stderr\n%s", err, log.String())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
}

// TestPostgresUsage: bad flags fail before a server starts, and a
// --dsn-out that exists is neither overwritten nor removed.
func TestPostgresUsage(t *testing.T) {
	dir := t.TempDir()
	taken := filepath.Join(dir, "taken")
	if err := os.WriteFile(taken, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"postgres"}, cli.ExitUsage, "--dsn-out is required"},
		{[]string{"postgres", "--dsn-out", filepath.Join(dir, "x"), "--database", "Bad-Name"}, cli.ExitUsage, "--database"},
		{[]string{"postgres", "--dsn-out", filepath.Join(dir, "x"), "--database", "x; DROP"}, cli.ExitUsage, "--database"},
		{[]string{"postgres", "--dsn-out", taken}, cli.ExitFailed, "--dsn-out"},
		{[]string{"postgres", "--dsn-out", filepath.Join(dir, "missing", "x")}, cli.ExitFailed, "--dsn-out"},
	} {
		r := runCLI(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: %v; want exit %d naming %s", tc.args, r, tc.code, tc.want)
		}
	}
	if data, err := os.ReadFile(taken); err != nil || string(data) != "keep me" {
		t.Errorf("the existing --dsn-out: %q, %v", data, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left in --dsn-out's directory: %v", entries)
	}
}
