package dev

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/cmd/internal/cold"
	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtool"
)

type benchListingOptions struct {
	accounts   int
	listings   int
	dir        string
	coldBinary string
	json       bool
}

// coldBinaryName is the binary that runs the signer, and lists its
// accounts, in production.
const coldBinaryName = "nanokms-cold"

func newBenchListingCmd(e *cli.Env) *cobra.Command {
	opts := benchListingOptions{}
	cmd := &cobra.Command{
		Use:   "listing [--accounts N] [--listings K] [--json]",
		Short: "Benchmark `nanokms-cold signer accounts` on a signer tracking many accounts: time and the signer's memory",
		Long: `Builds a throw-away signer in a temporary directory, measures it, and deletes
everything again (also when interrupted):

  - a SoftHSM token with a master key, made as 'bench signer' makes it;
  - a state file holding N accounts, written straight into it before the
    signer starts (as 'bench signer --accounts' writes its filler accounts:
    random keys, each adopted with an open block as its head);
  - 'nanokms-cold signer --config …', the isolated host's binary, started
    as a process of its own, so that its memory is its own.

It then runs 'nanokms-cold signer accounts --json' (a process of its own
too) K times in a row, and times each run: start to exit, the pages, the
JSON and the output written to a file. Before the first and after each run
it reads the signer's resident memory (VmRSS) and its peak (VmHWM) from
/proc/PID/status, and it checks that every run printed N accounts.

The nanokms-cold it runs is --cold-binary, or else the one beside this
binary (make build puts both in bin/), or else the one on PATH.

Progress goes to standard error, results to standard output.`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBenchListing(cmd.Context(), e, opts) },
	}
	f := cmd.Flags()
	f.IntVar(&opts.accounts, "accounts", 100_000, "accounts the signer tracks")
	f.IntVar(&opts.listings, "listings", 5, "listings in a row")
	f.StringVar(&opts.dir, "dir", "", "where to make the temporary directory (default: the system's)")
	f.StringVar(&opts.coldBinary, "cold-binary", "", "the nanokms-cold binary to run the signer and the listings with (default: the one beside this binary, else on PATH)")
	f.BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// benchListingReport is the --json output.
type benchListingReport struct {
	Machine  benchMachine `json:"machine"`
	Accounts int          `json:"accounts"`
	// StateFileBytes is the size of the state file.
	StateFileBytes int64 `json:"state_file_bytes"`
	// SignerStartRSSKiB is the signer's VmRSS before the first listing.
	SignerStartRSSKiB int64             `json:"signer_start_rss_kib"`
	Listings          []benchListingRun `json:"listings"`
	MedianSeconds     float64           `json:"median_seconds"`
	SignerPeakRSSKiB  int64             `json:"signer_peak_rss_kib"` // VmHWM after the last listing
	Targets           []benchTarget     `json:"targets"`
	OK                bool              `json:"ok"` // every listing printed every account
}

// benchListingRun is one `nanokms-cold signer accounts --json`.
type benchListingRun struct {
	Seconds float64 `json:"seconds"`
	Printed int     `json:"accounts_printed"`
	RSSKiB  int64   `json:"signer_rss_kib"` // after the listing
	PeakKiB int64   `json:"signer_peak_rss_kib"`
	// AnonKiB and FileKiB split RSSKiB: the heap and stacks, and the state
	// file's pages mapped in (bbolt reads through a memory map).
	AnonKiB   int64  `json:"signer_rss_anon_kib"`
	FileKiB   int64  `json:"signer_rss_file_kib"`
	OutBytes  int64  `json:"output_bytes"`
	ExitError string `json:"error,omitempty"`
}

// The targets for a listing of 100,000 accounts.
const (
	benchListTargetSeconds = 2.0
	benchListTargetRSSKiB  = 100 * 1024
)

