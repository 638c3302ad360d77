package cold

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/internal/pgmigrate"
	"github.com/nanokms/nanokms/signer"
)

// maxDSNLen bounds a connection string file.
const maxDSNLen = 8 << 10

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
		v, ok := os.LookupEnv(f.dsnEnv)
		if !ok || v == "" {
			return "", cli.WithHint(fmt.Errorf("--pg-dsn-env: environment variable %s is not set or empty", f.dsnEnv),
				"give the name of the variable holding the connection string, not the string itself")
		}
		return v, nil
	}
	return readDSNFile(f.dsnFile)
}

// readDSNFile reads a connection string from a regular file that only its
// owner may read or write.
func readDSNFile(path string) (string, error) {
	fail := func(err error) (string, error) {
		return "", cli.WithHint(fmt.Errorf("--pg-dsn-file %s: %w", path, err), "the file holds the connection string of the signers' database, mode 0600")
	}
	fh, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fail(err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return fail(err)
	}
	switch {
	case !st.Mode().IsRegular():
		return fail(errors.New("not a regular file"))
	case st.Mode().Perm()&0o077 != 0:
		return fail(fmt.Errorf("accessible to users other than its owner (mode %04o): chmod 600 it", st.Mode().Perm()))
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxDSNLen+1))
	if err != nil {
		return fail(err)
	}
	defer clear(data)
	if len(data) > maxDSNLen {
		return fail(fmt.Errorf("longer than %d bytes", maxDSNLen))
	}
	data = bytes.TrimSuffix(bytes.TrimSuffix(data, []byte("\n")), []byte("\r"))
	if len(bytes.TrimSpace(data)) == 0 {
		return fail(errors.New("empty"))
	}
	if bytes.ContainsAny(data, "\n\x00") {
		return fail(errors.New("more than one line"))
	}
	return string(data), nil
}

// openPG opens the signers' database named by f.
func (f *pgFlags) open(ctx context.Context, opts signer.PGOptions) (*signer.PGStore, error) {
	dsn, err := f.dsn()
	if err != nil {
		return nil, err
	}
	st, err := signer.OpenPGStore(ctx, dsn, opts)
	switch {
	case err == nil:
		return st, nil
	case errors.Is(err, signer.ErrNoPGSchema):
		return nil, cli.WithHint(err, "name the database the signers use (the one their configuration names)")
	case errors.Is(err, pgmigrate.ErrNewer):
		return nil, cli.WithHint(err, "use this command from the release of the signers that use the database")
	case errors.Is(err, signer.ErrStoreUnavailable):
		return nil, cli.WithHint(err, "is PostgreSQL running, and does the connection string name it? check its log")
	}
	return nil, err
}
