package dev

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/cmd/internal/cold"
	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtool"
)

// The targets for the whole pipeline (issue 14).
const (
	pipeTargetGatewayCPUMs = 2.0                   // gateway CPU per withdrawal
	pipeTargetRelayCPUMs   = 1.0                   // relay CPU per withdrawal
	pipeTargetRate64       = 200.0                 // withdrawals/s with 64 submitters
	pipeTargetOfSigner     = 0.07                  // of the signer-alone rate, same run
	pipeTargetP50One       = 15 * time.Millisecond // submit → confirmed, one submitter
	pipeTargetPGOfBolt     = 0.6                   // the PostgreSQL store's rate over bbolt's, 64 submitters
	pipeSignerConcurrency  = 64                    // the signer-alone measurement's concurrency
	pipeFund               = "1000XNO"             // what the dev node sends each pipeline account
)

type benchPipelineOptions struct {
	submitters     []int
	duration       time.Duration
	rounds         int
	accounts       int
	signerDuration time.Duration
	pollInterval   time.Duration
	confirmDelay   time.Duration
	variants       []string
	gatewayStores  []string
	dir            string
	medium         string
	keep           bool
	json           bool
}

func newBenchPipelineCmd(e *cli.Env) *cobra.Command {
	opts := benchPipelineOptions{}
	cmd := &cobra.Command{
		Use:   "pipeline [--submitters 1,64] [--duration D] [--variant NAME=DIR]... [--json]",
		Short: "Benchmark the whole pipeline: gateway, file bridge, relay, signer on SoftHSM, dev node; each a process of its own",
		Long: `Builds the whole pipeline in a temporary directory, measures it, and deletes
everything again (also when interrupted):

  - a SoftHSM token with a master key and one wallet (as 'bench signer');
  - 'nanokms-cold signer' (bbolt state file, a policy with one approver,
    "service": a send needs its approval, receives are automatic);
  - 'nanokms-dev devnode', confirming each block after --confirm-delay, which
    funds the pipeline's accounts from its genesis at start;
  - 'nanokms-cold relay' and 'nanokms gateway', joined by a file bridge
    (poll interval --poll-interval) in the temporary directory; the gateway
    reaches the dev node over IPC and its WebSocket, makes proof of work on
    the CPU, and receives the funds (auto-receive) before the measurement.

Each process runs from the binaries of a variant (--variant NAME=DIR: DIR
holds nanokms, nanokms-cold and nanokms-dev; several variants are measured
interleaved in one run, each with processes of its own, the others' stopped
with SIGSTOP while one is measured). Without --variant the binaries are the
ones beside this binary, else on PATH.

For each number of submitters S, S clients each submit a withdrawal (a send
of 0.000001 XNO with the service's approval, a fresh request id, no head:
the gateway reads it from the node) over the gateway's gRPC API, follow it
with WatchRequest until CONFIRMED, and submit the next, for --duration. It
prints withdrawals per second, the percentiles of submit → confirmed, and
the CPU each process used per withdrawal (utime + stime from /proc/PID/stat).
In each round it also measures the signer alone (gRPC Sign, 64 concurrent
clients, on accounts of its own) for --signer-duration, and prints the
pipeline's rate as a share of it.

--gateway-store bbolt,postgres measures each variant with each store of the
gateway's state: its bbolt file, or a database of a PostgreSQL 15 server the
run starts in its temporary directory ([gateway.postgres]; the server's CPU
is reported as "postgres"); each pair is then a variant of its own, named
NAME-bbolt and NAME-postgres.

Progress goes to standard error, results to standard output.`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBenchPipeline(cmd.Context(), e, opts) },
	}
	f := cmd.Flags()
	f.IntSliceVar(&opts.submitters, "submitters", []int{1, 64}, "numbers of concurrent submitters to measure, in order")
	f.DurationVar(&opts.duration, "duration", 20*time.Second, "how long to run each number of submitters")
	f.IntVar(&opts.rounds, "rounds", 1, "times to measure every variant and number of submitters, interleaved")
	f.IntVar(&opts.accounts, "accounts", 64, "custody accounts in the pipeline (at least the largest --submitters)")
	f.DurationVar(&opts.signerDuration, "signer-duration", 5*time.Second, "how long to measure the signer alone in each round (0: not at all)")
	f.DurationVar(&opts.pollInterval, "poll-interval", 5*time.Millisecond, "bridge.poll_interval of the relay and the gateway")
	f.DurationVar(&opts.confirmDelay, "confirm-delay", time.Millisecond, "the dev node's --confirm-delay")
	f.StringArrayVar(&opts.variants, "variant", nil, "NAME=DIR: measure the binaries in DIR under NAME (repeatable)")
	f.StringSliceVar(&opts.gatewayStores, "gateway-store", nil, "the gateway's stores to measure each variant with: bbolt, postgres (default: bbolt alone, the variants' names as given)")
	f.StringVar(&opts.dir, "dir", "", "where to make the temporary directory (default: the system's)")
	f.StringVar(&opts.medium, "medium", "", "where to make the bridge's directories, such as a tmpfs (default: in the temporary directory)")
	f.BoolVar(&opts.keep, "keep", false, "keep the temporary directory (the processes' logs and files) instead of deleting it")
	f.BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// pipeVariant is one set of binaries.