func runBenchListing(ctx context.Context, e *cli.Env, opts benchListingOptions) (err error) {
	switch {
	case opts.accounts < 0 || opts.accounts > benchMaxAccounts:
		return cli.UsageErr("--accounts must be from 0 to %d", benchMaxAccounts)
	case opts.listings < 1:
		return cli.UsageErr("--listings must be at least 1")
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	coldBin, err := findColdBinary(opts.coldBinary)
	if err != nil {
		return err
	}
	prog := newBenchProgress(e.Stderr)
	rep := benchListingReport{Machine: machineInfo(), Accounts: opts.accounts}

	w := &benchListWorld{prog: prog, cold: coldBin}
	defer func() {
		prog.say("cleaning up")
		if cerr := w.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up: %w", cerr))
		}
	}()
	if err := w.setup(ctx, opts); err != nil {
		return interrupted(ctx, err)
	}
	if fi, err := os.Stat(w.stateFile); err == nil {
		rep.StateFileBytes = fi.Size()
	}
	if err := w.startSigner(ctx, opts.accounts); err != nil {
		return interrupted(ctx, err)
	}
	mem, err := w.signerMemory()
	if err != nil {
		return err
	}
	rep.SignerStartRSSKiB = mem.rss
	rep.OK = true
	var secs []float64
	for i := range opts.listings {
		run := w.list(ctx, filepath.Join(w.dir, fmt.Sprintf("listing-%d.json", i+1)))
		if ctx.Err() != nil {
			return interrupted(ctx, ctx.Err())
		}
		mem, err := w.signerMemory()
		if err != nil {
			return err
		}
		run.RSSKiB, run.PeakKiB, run.AnonKiB, run.FileKiB = mem.rss, mem.hwm, mem.anon, mem.file
		if run.ExitError != "" || run.Printed != opts.accounts {
			rep.OK = false
		}
		prog.say("listing %d: %d accounts in %.2f s; the signer's RSS %d KiB (anonymous %d, file %d), peak %d KiB",
			i+1, run.Printed, run.Seconds, run.RSSKiB, run.AnonKiB, run.FileKiB, run.PeakKiB)
		rep.Listings = append(rep.Listings, run)
		secs = append(secs, run.Seconds)
		rep.SignerPeakRSSKiB = run.PeakKiB
	}
	slices.Sort(secs)
	rep.MedianSeconds = secs[len(secs)/2]
	if len(secs)%2 == 0 {
		rep.MedianSeconds = (secs[len(secs)/2-1] + secs[len(secs)/2]) / 2
	}
	rep.Machine.LoadAvgEnd = loadAvg()
	rep.Targets = []benchTarget{
		{Name: "median_listing_seconds", Value: rep.MedianSeconds, Met: rep.MedianSeconds < benchListTargetSeconds},
		{Name: "signer_peak_rss_kib", Value: float64(rep.SignerPeakRSSKiB), Met: rep.SignerPeakRSSKiB < benchListTargetRSSKiB},
	}
	if opts.json {
		if err := cli.PrintJSON(e.Stdout, rep); err != nil {
			return err
		}
	} else if err := printBenchListing(e.Stdout, &rep); err != nil {
		return err
	}
	if !rep.OK {
		return cli.WithHint(errors.New("a listing failed or did not print every account"), "see the listings' errors in the results")
	}
	return nil
}

// findColdBinary returns the nanokms-cold to run: flag if given, else the
// one in this binary's directory, else the one on PATH.
func findColdBinary(flag string) (string, error) {
	if flag != "" {
		if _, err := exec.LookPath(flag); err != nil {
			return "", cli.WithHint(fmt.Errorf("--cold-binary: %w", err), "give the path of a built nanokms-cold (make build puts it in bin/)")
		}
		return flag, nil
	}
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), coldBinaryName)
		if _, err := exec.LookPath(beside); err == nil {
			return beside, nil
		}
	}
	p, err := exec.LookPath(coldBinaryName)
	if err != nil {
		return "", cli.WithHint(fmt.Errorf("finding %s to start the signer: %w", coldBinaryName, err),
			"build it beside this binary (make build puts both in bin/), put it on PATH, or give --cold-binary")
	}
	return p, nil
}

// benchListWorld is the throw-away signer process and its files.
type benchListWorld struct {
	prog      *benchProgress
	cold      string // the nanokms-cold binary
	dir       string
	stateFile string
	config    string
	socket    string
	softhsm   *softhsmtool.Token
	signer    *exec.Cmd
	exited    chan error
	signerLog *os.File
}

