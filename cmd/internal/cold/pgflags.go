package cold

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/internal/pgmigrate"
	"github.com/nanokms/nanokms/signer"
)

// pgFlagsHelp is appended to the Long help of every command that can name
// the signers' PostgreSQL database.
const pgFlagsHelp = `

The signers' PostgreSQL database is named by a connection string (libpq's
keyword=value form, such as "host=/run/postgresql dbname=nanokms
user=signer", or a postgres:// URL), read from --pg-dsn-file (a file only
its owner may read or write: mode 0600 or 0400; one trailing newline is
ignored) or from the environment variable --pg-dsn-env names; never from
the command line, since it may hold a password. A password may also come
from PGPASSFILE or PGPASSWORD, as libpq reads them.`

// pgFlags name the PostgreSQL database holding the signers' state.
type pgFlags struct {
	dsnFile string
	dsnEnv  string
}

func (f *pgFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dsnFile, "pg-dsn-file", "", "file holding the connection string of the signers' PostgreSQL database, mode 0600")
	cmd.Flags().StringVar(&f.dsnEnv, "pg-dsn-env", "", "name of the environment variable holding that connection string")
}

// set reports whether a database is named.
func (f *pgFlags) set() bool { return f.dsnFile != "" || f.dsnEnv != "" }

// check reports a command line naming the database twice.
func (f *pgFlags) check() error {
	if f.dsnFile != "" && f.dsnEnv != "" {
		return cli.UsageErr("--pg-dsn-file and --pg-dsn-env are mutually exclusive")
	}
	return nil
}

// dsn reads the connection string. Its errors never quote it.
func (f *pgFlags) dsn() (string, error) {
	if err := f.check(); err != nil {
		return "", err
	}
	if f.dsnEnv != "" {
		return cli.ReadDSNEnv("--pg-dsn-env", f.dsnEnv)
	}
	return cli.ReadDSNFile("--pg-dsn-file", f.dsnFile, "the signers' database")
}

// open opens the signers' database named by f.
func (f *pgFlags) open(ctx context.Context, opts signer.PGOptions) (*signer.PGStore, error) {
	dsn, err := f.dsn()
	if err != nil {
		return nil, err
	}
	source := "--pg-dsn-file"
	if f.dsnEnv != "" {
		source = "--pg-dsn-env"
	}
	return openPGStore(ctx, dsn, opts, source, "use this command from the release of the signers that use the database")
}

// openPGStore opens the signers' database dsn names, with a hint for the
// errors an operator can act on. source is the flag or key that named
// the connection string; newer is the hint for a database whose schema
// is newer than this binary's.
func openPGStore(ctx context.Context, dsn string, opts signer.PGOptions, source, newer string) (*signer.PGStore, error) {
	st, err := signer.OpenPGStore(ctx, dsn, opts)
	switch {
	case err == nil:
		return st, nil
	case errors.Is(err, signer.ErrNoPGSchema):
		return nil, cli.WithHint(err, "name the database the signers use (the one their configuration names)")
	case errors.Is(err, pgmigrate.ErrNewer):
		return nil, cli.WithHint(err, newer)
	case errors.Is(err, signer.ErrStoreUnavailable):
		return nil, cli.WithHint(err, "is PostgreSQL running, and does the connection string ("+source+") name it? check its log")
	}
	return nil, err
}
