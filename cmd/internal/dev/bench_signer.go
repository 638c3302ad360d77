package dev

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/cmd/internal/cold"
	"github.com/nanokms/nanokms/signer/signerconf"
)

// The workload's constants.
const (
	benchWallet      = "bench"
	benchMinAccounts = 64         // accounts per level, at least
	benchFund        = "1000 XNO" // what each account receives to open
	benchSend        = "0.000001" // XNO per send
	benchFunderStart = "10000000" // XNO in the funder's open block
	benchSetupPar    = 8          // concurrent requests while opening accounts
	benchExpiry      = time.Hour  // intents expire this far ahead
	benchMaxLevel    = 4096       // largest concurrency accepted
	benchMaxAccounts = 10_000_000 // largest --accounts accepted
	benchSocketMax   = 107        // longest Unix socket path (sun_path)
	benchTargetRate  = 3000.0     // issue target: signed requests/s at concurrency 64
	benchTargetP99   = 10 * time.Millisecond
	// benchTargetScaleRatio: throughput with many accounts tracked, over
	// that with only the measured ones, at concurrency 64 (issue 12).
	benchTargetScaleRatio = 0.8
	// The PostgreSQL store's targets (issue 15): its throughput over
	// bbolt's at concurrency 64, measured in the same run; its p99 at 8;
	// two signers on one database over one, at 64.
	benchTargetPGRatio  = 0.4
	benchTargetPGP99    = 25 * time.Millisecond
	benchTargetPG2Ratio = 1.3
)

type benchSignerOptions struct {
	concurrency []int
	accounts    []int
	stores      []string
	rounds      int
	history     bool
	requests    int
	duration    time.Duration
	cryptoIters int
	poolSize    int
	dir         string
	cpuProfile  string
	trace       string
	json        bool
}

