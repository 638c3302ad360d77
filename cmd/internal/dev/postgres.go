package dev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

type postgresOptions struct {
	dir, dsnOut, database string
}

func newPostgresCmd(e *cli.Env) *cobra.Command {
	var opts postgresOptions
	cmd := &cobra.Command{
		Use:   "postgres --dsn-out FILE [--dir DIR] [--database NAME]",
		Short: "Run a throw-away PostgreSQL server for demos (NOT for real state)",
		Long: `Runs a throw-away PostgreSQL 15 server for demos and manual trials, as the
benchmarks do: Debian's postgresql package (installed with apt-get when
missing, as root), a cluster made by initdb in a new directory under --dir,
served on a Unix socket only (no TCP), as the unprivileged system user
nanokms-pgtest when run as root. It makes the database --database and
writes its connection string to --dsn-out (mode 0600, a new file), then
logs "postgres serving" (a JSON line on standard error) and serves until
interrupted (SIGINT or SIGTERM): then it stops the server and removes its
directory and the --dsn-out file.

Its settings are PostgreSQL's defaults (fsync and synchronous_commit on)
but the socket; authentication is "trust" for the socket's owner only
(mode 0700). Nothing survives it: never keep state you need in it.`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPostgres(cmd.Context(), e, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.dir, "dir", "", "make the server's directory under DIR (default: the system's temporary directory)")
	f.StringVar(&opts.dsnOut, "dsn-out", "", "write the database's connection string to this new file (required)")
	f.StringVar(&opts.database, "database", "nanokms", "the database to make")
	return cmd
}

func runPostgres(ctx context.Context, e *cli.Env, opts postgresOptions) error {
	if opts.dsnOut == "" {
		return cli.UsageErr("--dsn-out is required")
	}
	if !validDatabaseName(opts.database) {
		return cli.UsageErr("--database %q: use 1 to 63 lower-case letters, digits and underscores, starting with a letter", opts.database)
	}
	// Claim the file first: a name already taken fails before a server
	// starts, and nothing else's file is ever overwritten or removed.
	out, err := os.OpenFile(opts.dsnOut, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return cli.WithHint(fmt.Errorf("--dsn-out: %w", err), "name a file that does not exist yet")
	}
	dsnPath := opts.dsnOut
	if abs, aerr := filepath.Abs(dsnPath); aerr == nil {
		dsnPath = abs
	}
	written := false
	defer func() {
		out.Close()
		if !written {
			os.Remove(dsnPath)
		}
	}()
	log := slog.New(slog.NewJSONHandler(e.Stderr, nil))
	log.Info("postgres starting (installing Debian's postgresql first when it is missing)")
	pg, err := startBenchPG(ctx, opts.dir, &benchProgress{w: io.Discard})
	if err != nil {
		return err
	}
	stop := func(err error) error {
		cerr := pg.close()
		if rerr := os.Remove(dsnPath); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			cerr = errors.Join(cerr, rerr)
		}
		written = true // removed above
		return errors.Join(err, cerr)
	}
	conn, err := pgx.Connect(ctx, pg.connString("postgres"))
	if err != nil {
		return stop(err)
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+opts.database)
	conn.Close(context.Background())
	if err != nil {
		return stop(fmt.Errorf("making database %s: %w", opts.database, err))
	}
	if _, err := fmt.Fprintln(out, pg.connString(opts.database)); err != nil {
		return stop(fmt.Errorf("--dsn-out: %w", err))
	}
	if err := out.Sync(); err != nil {
		return stop(fmt.Errorf("--dsn-out: %w", err))
	}
	log.Info("postgres serving", "dir", pg.base, "socket_dir", pg.sock, "database", opts.database, "dsn_file", dsnPath)
	select {
	case <-ctx.Done():
		log.Info("postgres stopping")
		return stop(nil)
	case <-pg.exited:
		pg.cmd = nil // nothing left to stop
		serverLog, _ := os.ReadFile(filepath.Join(pg.base, "server.log"))
		return stop(fmt.Errorf("postgres exited on its own; its log (end):\n%s", lastLines(serverLog)))
	}
}

// validDatabaseName reports whether s is a plain, unquoted PostgreSQL
// identifier: it goes into CREATE DATABASE as it is.
func validDatabaseName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range []byte(s) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