type pipeVariant struct {
	Name string `json:"name"`
	// Store is the gateway's store: pipeStoreBolt or pipeStorePG.
	Store   string `json:"gateway_store"`
	Gateway string `json:"nanokms"`
	Cold    string `json:"nanokms_cold"`
	Dev     string `json:"nanokms_dev"`
}

func (opts benchPipelineOptions) validate() ([]pipeVariant, error) {
	if len(opts.submitters) == 0 {
		return nil, cli.UsageErr("--submitters: give at least one number")
	}
	for _, s := range opts.submitters {
		if s < 1 || s > benchMaxLevel {
			return nil, cli.UsageErr("--submitters: %d is not from 1 to %d", s, benchMaxLevel)
		}
		if s > opts.accounts {
			return nil, cli.UsageErr("--submitters %d needs --accounts %d or more (one account serves one submitter at a time)", s, s)
		}
	}
	switch {
	case opts.duration <= 0:
		return nil, cli.UsageErr("--duration must be positive")
	case opts.rounds < 1:
		return nil, cli.UsageErr("--rounds must be at least 1")
	case opts.accounts < 1 || opts.accounts > 10_000:
		return nil, cli.UsageErr("--accounts must be from 1 to 10000")
	case opts.signerDuration < 0:
		return nil, cli.UsageErr("--signer-duration must not be negative")
	case opts.pollInterval <= 0:
		return nil, cli.UsageErr("--poll-interval must be positive")
	case opts.confirmDelay < 0:
		return nil, cli.UsageErr("--confirm-delay must not be negative")
	}
	for i, st := range opts.gatewayStores {
		switch {
		case st != pipeStoreBolt && st != pipeStorePG:
			return nil, cli.UsageErr("--gateway-store %q: want %s or %s", st, pipeStoreBolt, pipeStorePG)
		case slices.Contains(opts.gatewayStores[:i], st):
			return nil, cli.UsageErr("--gateway-store %s: named twice", st)
		}
	}
	bins, err := opts.binaries()
	if err != nil {
		return nil, err
	}
	if len(opts.gatewayStores) == 0 {
		for i := range bins {
			bins[i].Store = pipeStoreBolt
		}
		return bins, nil
	}
	var out []pipeVariant
	for _, v := range bins {
		for _, st := range opts.gatewayStores {
			w := v
			w.Name, w.Store = v.Name+"-"+st, st
			out = append(out, w)
		}
	}
	return out, nil
}

// The gateway's stores (--gateway-store).
const (
	pipeStoreBolt = "bbolt"
	pipeStorePG   = "postgres"
)