func newBenchSignerCmd(e *cli.Env) *cobra.Command {
	opts := benchSignerOptions{}
	cmd := &cobra.Command{
		Use:   "signer [--concurrency 1,8,64] [--requests N | --duration D] [--store bbolt,postgres,postgres-2] [--json]",
		Short: "Benchmark the signer end to end: gRPC on a Unix socket, SoftHSM, bbolt with fsync or PostgreSQL",
		Long: `Builds a throw-away signer in a temporary directory, measures it, and deletes
everything again (also when interrupted):

  - a SoftHSM token with its own SOFTHSM2_CONF, made with softhsm2-util
    (softhsm2 is installed with apt-get when missing, if running as root),
    holding a master key and one wallet;
  - a bbolt state file; every decision is committed with fsync; or, with
    --store, the state on PostgreSQL (a server of its own, started in a
    temporary directory: Debian's PostgreSQL 15, installed with apt-get
    when missing, run as the system user nanokms-pgtest when root; fsync
    and synchronous_commit on), a database per signer set;
  - a policy with one approver ("service") and one group: receives are
    automatic, a send needs the service's approval, no limits;
  - the signer served in this process on a Unix socket, and gRPC clients
    dialling unix:// to it.

--store lists the stores to measure, each with signers of its own, in
turns (round by round, and within a round level by level): bbolt (one
signer, a state file), postgres (one signer on a database), postgres-2 (two
signers on one database, the workers split between them, which shows what a
second signer adds); each is compared with the first, and postgres-2 with
postgres.

For each concurrency level C it uses max(C, 64) accounts, adopted through the
API, funded by an outside account whose key the benchmark holds, and opened
with a receive. C workers each own a share of the accounts and send chains of
small sends: each request has a fresh request id, the service's approval,
the account's last signed block as head and the expected block as template.
Latency is measured by the client, per request. With --requests, approvals
are made before the clock starts; with --duration they are made during the
run, on the same cores.

In the same run it measures the pure CPU cost of one request's cryptography
on one core (hashes, the head's signature check, the approval's check, and
the signature with its key derivation) and prints the throughput ceiling
that implies. The signer itself skips the head's signature check when the
head is, signature included, the frontier it recorded (it signed that block
or verified it when adopting it), which is the case for these chains.

Progress goes to standard error, results to standard output.`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("duration") && !cmd.Flags().Changed("requests") {
				opts.requests = 0
			}
			return runBenchSigner(cmd.Context(), e, opts)
		},
	}
	f := cmd.Flags()
	f.IntSliceVar(&opts.concurrency, "concurrency", []int{1, 8, 64}, "concurrency levels to measure, in order")
	f.IntVar(&opts.requests, "requests", 3000, "signed requests per level")
	f.StringSliceVar(&opts.stores, "store", []string{benchStoreBolt}, "the stores to measure, in turns: bbolt, postgres, postgres-2 (two signers on one database)")
	f.IntSliceVar(&opts.accounts, "accounts", []int{0}, "accounts a signer tracks in all: the measured ones and filler accounts written into its state file first (0: only the measured ones); several values make one signer each, measured in turn")
	f.IntVar(&opts.rounds, "rounds", 1, "times to measure every level on every signer, interleaved")
	f.BoolVar(&opts.history, "filler-history", false, "open each filler account with a recorded receive (request, signed block, audit), not only adopt it")
	f.DurationVar(&opts.duration, "duration", 0, "run each level this long instead of a number of requests")
	f.IntVar(&opts.cryptoIters, "crypto-iterations", 2000, "iterations of the pure CPU measurement")
	f.IntVar(&opts.poolSize, "pool-size", signerconf.DefaultPoolSize, "token sessions (token.pool_size)")
	f.StringVar(&opts.dir, "dir", "", "where to make the temporary directory (default: the system's)")
	f.StringVar(&opts.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured levels to this file")
	f.StringVar(&opts.trace, "trace", "", "write a Go execution trace of the measured levels to this file (go tool trace)")
	f.BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runBenchSigner(ctx context.Context, e *cli.Env, opts benchSignerOptions) (err error) {
	maxC, err := opts.validate()
	if err != nil {
		return err
	}

	// The signer in this process runs as `nanokms-cold signer` does.
	defer cold.TuneSignerGC()()

	// Ctrl-C or SIGTERM stops the run and cleans up, however run was called.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The profile files are made first: a wrong path fails before the
	// long set-up, and profiling starts only after it.
	prof, err := createProfiles(opts)
	if err != nil {
		return err
	}
	defer prof.close()

	prog := newBenchProgress(e.Stderr)
	rep := benchSignerReport{
		Machine:       machineInfo(),
		Accounts:      max(maxC, benchMinAccounts),
		TokenPoolSize: opts.poolSize,
	}
	rep.Rounds, rep.FillerHistory = opts.rounds, opts.history
	specs := opts.worlds(rep.Accounts)
	for _, sp := range specs {
		rep.TrackedAccounts = append(rep.TrackedAccounts, sp.Tracked)
		rep.Stores = append(rep.Stores, sp.Store)
	}
	if opts.requests > 0 {
		rep.RequestsPerLevel = opts.requests
	} else {
		rep.DurationPerLevel = opts.duration.String()
	}

	w := &benchWorld{prog: prog, shared: &benchShared{}}
	worlds := []*benchWorld{w}
	defer func() {
		prog.say("cleaning up")
		slices.Reverse(worlds) // the first, which owns the token, last
		for _, w := range worlds {
			if cerr := w.close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("cleaning up: %w", cerr))
			}
		}
	}()
	if err := w.setup(ctx, opts); err != nil {
		return interrupted(ctx, err)
	}
	rep.Machine.StateFS = fsType(w.dir)
	for i, sp := range specs {
		if i > 0 {
			s, err := w.newSibling(ctx, opts, i, sp.Store)
			if s != nil {
				worlds = append(worlds, s)
			}
			if err != nil {
				return interrupted(ctx, err)
			}
		}
		wd := worlds[i]
		wd.tracked = sp.Tracked
		if err := wd.fillAccounts(ctx, sp.Tracked-rep.Accounts, opts.history); err != nil {
			return interrupted(ctx, err)
		}
		if err := wd.openAccounts(ctx, rep.Accounts); err != nil {
			return interrupted(ctx, err)
		}
	}

	prog.say("measuring the pure CPU cost of one request (%d iterations)", opts.cryptoIters)
	if rep.CPU, err = measureRequestCPU(ctx, w.tok, opts.cryptoIters); err != nil {
		return interrupted(ctx, err)
	}

	if err := prof.start(); err != nil {
		return err
	}
	defer prof.stop()
	if err := runLevels(ctx, worlds, opts, &rep); err != nil {
		return interrupted(ctx, err)
	}
	prof.stop()
	rep.Machine.LoadAvgEnd = loadAvg()

	rep.judge(opts.concurrency, specs)
	if opts.json {
		if err := cli.PrintJSON(e.Stdout, rep); err != nil {
			return err
		}
	} else if err := printBenchSigner(e.Stdout, &rep); err != nil {
		return err
	}
	if !rep.OK {
		return cli.WithHint(errors.New("some requests were not signed, or a frontier did not check"), "see first_error in the results")
	}
	return nil
}

