package cold

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/signer"
)

type signerStateExportOptions struct {
	store  stateStoreFlags
	out    string
	retire bool
	json   bool
}

func newSignerStateExportCmd(e *cli.Env) *cobra.Command {
	var opts signerStateExportOptions
	cmd := &cobra.Command{
		Use:   "export (--state FILE | --pg-dsn-file F | --pg-dsn-env VAR) --out FILE [--retire]",
		Short: "Write a signer's whole state to a file; with --retire, move it to another store",
		Long: `Writes the whole durable state of a signer — or of the signers sharing a
PostgreSQL database — to a new file FILE (mode 0600; an existing file is not
overwritten): every tracked account at its current frontier, the blocks
signed, the answers recorded (byte for byte, for repeats), the sources
received, the sends in the velocity window (the last 24 hours; older ones no
longer count and are left out), the releases and the audit chain. It is read
in one transaction (on PostgreSQL the signers may keep running: what they
commit meanwhile is not in the file), and checked before it is written: a
chain that does not verify is not exported. 'signer state import' reads it
(docs/OPERATIONS.md, "Moving a signer's state").

With --retire, the export moves the state: in the same transaction as its
read, the store is marked retired and a "retired" audit record, the file's
last, is appended to its chain, and the file says it is a retiring export.
It is the only kind of export 'signer state import' takes into a store that
holds nothing: a plain export or a backup may be older than what its source
signed since. The file is written and synced before the transaction commits:
if it cannot be written, the store is not retired; if the command does not
report success, the store is not retired and the file must be deleted, never
imported. A retired store serves no more: the signer does not start on it,
and on PostgreSQL a signer still running on the database signs nothing more
(its requests get Unavailable). Stop the signer first — on PostgreSQL every
signer on the database. A store already retired is refused: there is one
retiring export of it. A plain export, 'signer backup' and 'audit verify'
still read a retired store.` + stateStoreHelp,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSignerStateExport(cmd.Context(), e, opts) },
	}
	opts.store.register(cmd)
	cmd.Flags().StringVar(&opts.out, "out", "", "the file to write (must not exist)")
	cmd.Flags().BoolVar(&opts.retire, "retire", false, "retire the store: the state moves to the store the file is imported into")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runSignerStateExport(ctx context.Context, e *cli.Env, opts signerStateExportOptions) error {
	if err := opts.store.check(); err != nil {
		return err
	}
	if opts.out == "" {
		return cli.UsageErr("--out is required")
	}
	st, err := openStateStore(ctx, &opts.store, false, signer.PGOptions{ReadOnly: !opts.retire})
	if err != nil {
		return err
	}
	defer st.close()
	now := time.Now()
	var x *signer.StateExport
	if opts.retire {
		x, err = retireExport(ctx, st, now, opts.out)
		if err != nil {
			return err
		}
	} else {
		if st.bolt != nil {
			x, err = st.bolt.Export(now)
		} else {
			x, err = st.pg.Export(ctx, now)
		}
		if err != nil {
			return cli.WithHint(err, "nothing was written; 'nanokms audit verify' tells whether the audit chain holds")
		}
		if err := writeExport(opts.out, x); err != nil {
			return err
		}
	}
	if err := st.close(); err != nil {
		return err
	}
	c := countsOf(x)
	if opts.json {
		return cli.PrintJSON(e.Stdout, struct {
			File     string `json:"file"`
			Retired  bool   `json:"retired"`
			AuditSeq uint64 `json:"retired_audit_seq,omitempty"`
			stateCounts
		}{opts.out, opts.retire, retiredSeq(x), c})
	}
	if !opts.retire {
		fmt.Fprintf(e.Stdout, "exported the signer state of %s to %s:\n", opts.store.name(), opts.out)
		c.print(e.Stdout)
		return nil
	}
	fmt.Fprintf(e.Stdout, "exported the signer state of %s to %s and retired it:\n", opts.store.name(), opts.out)
	c.print(e.Stdout)
	fmt.Fprintf(e.Stdout, "  audit record %d: retired; this store signs nothing more\n", retiredSeq(x))
	fmt.Fprintf(e.Stdout, "import %s into the new store ('signer state import') and start the signer there\n", opts.out)
	return nil
}

// retiredSeq is the "retired" audit record of a retiring export (its
// last), 0 for another.
func retiredSeq(x *signer.StateExport) uint64 {
	if !x.Retiring {
		return 0
	}
	return uint64(len(x.Audit))
}

// retireExport takes a retiring export of st to the new file out: the
// file is written and synced (with its directory) inside the store's
// transaction, before the mark commits (signer/retire.go says why and
// what each crash leaves); a file written for a transaction that did not
// commit is removed.
func retireExport(ctx context.Context, st *stateStore, now time.Time, out string) (*signer.StateExport, error) {
	wrote := false
	var writeErr error
	write := func(x *signer.StateExport) error {
		if writeErr = writeExport(out, x); writeErr != nil {
			return writeErr
		}
		wrote = true
		return nil
	}
	var x *signer.StateExport
	var err error
	if st.bolt != nil {
		x, err = st.bolt.ExportRetire(now, out, write)
	} else {
		x, err = st.pg.ExportRetire(ctx, now, out, write)
	}
	var re *signer.RetiredError
	var ce *cli.Error
	switch {
	case err == nil:
		return x, nil
	case errors.As(err, &re):
		return nil, cli.WithHint(fmt.Errorf("%w; nothing was written", err),
			"a store is retired once: import the file it was retired to. If that file is lost, export it without --retire and 'signer restore' that into a new, empty store: its accounts stay unconfirmed until re-adopted")
	case wrote:
		os.Remove(out)
		return nil, cli.WithHint(fmt.Errorf("%w (--out %s was removed)", err, out), "the store is not retired: run the export again")
	case errors.As(writeErr, &ce):
		return nil, cli.WithHint(fmt.Errorf("%w; the store is not retired", ce.Err), ce.Hint)
	case writeErr != nil:
		return nil, cli.WithHint(fmt.Errorf("%w; the store is not retired", writeErr), "give a new file name, in a directory that exists, on a file system with room for it")
	}
	return nil, cli.WithHint(fmt.Errorf("%w; nothing was written, the store is not retired", err), "'nanokms audit verify' tells whether the audit chain holds")
}

// writeExport writes x to a new file at path, synced with its directory.
// The file is created
// exclusively (not through a symbolic link, never over an existing file)
// and removed if the write fails; a file cut short by a crash is refused
// by import (its end record is missing).
func writeExport(path string, x *signer.StateExport) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return cli.WithHint(fmt.Errorf("--out %s: the file exists; nothing was written", path), "give a new file name")
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("--out %s: %w", path, err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	_, err = x.WriteTo(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("--out %s: writing the export: %w (the file was removed)", path, unwrapPath(err))
	}
	return nil
}