// binaries returns the variants' binaries (--variant).
func (opts benchPipelineOptions) binaries() ([]pipeVariant, error) {
	if len(opts.variants) == 0 {
		v, err := findVariant("this", "")
		if err != nil {
			return nil, err
		}
		return []pipeVariant{v}, nil
	}
	var names, dirs []string
	for _, spec := range opts.variants {
		name, dir, ok := strings.Cut(spec, "=")
		if !ok || name == "" || dir == "" || strings.ContainsAny(name, "/ ") {
			return nil, cli.UsageErr("--variant %q: want NAME=DIR", spec)
		}
		if slices.Contains(names, name) {
			return nil, cli.UsageErr("--variant %s: named twice", name)
		}
		names, dirs = append(names, name), append(dirs, dir)
	}
	var out []pipeVariant
	for i, name := range names {
		v, err := findVariant(name, dirs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// findVariant finds the three binaries in dir, or ("" dir) beside this
// binary, else on PATH.
func findVariant(name, dir string) (pipeVariant, error) {
	v := pipeVariant{Name: name}
	for _, b := range []struct {
		bin string
		to  *string
	}{{"nanokms", &v.Gateway}, {coldBinaryName, &v.Cold}, {"nanokms-dev", &v.Dev}} {
		if dir != "" {
			p := filepath.Join(dir, b.bin)
			if _, err := exec.LookPath(p); err != nil {
				return v, cli.WithHint(fmt.Errorf("--variant %s: %w", name, err), "DIR must hold nanokms, nanokms-cold and nanokms-dev (make build puts them in bin/)")
			}
			*b.to = p
			continue
		}
		if self, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(self), b.bin); func() bool { _, err := exec.LookPath(p); return err == nil }() {
				*b.to = p
				continue
			}
		}
		p, err := exec.LookPath(b.bin)
		if err != nil {
			return v, cli.WithHint(fmt.Errorf("finding %s: %w", b.bin, err), "build the binaries beside this one (make build puts them in bin/), put them on PATH, or give --variant NAME=DIR")
		}
		*b.to = p
	}
	return v, nil
}

func runBenchPipeline(ctx context.Context, e *cli.Env, opts benchPipelineOptions) (err error) {
	variants, err := opts.validate()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	prog := newBenchProgress(e.Stderr)
	rep := benchPipelineReport{Machine: machineInfo(), Variants: variants, Accounts: opts.accounts, Rounds: opts.rounds, Medium: opts.medium,
		DurationPerLevel: opts.duration.String(), SignerDuration: opts.signerDuration.String(),
		PollInterval: opts.pollInterval.String(), ConfirmDelay: opts.confirmDelay.String()}

	shared := &pipeShared{prog: prog, keep: opts.keep}
	var worlds []*pipeWorld
	defer func() {
		prog.say("cleaning up")
		for _, w := range worlds {
			if cerr := w.close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("cleaning up %s: %w", w.v.Name, cerr))
			}
		}
		if cerr := shared.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up: %w", cerr))
		}
	}()
	if err := shared.setup(ctx, opts); err != nil {
		return interrupted(ctx, err)
	}
	for _, v := range variants {
		w := &pipeWorld{shared: shared, v: v, opts: opts}
		worlds = append(worlds, w)
		if err := w.setup(ctx); err != nil {
			return interrupted(ctx, err)
		}
		w.pause() // until its turn
	}
	rep.Machine.StateFS = fsType(filepath.Join(shared.dir, "x"))
	rep.MediumFS = fsType(filepath.Join(worlds[0].mediumDir, "x"))
	rep.OK = true
	for round := 1; round <= opts.rounds; round++ {
		// Alternate the order of the variants from one round to the next.
		order := slices.Clone(worlds)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, w := range order {
			w.resume()
			alone := 0.0
			if opts.signerDuration > 0 {
				if alone, err = w.signerAlone(ctx); err != nil {
					return interrupted(ctx, err)
				}
			}
			for _, s := range opts.submitters {
				lv, err := w.runLevel(ctx, s)
				if err != nil {
					return interrupted(ctx, err)
				}
				lv.Round, lv.SignerAlonePerSecond = round, alone
				if alone > 0 {
					lv.OfSignerAlone = lv.PerSecond / alone
				}
				if lv.Failed > 0 || lv.Withdrawals == 0 {
					rep.OK = false
				}
				rep.Levels = append(rep.Levels, lv)
			}
			w.pause()
		}
	}
	rep.Machine.LoadAvgEnd = loadAvg()
	rep.summarise(opts.submitters)
	if opts.json {
		if err := cli.PrintJSON(e.Stdout, rep); err != nil {
			return err
		}
	} else if err := printBenchPipeline(e.Stdout, &rep); err != nil {
		return err
	}
	if !rep.OK {
		return cli.WithHint(errors.New("some withdrawals were not confirmed"), "see first_error in the results and the processes' logs")
	}
	return nil
}