// validate checks the options before anything is built, and returns the
// highest concurrency level.
func (opts benchSignerOptions) validate() (maxC int, err error) {
	if len(opts.concurrency) == 0 {
		return 0, cli.UsageErr("--concurrency: give at least one level")
	}
	for _, c := range opts.concurrency {
		if c < 1 || c > benchMaxLevel {
			return 0, cli.UsageErr("--concurrency: %d is not from 1 to %d", c, benchMaxLevel)
		}
		maxC = max(maxC, c)
	}
	switch {
	case opts.requests < 0 || opts.duration < 0:
		return 0, cli.UsageErr("--requests and --duration must not be negative")
	case opts.requests > 0 && opts.duration > 0:
		return 0, cli.UsageErr("give --requests or --duration, not both")
	case opts.requests == 0 && opts.duration == 0:
		return 0, cli.UsageErr("--requests must be at least 1 (or give --duration)")
	case opts.cryptoIters < 1:
		return 0, cli.UsageErr("--crypto-iterations must be at least 1")
	case opts.poolSize < 1 || opts.poolSize > signerconf.MaxPoolSize:
		return 0, cli.UsageErr("--pool-size must be from 1 to %d", signerconf.MaxPoolSize)
	case len(opts.accounts) == 0:
		return 0, cli.UsageErr("--accounts: give at least one number")
	case opts.rounds < 1:
		return 0, cli.UsageErr("--rounds must be at least 1")
	}
	filler := false
	for _, n := range opts.accounts {
		if n < 0 || n > benchMaxAccounts {
			return 0, cli.UsageErr("--accounts must be from 0 to %d", benchMaxAccounts)
		}
		filler = filler || n > 0
	}
	if len(opts.stores) == 0 {
		return 0, cli.UsageErr("--store: give at least one store")
	}
	for i, st := range opts.stores {
		switch {
		case !slices.Contains(benchStores, st):
			return 0, cli.UsageErr("--store: %q is not one of %s", st, strings.Join(benchStores, ", "))
		case slices.Contains(opts.stores[:i], st):
			return 0, cli.UsageErr("--store: %s is listed twice", st)
		case st != benchStoreBolt && filler:
			return 0, cli.UsageErr("--accounts: filler accounts are written into a bbolt state file only, not with --store %s", st)
		}
	}
	if len(opts.stores) > 1 && len(opts.accounts) > 1 {
		return 0, cli.UsageErr("give several --store or several --accounts, not both")
	}
	return maxC, nil
}

// benchWorldKey names one world of a run: its store and how many accounts
// its signer tracks.
type benchWorldKey struct {
	Store   string
	Tracked int
}

// worlds returns the run's worlds, measured in turns: one per --store, or
// one per --accounts value; accounts is how many the levels use.
func (opts benchSignerOptions) worlds(accounts int) []benchWorldKey {
	var out []benchWorldKey
	if len(opts.stores) > 1 {
		for _, st := range opts.stores {
			out = append(out, benchWorldKey{st, max(accounts, opts.accounts[0])})
		}
		return out
	}
	for _, n := range opts.accounts {
		out = append(out, benchWorldKey{opts.stores[0], max(accounts, n)})
	}
	return out
}

// benchProfiles are the --cpuprofile and --trace files of a run: made
// before the set-up, written only while the levels are measured.
type benchProfiles struct {
	cpu, trace     *os.File
	cpuOn, traceOn bool
}

func createProfiles(opts benchSignerOptions) (*benchProfiles, error) {
	p := &benchProfiles{}
	var err error
	if opts.cpuProfile != "" {
		if p.cpu, err = os.Create(opts.cpuProfile); err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	if opts.trace != "" {
		if p.trace, err = os.Create(opts.trace); err != nil {
			p.close()
			return nil, fmt.Errorf("--trace: %w", err)
		}
	}
	return p, nil
}

func (p *benchProfiles) start() error {
	if p.cpu != nil {
		if err := pprof.StartCPUProfile(p.cpu); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		p.cpuOn = true
	}
	if p.trace != nil {
		if err := trace.Start(p.trace); err != nil {
			p.stop()
			return fmt.Errorf("--trace: %w", err)
		}
		p.traceOn = true
	}
	return nil
}

// stop ends what start began; it may be called more than once.
func (p *benchProfiles) stop() {
	if p.cpuOn {
		pprof.StopCPUProfile()
		p.cpuOn = false
	}
	if p.traceOn {
		trace.Stop()
		p.traceOn = false
	}
}

func (p *benchProfiles) close() {
	p.stop()
	for _, f := range []*os.File{p.cpu, p.trace} {
		if f != nil {
			f.Close()
		}
	}
}

// interrupted turns an error caused by cancellation into a plain message.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted (%v)", ctx.Err())
	}
	return err
}
