package cold

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/signer"
)

func newSignerStateCmd(e *cli.Env) *cobra.Command {
	cmd := cli.NewGroup("state", "Move a signer's state between stores (bbolt, PostgreSQL)")
	cmd.AddCommand(newSignerStateExportCmd(e), newSignerStateImportCmd(e))
	return cmd
}

// stateStoreHelp is appended to the Long help of export and import.
const stateStoreHelp = `

The store is a signer's bbolt state file (--state FILE; the signer must be
stopped: it holds the file), or the PostgreSQL database of the signers that
share one (--pg-dsn-file or --pg-dsn-env).` + pgFlagsHelp

// stateStoreFlags name the store a state command works on.
type stateStoreFlags struct {
	state string
	pg    pgFlags
}

func (f *stateStoreFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.state, "state", "", "the signer's state file (signer stopped)")
	f.pg.register(cmd)
}

// check reports a command line that names no store, or two.
func (f *stateStoreFlags) check() error {
	if err := f.pg.check(); err != nil {
		return err
	}
	switch {
	case f.state != "" && f.pg.set():
		return cli.UsageErr("--state and --pg-dsn-file/--pg-dsn-env are mutually exclusive")
	case f.state == "" && !f.pg.set():
		return cli.UsageErr("one of --state, --pg-dsn-file or --pg-dsn-env is required")
	}
	return nil
}

// name says which store f names, for messages.
func (f *stateStoreFlags) name() string {
	if f.state != "" {
		return "state file " + f.state
	}
	return "the PostgreSQL database"
}

// stateStore is an open bbolt file or PostgreSQL database.
type stateStore struct {
	bolt *signer.Store
	pg   *signer.PGStore
}

func (s *stateStore) close() error {
	if s.bolt != nil {
		return s.bolt.Close()
	}
	return s.pg.Close()
}

// openStateStore opens the store f names. A state file must exist unless
// create is set (OpenStore would make a missing one, and an export of a
// mistyped path would be an empty state).
func openStateStore(ctx context.Context, f *stateStoreFlags, create bool, pgOpts signer.PGOptions) (*stateStore, error) {
	if f.state == "" {
		st, err := f.pg.open(ctx, pgOpts)
		if err != nil {
			return nil, err
		}
		return &stateStore{pg: st}, nil
	}
	if !create {
		if _, err := os.Stat(f.state); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, cli.WithHint(fmt.Errorf("--state %s: %w", f.state, err), "give the signer's state file (signer.state in its configuration)")
		}
	}
	st, err := signer.OpenStore(f.state)
	if err != nil {
		return nil, cli.WithHint(err, "stop the signer first: it holds its state file")
	}
	return &stateStore{bolt: st}, nil
}

// stateCounts is what an export holds, for the output of both commands.
type stateCounts struct {
	Source   string `json:"source"`
	Accounts int    `json:"accounts"`
	Signed   int    `json:"signed_blocks"`
	Requests int    `json:"answers"`
	Received int    `json:"received"`
	Sends    int    `json:"sends_in_window"`
	Released int    `json:"released_requests"`
	Releases int    `json:"releases"`
	Audit    int    `json:"audit_records"`
}

func countsOf(x *signer.StateExport) stateCounts {
	return stateCounts{Source: x.Source, Accounts: len(x.Accounts), Signed: len(x.Signed), Requests: len(x.Requests),
		Received: len(x.Received), Sends: len(x.Sends), Released: len(x.Released), Releases: len(x.Releases), Audit: len(x.Audit)}
}

func (c stateCounts) print(w io.Writer) {
	fmt.Fprintf(w, "  %d accounts, %d blocks signed, %d answers recorded, %d sources received\n", c.Accounts, c.Signed, c.Requests, c.Received)
	fmt.Fprintf(w, "  %d sends in the velocity window, %d requests released, %d release statements applied\n", c.Sends, c.Released, c.Releases)
	fmt.Fprintf(w, "  %d audit records, the chain verified\n", c.Audit)
}