// pipeShared is what the variants share: the temporary directory, the
// SoftHSM token (master key and wallet) and the approver's key.
type pipeShared struct {
	prog     *benchProgress
	pg       *benchPG // the gateways' PostgreSQL server, started by the first variant on it
	keep     bool     // keep dir
	dir      string
	softhsm  *softhsmtool.Token
	label    string
	pinFile  string
	approver ed25519.PrivateKey
}

func (s *pipeShared) setup(ctx context.Context, opts benchPipelineOptions) error {
	dir, err := os.MkdirTemp(opts.dir, "nanokms-pipe-")
	if err != nil {
		return cli.WithHint(fmt.Errorf("making the temporary directory: %w", err), "choose another place with --dir")
	}
	s.dir = dir
	if sock := filepath.Join(dir, "variant-name-long", "gateway.sock"); len(sock) > benchSocketMax {
		return cli.WithHint(fmt.Errorf("the socket path %s is longer than %d bytes", sock, benchSocketMax), "use a shorter --dir, such as /tmp")
	}
	suffix, err := softhsmtool.RandomSecret(4)
	if err != nil {
		return err
	}
	s.label = "nanokms-pipe-" + suffix
	s.prog.say("creating SoftHSM token %s", s.label)
	if s.softhsm, err = softhsmtool.NewToken(ctx, "", s.label); err != nil {
		if errors.Is(err, softhsmtool.ErrNotInstalled) {
			return cli.WithHint(err, "install it (apt-get install softhsm2, or softhsm-test/setup.sh as root) and run again")
		}
		return err
	}
	s.pinFile = filepath.Join(dir, "pin")
	if err := os.WriteFile(s.pinFile, []byte(s.softhsm.PIN+"\n"), 0o600); err != nil {
		return err
	}
	pin, err := hsm.ReadPIN(s.pinFile, "")
	if err != nil {
		return err
	}
	tok, err := hsm.Open(ctx, hsm.Config{Module: s.softhsm.Module, TokenLabel: s.label, PIN: pin, PoolSize: 1})
	pin.Wipe()
	if err != nil {
		return cold.HintTokenErr(err)
	}
	err = tok.CreateMasterKey(ctx, 0)
	if err == nil {
		_, err = tok.CreateWallet(ctx, benchWallet)
	}
	if cerr := tok.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	_, s.approver, err = ed25519.GenerateKey(rand.Reader)
	return err
}

func (s *pipeShared) close() error {
	var errs []error
	clear(s.approver)
	if s.pg != nil {
		errs = append(errs, s.pg.close())
	}
	if s.softhsm != nil {
		errs = append(errs, s.softhsm.Close())
	}
	switch {
	case s.dir != "" && s.keep:
		s.prog.say("kept %s", s.dir)
	case s.dir != "":
		errs = append(errs, os.RemoveAll(s.dir))
	}
	return errors.Join(errs...)
}

// benchPipelineTimeout bounds each wait of the set-up (a process getting
// ready, the accounts opening).
const benchPipelineTimeout = 2 * time.Minute
