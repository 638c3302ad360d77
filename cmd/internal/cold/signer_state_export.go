package cold

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/signer"
)

type signerStateExportOptions struct {
	store stateStoreFlags
	out   string
	json  bool
}

func newSignerStateExportCmd(e *cli.Env) *cobra.Command {
	var opts signerStateExportOptions
	cmd := &cobra.Command{
		Use:   "export (--state FILE | --pg-dsn-file F | --pg-dsn-env VAR) --out FILE",
		Short: "Write a signer's whole state to a file, for import into another store",
		Long: `Writes the whole durable state of a signer — or of the signers sharing a
PostgreSQL database — to a new file FILE (mode 0600; an existing file is not
overwritten): every tracked account at its current frontier, the blocks
signed, the answers recorded (byte for byte, for repeats), the sources
received, the sends in the velocity window (the last 24 hours; older ones no
longer count and are left out), the releases and the audit chain. It is read
in one transaction (on PostgreSQL the signers may keep running: what they
commit meanwhile is not in the file), and checked before it is written: a
chain that does not verify is not exported. 'signer state import' reads it
(docs/OPERATIONS.md, "Moving a signer's state").` + stateStoreHelp,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSignerStateExport(cmd.Context(), e, opts) },
	}
	opts.store.register(cmd)
	cmd.Flags().StringVar(&opts.out, "out", "", "the file to write (must not exist)")
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
	st, err := openStateStore(ctx, &opts.store, false, signer.PGOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer st.close()
	now := time.Now()
	var x *signer.StateExport
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
	c := countsOf(x)
	if opts.json {
		return cli.PrintJSON(e.Stdout, struct {
			File string `json:"file"`
			stateCounts
		}{opts.out, c})
	}
	fmt.Fprintf(e.Stdout, "exported the signer state of %s to %s:\n", opts.store.name(), opts.out)
	c.print(e.Stdout)
	return nil
}

// writeExport writes x to a new file at path, synced. The file is created
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
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("--out %s: writing the export: %w (the file was removed)", path, err)
	}
	return nil
}