func (w *benchListWorld) setup(ctx context.Context, opts benchListingOptions) error {
	dir, err := os.MkdirTemp(opts.dir, "nanokms-bench-")
	if err != nil {
		return cli.WithHint(fmt.Errorf("making the temporary directory: %w", err), "choose another place with --dir")
	}
	w.dir = dir
	w.socket = filepath.Join(dir, "signer.sock")
	if len(w.socket) > benchSocketMax {
		return cli.WithHint(fmt.Errorf("the socket path %s is longer than %d bytes", w.socket, benchSocketMax), "use a shorter --dir, such as /tmp")
	}
	w.stateFile = filepath.Join(dir, "signer.db")
	suffix, err := softhsmtool.RandomSecret(4)
	if err != nil {
		return err
	}
	label := "nanokms-bench-" + suffix
	w.prog.say("creating SoftHSM token %s", label)
	if w.softhsm, err = softhsmtool.NewToken(ctx, "", label); err != nil {
		if errors.Is(err, softhsmtool.ErrNotInstalled) {
			return cli.WithHint(err, "install it (apt-get install softhsm2, or softhsm-test/setup.sh as root) and run again")
		}
		return err
	}
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte(w.softhsm.PIN+"\n"), 0o600); err != nil {
		return err
	}
	pin, err := hsm.ReadPIN(pinFile, "")
	if err != nil {
		return err
	}
	tok, err := hsm.Open(ctx, hsm.Config{Module: w.softhsm.Module, TokenLabel: label, PIN: pin, PoolSize: 1})
	pin.Wipe()
	if err != nil {
		return cold.HintTokenErr(err)
	}
	err = tok.CreateMasterKey(ctx, 0)
	if cerr := tok.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}

	w.config = filepath.Join(dir, "signer.toml")
	cfg := fmt.Sprintf("[signer]\nstate = %q\nlisten = %q\nshutdown_grace = \"5s\"\n\n[token]\nmodule = %q\nlabel = %q\npin_file = %q\npool_size = 1\n",
		w.stateFile, "unix://"+w.socket, w.softhsm.Module, label, pinFile)
	if err := os.WriteFile(w.config, []byte(cfg), 0o600); err != nil {
		return err
	}

	store, err := signer.OpenStore(w.stateFile)
	if err != nil {
		return err
	}
	bar := w.prog.bar(opts.accounts, fmt.Sprintf("writing %d accounts into the state file", opts.accounts))
	err = FillStore(ctx, store, opts.accounts, nano.PublicKey{1}, false, bar.add)
	bar.finish(err)
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	return err
}

// startSigner starts `nanokms-cold signer --config …` and waits until it
// lists accounts (its first page, of want accounts at most).
func (w *benchListWorld) startSigner(ctx context.Context, want int) error {
	var err error
	if w.signerLog, err = os.Create(filepath.Join(w.dir, "signer.log")); err != nil {
		return err
	}
	w.signer = w.command(nil, "signer", "--config", w.config)
	w.signer.Stdout, w.signer.Stderr = w.signerLog, w.signerLog
	w.prog.say("starting the signer: %s signer --config %s", w.cold, w.config)
	if err := w.signer.Start(); err != nil {
		return fmt.Errorf("starting the signer: %w", err)
	}
	w.exited = make(chan error, 1)
	go func() { w.exited <- w.signer.Wait() }()

	conn, err := grpc.NewClient("unix://"+w.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := pb.NewSignerClient(conn)
	// The readiness check: the first page, asked for until the signer
	// answers, with backoff, as long as the process runs.
	deadline := time.Now().Add(time.Minute)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := client.ListAccounts(cctx, &pb.ListAccountsRequest{PageSize: 1}, grpc.WaitForReady(true))
		cancel()
		if err == nil {
			if want > 0 && len(resp.GetAccounts()) != 1 {
				return fmt.Errorf("the signer lists %d accounts on its first page, want 1", len(resp.GetAccounts()))
			}
			return nil
		}
		select {
		case err := <-w.exited:
			w.exited <- err
			return cli.WithHint(fmt.Errorf("the signer exited: %v", err), "its log is "+w.signerLog.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if time.Now().After(deadline) {
			return cli.WithHint(fmt.Errorf("the signer did not answer within a minute: %w", cold.RPCErr(err)), "its log is "+w.signerLog.Name())
		}
	}
}

// command runs nanokms-cold with args; ctx, when not nil, kills it when
// done.
func (w *benchListWorld) command(ctx context.Context, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if ctx != nil {
		cmd = exec.CommandContext(ctx, w.cold, args...)
	} else {
		cmd = exec.Command(w.cold, args...)
	}
	cmd.Args[0] = coldBinaryName // as a test binary doubling as nanokms-cold needs it
	return cmd
}

// list runs one `nanokms-cold signer accounts --json` into out and counts
// what it printed.
func (w *benchListWorld) list(ctx context.Context, out string) benchListingRun {
	var run benchListingRun
	f, err := os.Create(out)
	if err != nil {
		run.ExitError = err.Error()
		return run
	}
	defer os.Remove(out)
	defer f.Close()
	cmd := w.command(ctx, "signer", "accounts", "--connect", "unix://"+w.socket, "--json")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = f, &stderr
	t0 := time.Now()
	err = cmd.Run()
	run.Seconds = time.Since(t0).Seconds()
	if err != nil {
		run.ExitError = strings.TrimSpace(fmt.Sprintf("%v: %s", err, stderr.String()))
		return run
	}
	if fi, err := f.Stat(); err == nil {
		run.OutBytes = fi.Size()
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		run.ExitError = err.Error()
		return run
	}
	var rows []cold.AccountStateJSON
	if err := json.NewDecoder(bufio.NewReader(f)).Decode(&rows); err != nil {
		run.ExitError = "the output is not one JSON array: " + err.Error()
		return run
	}
	run.Printed = len(rows)
	return run
}

// procMemory is a process's memory from /proc/PID/status, in KiB.
type procMemory struct{ rss, hwm, anon, file int64 }

// signerMemory returns the signer process's VmRSS, VmHWM, RssAnon and
// RssFile.
func (w *benchListWorld) signerMemory() (m procMemory, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.signer.Process.Pid))
	if err != nil {
		return m, cli.WithHint(fmt.Errorf("reading the signer's memory: %w", err), "this benchmark reads /proc/PID/status (Linux)")
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, perr := strconv.ParseInt(f[0], 10, 64)
		if perr != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.rss = n
		case "VmHWM":
			m.hwm = n
		case "RssAnon":
			m.anon = n
		case "RssFile":
			m.file = n
		}
	}
	if m.rss == 0 || m.hwm == 0 {
		return m, errors.New("the signer's /proc status has no VmRSS or VmHWM")
	}
	return m, nil
}

