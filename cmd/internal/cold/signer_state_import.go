package cold

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/signer"
)

type signerStateImportOptions struct {
	store stateStoreFlags
	in    string
	json  bool
}

func newSignerStateImportCmd(e *cli.Env) *cobra.Command {
	var opts signerStateImportOptions
	cmd := &cobra.Command{
		Use:   "import (--state FILE | --pg-dsn-file F | --pg-dsn-env VAR) --in FILE",
		Short: "Load a state export into a store, refusing one that holds what the export does not",
		Long: `Reads a file written by 'signer state export', checks all of it (its format,
its checksum, and that its audit chain verifies), and replaces the whole
state of the store — a state file, made if missing, or a PostgreSQL database,
whose schema is made if missing — with it, in one transaction.

It refuses, changing nothing, a store that holds anything the export does
not: a block signed (the record that keeps a second block off the same
previous block: importing over it would let a fork be signed), an answer
recorded, or audit records past the export's (the export's chain must
continue the store's). A store the export continues (an older copy of the
same state) takes it whole.

A store that holds nothing (a new file, an empty database), or one that was
retired, takes only a retiring export ('signer state export --retire'),
whole: its source was retired when it was read, so nothing was signed after
it. Any other export — a backup ('signer backup'), an export without
--retire — may be older than what its source signed since, and is refused,
changing nothing: use 'signer restore' (its accounts stay unconfirmed until
re-adopted from their current heads), or export the source again with
--retire. The imported store is not retired: start the signer on it. Stop
every signer on the store first.` + stateStoreHelp,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSignerStateImport(cmd.Context(), e, opts) },
	}
	opts.store.register(cmd)
	cmd.Flags().StringVar(&opts.in, "in", "", "the export to read")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runSignerStateImport(ctx context.Context, e *cli.Env, opts signerStateImportOptions) error {
	if err := opts.store.check(); err != nil {
		return err
	}
	if opts.in == "" {
		return cli.UsageErr("--in is required")
	}
	data, err := os.ReadFile(opts.in)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("--in %s: %w", opts.in, err)
	}
	x, err := signer.ParseStateExport(data)
	if err != nil {
		return cli.WithHint(fmt.Errorf("--in %s: %w", opts.in, err), "nothing was imported; export the state again from its store")
	}
	// A state file this command makes is removed again if nothing is
	// imported into it.
	created := false
	if opts.store.state != "" {
		_, serr := os.Lstat(opts.store.state)
		created = errors.Is(serr, fs.ErrNotExist)
	}
	st, err := openStateStore(ctx, &opts.store, true, signer.PGOptions{})
	if err != nil {
		return err
	}
	defer st.close()
	if st.bolt != nil {
		err = st.bolt.Import(x)
	} else {
		err = st.pg.Import(ctx, x)
	}
	if err != nil && created {
		st.close()
		os.Remove(opts.store.state)
	}
	if errors.Is(err, signer.ErrImportConflict) {
		return cli.WithHint(err, "export the state again from the store the signers used last (with --retire to move it into an empty store)")
	}
	if errors.Is(err, signer.ErrNotRetiring) {
		return cli.WithHint(err, "use 'signer restore' (its accounts stay unconfirmed until re-adopted), or export the source again with 'signer state export --retire' (the source is retired: the state moves here)")
	}
	if err != nil {
		return err
	}
	if err := st.close(); err != nil {
		return err
	}
	c := countsOf(x)
	if opts.json {
		return cli.PrintJSON(e.Stdout, struct {
			File     string `json:"file"`
			Retiring bool   `json:"retiring"`
			stateCounts
		}{opts.in, x.Retiring, c})
	}
	retiring := ""
	if x.Retiring {
		retiring = ", a retiring export"
	}
	fmt.Fprintf(e.Stdout, "imported %s (exported from %s at %s%s) into %s:\n", opts.in, x.Source, x.ExportedAt.Format("2006-01-02T15:04:05Z"), retiring, opts.store.name())
	c.print(e.Stdout)
	return nil
}
