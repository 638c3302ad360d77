package cold

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/signer"
)

type signerRestoreOptions struct {
	store stateStoreFlags
	in    string
	json  bool
}

func newSignerRestoreCmd(e *cli.Env) *cobra.Command {
	var opts signerRestoreOptions
	cmd := &cobra.Command{
		Use:   "restore (--state FILE | --pg-dsn-file F | --pg-dsn-env VAR) --in BACKUP",
		Short: "Put a backup back into a stopped signer's state, never letting it sign twice on one head",
		Long: `Reads a backup written by 'signer backup' (or 'signer state export'), checks
all of it, and replaces the state of a stopped signer with it in one
transaction — a state file (made if missing) or the signers' PostgreSQL
database — so that a rollback can never lead to a second block on a head
the signer signed on:

- Over a state that holds anything the backup does not (a block signed, an
  answer recorded, audit records past the backup's: the signer signed or
  decided after the backup), it is refused and nothing changes. Keep that
  state: it is newer.
- Over a state the backup holds whole (the same state, or an older copy of
  it), it is taken, and the signer signs on as before.
- Into a state that holds nothing (the live state was lost: a new file, an
  empty database), nothing can tell what the signer signed after the
  backup, so every account is restored with its frontier unconfirmed: the
  signer refuses to sign for it (FRONTIER_UNCONFIRMED) until it is
  re-adopted from its current head with 'signer adopt --head FILE [--chain
  FILE...]', which the signer verifies (signed, and the restored frontier
  or built on it through the blocks given).

Either way a "restored" audit record continues the backup's chain
(docs/OPERATIONS.md, "Backup and restore drill"). A retired store ('signer
state export --retire') is refused: its state moved to another store.` + stateStoreHelp,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSignerRestore(cmd.Context(), e, opts) },
	}
	opts.store.register(cmd)
	cmd.Flags().StringVar(&opts.in, "in", "", "the backup to restore")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runSignerRestore(ctx context.Context, e *cli.Env, opts signerRestoreOptions) error {
	if err := opts.store.check(); err != nil {
		return err
	}
	if opts.in == "" {
		return cli.UsageErr("--in is required")
	}
	data, err := os.ReadFile(opts.in)
	if err != nil {
		return fmt.Errorf("--in %s: %w", opts.in, unwrapPath(err))
	}
	x, err := signer.ParseStateExport(data)
	if err != nil {
		return cli.WithHint(fmt.Errorf("--in %s: %w", opts.in, err), "nothing was restored; use another backup")
	}
	st, err := openStateStore(ctx, &opts.store, true, signer.PGOptions{})
	if err != nil {
		return err
	}
	defer st.close()
	var res signer.RestoreResult
	if st.bolt != nil {
		res, err = st.bolt.Restore(x, time.Now())
	} else {
		res, err = st.pg.Restore(ctx, x, time.Now())
	}
	if errors.Is(err, signer.ErrStoreRetired) {
		return cli.WithHint(err, "nothing was restored: the state moved to the store its retiring export was imported into; restore there, or into a new, empty store")
	}
	if errors.Is(err, signer.ErrImportConflict) {
		return cli.WithHint(err, "the state is newer than the backup: keep it. Only if it is lost (its file gone or unreadable, its database empty), move it aside and restore into a new, empty one: the accounts then stay unconfirmed until re-adopted")
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
			File        string `json:"file"`
			Lost        bool   `json:"state_was_empty"`
			Unconfirmed int    `json:"unconfirmed"`
			AuditSeq    uint64 `json:"audit_seq"`
			stateCounts
		}{opts.in, res.Lost, res.Unconfirmed, res.AuditSeq, c})
	}
	fmt.Fprintf(e.Stdout, "restored %s (exported from %s at %s) into %s", opts.in, x.Source, x.ExportedAt.Format("2006-01-02T15:04:05Z"), opts.store.name())
	if res.Lost {
		fmt.Fprintln(e.Stdout, ", which held nothing:")
	} else {
		fmt.Fprintln(e.Stdout, ", over the state it continues:")
	}
	c.print(e.Stdout)
	fmt.Fprintf(e.Stdout, "  audit record %d: restored\n", res.AuditSeq)
	switch {
	case res.Unconfirmed > 0:
		fmt.Fprintf(e.Stdout, "%d of %d accounts have their frontier unconfirmed: the signer signs nothing for them until each is re-adopted\n", res.Unconfirmed, res.Accounts)
		fmt.Fprintln(e.Stdout, "from its current head: nanokms signer adopt --wallet W --index I --head HEAD.json [--chain BLOCK.json...]")
	default:
		fmt.Fprintln(e.Stdout, "no account needs re-adopting")
	}
	return nil
}
