package cold

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/metrics/jobmetrics"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
)

type signerBackupOptions struct {
	conn    connectFlags
	out     string
	outDir  string
	outFlag string // the flag that named out, for errors
	json    bool
	metrics string
	warn    func(error)
}

func newSignerBackupCmd(e *cli.Env) *cobra.Command {
	var opts signerBackupOptions
	cmd := &cobra.Command{
		Use:   "backup (--connect unix:///PATH | --config F) (--out FILE | --out-dir DIR)",
		Short: "Write a consistent snapshot of a running signer's state to a new file",
		Long: `Asks the running signer for a snapshot of its whole durable state (its
bbolt file, or the signers' PostgreSQL database), read in one transaction
while it goes on signing, and writes it to FILE: a new file (mode 0600; an
existing file, or a symbolic link, is never written over), synced with its
directory before the command succeeds. The snapshot is the state export
format of 'signer state export', checked whole once written (its checksum,
its records, its audit chain); a file that does not check, a signer that
fails part way or a full disk leave no file behind.

The backup holds no key material: accounts, the blocks signed, the answers
recorded and the audit chain. Restoring it ('signer restore') never lets the
signer sign a second block on a head it signed on after the backup: over a
state that holds more, it is refused; into a state that was lost, every
account's frontier is unconfirmed until re-adopted from its current head
(docs/OPERATIONS.md, "Backup and restore drill").

Only those who may use the signer's socket can take a backup, as for
'signer adopt' and 'signer release'.

With --out-dir DIR the file is DIR/signer-YYYYMMDDTHHMMSSZ.state, named
after the time of the run (UTC): one new file per run, as a timer takes
them (deploy/systemd/nanokms-signer-backup.timer); pruning old ones is the
operator's (docs/OPERATIONS.md).

With --metrics FILE it also writes the outcome to FILE, a node_exporter
textfile (docs/METRICS.md, "Signer backup"), whether the backup succeeded
or not: a failed run keeps the last success's time, size and audit
records from the file the previous run wrote.`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.warn = warnTo(cmd, e)
			return runSignerBackup(cmd.Context(), e, opts)
		},
	}
	opts.conn.register(cmd)
	cmd.Flags().StringVar(&opts.out, "out", "", "the file to write (must not exist)")
	cmd.Flags().StringVar(&opts.outDir, "out-dir", "", "write signer-<UTC time>.state in this directory instead")
	cmd.Flags().StringVar(&opts.metrics, "metrics", "", metricsFlagHelp)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runSignerBackup(ctx context.Context, e *cli.Env, opts signerBackupOptions) error {
	switch {
	case opts.out != "" && opts.outDir != "":
		return cli.UsageErr("--out and --out-dir are mutually exclusive")
	case opts.outDir != "":
		opts.out, opts.outFlag = filepath.Join(opts.outDir, "signer-"+time.Now().UTC().Format("20060102T150405Z")+".state"), "--out-dir"
	case opts.out == "":
		return cli.UsageErr("--out or --out-dir is required")
	default:
		opts.outFlag = "--out"
	}
	if err := checkMetricsFlag(opts.metrics); err != nil {
		return err
	}
	n, x, err := takeBackup(ctx, opts)
	var ce *cli.Error
	if errors.As(err, &ce) && ce.Code == cli.ExitUsage {
		return err // nothing was tried
	}
	if opts.metrics != "" {
		r := jobmetrics.Backup{OK: err == nil, Bytes: n, At: time.Now()}
		if err == nil {
			r.Records = uint64(len(x.Audit))
		}
		if werr := jobmetrics.WriteBackup(opts.metrics, r, opts.warn); werr != nil {
			if err != nil {
				// The backup's failure is the error; the metrics' is
				// said too.
				opts.warn(metricsWriteErr(opts.metrics, werr))
				return err
			}
			return metricsWriteErr(opts.metrics, werr)
		}
	}
	if err != nil {
		return err
	}
	c := countsOf(x)
	if opts.json {
		return cli.PrintJSON(e.Stdout, struct {
			File       string `json:"file"`
			Bytes      int64  `json:"bytes"`
			ExportedAt string `json:"exported_at"`
			stateCounts
		}{opts.out, n, x.ExportedAt.Format("2006-01-02T15:04:05.000000000Z"), c})
	}
	fmt.Fprintf(e.Stdout, "backed up the signer's state (%s, at %s) to %s, %d bytes:\n", x.Source, x.ExportedAt.Format("2006-01-02T15:04:05Z"), opts.out, n)
	c.print(e.Stdout)
	return nil
}

// takeBackup writes the running signer's backup to opts.out and checks
// it; on error no file is left.
func takeBackup(ctx context.Context, opts signerBackupOptions) (int64, *signer.StateExport, error) {
	conn, err := opts.conn.dial()
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	f, err := createNew(opts.outFlag, opts.out)
	if err != nil {
		return 0, nil, err
	}
	n, x, err := receiveBackup(ctx, pb.NewSignerClient(conn), f, opts.outFlag, opts.out)
	if err != nil {
		os.Remove(opts.out)
		return 0, nil, err
	}
	return n, x, nil
}

// createNew creates path for writing, mode 0600: never over an existing
// file, never through a symbolic link (O_EXCL refuses both).
func createNew(flag, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, cli.WithHint(fmt.Errorf("%s %s: the file exists; nothing was written", flag, path), "give a new file name")
		}
		return nil, fmt.Errorf("%s %s: %w", flag, path, unwrapPath(err))
	}
	return f, nil
}

// unwrapPath drops the *os.PathError around err (the caller names the
// file).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// receiveBackup writes the signer's backup stream to f (path, named by
// flag), syncs and closes it and its directory, and checks the file
// whole. It closes f whatever happens; the caller removes the file on
// error.
func receiveBackup(ctx context.Context, c pb.SignerClient, f *os.File, flag, path string) (int64, *signer.StateExport, error) {
	n, err := copyBackup(ctx, c, f)
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
		var se *signerStreamErr
		if errors.As(err, &se) {
			return 0, nil, RPCErr(se.err) // the caller removes the file
		}
		err = unwrapPath(err)
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return 0, nil, cli.WithHint(fmt.Errorf("%s %s: writing the backup: %w (the file was removed)", flag, path, err),
				"free space on that file system, or write the backup to another one")
		}
		return 0, nil, fmt.Errorf("%s %s: writing the backup: %w (the file was removed)", flag, path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: reading the backup back: %w (the file was removed)", flag, path, unwrapPath(err))
	}
	x, err := signer.ParseStateExport(data)
	if err != nil {
		return 0, nil, cli.WithHint(fmt.Errorf("%s %s: the backup does not check: %w (the file was removed)", flag, path, err),
			"the signer and this command may be of different versions: run the same release on both")
	}
	return n, x, nil
}

// signerStreamErr is a failure of the signer's stream, not of the file.
type signerStreamErr struct{ err error }

func (e *signerStreamErr) Error() string { return e.err.Error() }

// copyBackup copies the Backup stream to w and returns how many bytes it
// wrote.
func copyBackup(ctx context.Context, c pb.SignerClient, w io.Writer) (int64, error) {
	stream, err := c.Backup(ctx, &pb.BackupRequest{})
	if err != nil {
		return 0, &signerStreamErr{err}
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	var n int64
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, &signerStreamErr{err}
		}
		m, err := bw.Write(chunk.GetData())
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}

// syncDir fsyncs directory dir, so that a new file's name in it is
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
