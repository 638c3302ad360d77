package cold

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/metrics/jobmetrics"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
)

func newAuditCmd(e *cli.Env) *cobra.Command {
	cmd := cli.NewGroup("audit", "Read and verify the signer's audit chain")
	cmd.AddCommand(newAuditVerifyCmd(e))
	return cmd
}

type auditVerifyOptions struct {
	state   string
	pg      pgFlags
	conn    connectFlags
	json    bool
	metrics string
	warn    func(error)
}

func newAuditVerifyCmd(e *cli.Env) *cobra.Command {
	var opts auditVerifyOptions
	cmd := &cobra.Command{
		Use:   "verify (--state FILE | --pg-dsn-file F | --pg-dsn-env VAR | --connect unix:///path | --config F)",
		Short: "Walk the audit chain and report the first broken link",
		Long: `Recomputes every audit record's hash and checks that each record names its
predecessor's hash (docs/PROTOCOL.md). Reads the state file directly with
--state (the signer must be stopped: it holds the file), reads the one chain
of every signer sharing a PostgreSQL database with --pg-dsn-file or
--pg-dsn-env (the signers may keep running: one snapshot of the chain is
checked, read-only, and records appended meanwhile are not counted), or
streams the chain from a running signer with --connect or --config (on a
state file, the way to check it while the signer runs). Exits 0 only if the
whole chain verifies.

With --metrics FILE it also writes the outcome to FILE, a node_exporter
textfile (docs/METRICS.md, "Audit verify"), on a broken chain too: whether
the chain held, the records checked, when it ran and when it last held (a
failed run keeps that time from the file the previous run wrote). A chain
that could not be read at all writes nothing. With --connect the store is
not known: give --config instead.` + pgFlagsHelp,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.warn = warnTo(cmd, e)
			return runAuditVerify(cmd.Context(), e, opts)
		},
	}
	cmd.Flags().StringVar(&opts.state, "state", "", "the signer's state file (signer stopped)")
	cmd.Flags().StringVar(&opts.metrics, "metrics", "", metricsFlagHelp)
	opts.pg.register(cmd)
	opts.conn.register(cmd)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// auditVerifyResult is the --json output of audit verify.
type auditVerifyResult struct {
	Records  uint64 `json:"records"`
	Valid    bool   `json:"valid"`
	BrokenAt uint64 `json:"broken_at,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

func runAuditVerify(ctx context.Context, e *cli.Env, opts auditVerifyOptions) error {
	var (
		n     uint64
		err   error
		store string
	)
	connect := opts.conn.connect != "" || opts.conn.config != ""
	if err := opts.pg.check(); err != nil {
		return err
	}
	if err := checkMetricsFlag(opts.metrics); err != nil {
		return err
	}
	switch {
	case opts.pg.set() && (opts.state != "" || connect):
		return cli.UsageErr("--pg-dsn-file/--pg-dsn-env and --state/--connect/--config are mutually exclusive")
	case opts.state != "" && connect:
		return cli.UsageErr("--state and --connect/--config are mutually exclusive")
	case opts.pg.set():
		store = jobmetrics.StorePostgres
		pg, oerr := opts.pg.open(ctx, signer.PGOptions{ReadOnly: true})
		if oerr != nil {
			return oerr
		}
		defer pg.Close()
		n, err = pg.VerifyAudit(ctx)
		if errors.Is(err, signer.ErrStoreUnavailable) {
			return cli.WithHint(err, "is PostgreSQL running? check its log; the chain was not checked")
		}
	case opts.state != "":
		// OpenStore creates a missing file: a mistyped path would be
		// reported as an empty chain that verifies.
		if _, serr := os.Stat(opts.state); serr != nil {
			var pe *os.PathError
			if errors.As(serr, &pe) {
				serr = pe.Err
			}
			return cli.WithHint(fmt.Errorf("--state %s: %w", opts.state, serr), "give the signer's state file (signer.state in its configuration)")
		}
		store = jobmetrics.StoreBbolt
		st, oerr := signer.OpenStore(opts.state)
		if oerr != nil {
			return cli.WithHint(oerr, "stop the signer first, or use --connect to ask the running signer")
		}
		defer st.Close()
		n, err = st.VerifyAudit()
	case !connect:
		return cli.UsageErr("one of --state, --pg-dsn-file, --pg-dsn-env, --connect or --config is required")
	default:
		if opts.metrics != "" {
			if opts.conn.config == "" {
				return cli.UsageErr("--metrics with --connect: the store is not known; give --config instead (the signer's configuration names its store)")
			}
			cfg, cerr := loadSignerConfig(opts.conn.config)
			if cerr != nil {
				return cerr
			}
			store = jobmetrics.StoreBbolt
			if cfg.Signer.Postgres != nil {
				store = jobmetrics.StorePostgres
			}
		}
		n, err = streamAudit(ctx, opts.conn)
	}
	res := auditVerifyResult{Records: n, Valid: err == nil}
	var brk *signer.AuditBreak
	if errors.As(err, &brk) {
		res.BrokenAt, res.Reason = brk.Seq, brk.Reason
	} else if err != nil {
		return err
	}
	var merr error
	if opts.metrics != "" {
		r := jobmetrics.AuditVerify{Store: store, OK: res.Valid, Records: n, At: time.Now()}
		if werr := jobmetrics.WriteAuditVerify(opts.metrics, r, opts.warn); werr != nil {
			merr = metricsWriteErr(opts.metrics, werr)
		}
	}
	if opts.json {
		if err := cli.PrintJSON(e.Stdout, res); err != nil {
			return err
		}
	} else if res.Valid {
		fmt.Fprintf(e.Stdout, "audit chain: %d records, every link verifies\n", n)
	} else {
		fmt.Fprintf(e.Stdout, "audit chain: BROKEN at record %d: %s (%d records before it verify)\n", res.BrokenAt, res.Reason, n)
	}
	if merr != nil {
		return merr
	}
	if !res.Valid {
		return cli.ErrCheckFailed
	}
	return nil
}

func streamAudit(ctx context.Context, c connectFlags) (uint64, error) {
	conn, err := c.dial()
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	stream, err := pb.NewSignerClient(conn).Audit(ctx, &pb.AuditRequest{FromSeq: 1})
	if err != nil {
		return 0, RPCErr(err)
	}
	checker := signer.NewAuditChecker()
	for {
		rec, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return checker.Count(), nil
		}
		if err != nil {
			return checker.Count(), RPCErr(err)
		}
		if err := checker.Check(rec); err != nil {
			return checker.Count(), err
		}
	}
}