// close stops the signer and deletes everything setup made.
func (w *benchListWorld) close() error {
	var errs []error
	if w.signer != nil && w.signer.Process != nil {
		_ = w.signer.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.exited:
		case <-time.After(30 * time.Second):
			_ = w.signer.Process.Kill()
			<-w.exited
			errs = append(errs, errors.New("the signer did not stop within 30 s of SIGTERM: killed"))
		}
	}
	if w.signerLog != nil {
		errs = append(errs, w.signerLog.Close())
	}
	if w.softhsm != nil {
		errs = append(errs, w.softhsm.Close())
	}
	if w.dir != "" {
		errs = append(errs, os.RemoveAll(w.dir))
	}
	return errors.Join(errs...)
}

func printBenchListing(out io.Writer, r *benchListingReport) error {
	m := r.Machine
	fmt.Fprintf(out, "nanokms-dev bench listing: `nanokms-cold signer accounts --json` against a signer process tracking %d accounts (state file %.1f MB)\n", r.Accounts, float64(r.StateFileBytes)/1e6)
	fmt.Fprintf(out, "machine:  %d CPUs (GOMAXPROCS %d), %s, %s %s, %s\n", m.CPUs, m.GOMAXPROCS, m.CPUModel, m.GoVersion, m.Platform, m.Date)
	fmt.Fprintf(out, "load:     %s at the start, %s at the end (1, 5, 15 min)\n", m.LoadAvgStart, m.LoadAvgEnd)
	fmt.Fprintf(out, "the signer's RSS before the first listing: %d KiB\n\n", r.SignerStartRSSKiB)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "LISTING\tSECONDS\tACCOUNTS\tOUTPUT MB\tSIGNER RSS KiB\tANONYMOUS\tFILE\tSIGNER PEAK KiB\t")
	for i, l := range r.Listings {
		fmt.Fprintf(tw, "%d\t%.2f\t%d\t%.1f\t%d\t%d\t%d\t%d\t\n", i+1, l.Seconds, l.Printed, float64(l.OutBytes)/1e6, l.RSSKiB, l.AnonKiB, l.FileKiB, l.PeakKiB)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i, l := range r.Listings {
		if l.ExitError != "" {
			fmt.Fprintf(out, "listing %d: %s\n", i+1, l.ExitError)
		}
	}
	fmt.Fprintf(out, "\nmedian %.2f s; the signer's peak RSS (VmHWM) %d KiB\n", r.MedianSeconds, r.SignerPeakRSSKiB)
	fmt.Fprintln(out, "targets (issue, for 100,000 accounts):")
	for _, t := range r.Targets {
		verdict := "missed"
		if t.Met {
			verdict = "met"
		}
		switch t.Name {
		case "median_listing_seconds":
			fmt.Fprintf(out, "  a listing in under %.0f s: median %.2f s, %s\n", benchListTargetSeconds, t.Value, verdict)
		case "signer_peak_rss_kib":
			fmt.Fprintf(out, "  the signer's RSS under %d MiB: peak %.0f KiB, %s\n", benchListTargetRSSKiB/1024, t.Value, verdict)
		}
	}
	return nil
}
