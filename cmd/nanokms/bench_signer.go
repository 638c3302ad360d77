package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
	"github.com/nanokms/nanokms/signer/policy"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtool"
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
)

type benchSignerOptions struct {
	concurrency []int
	accounts    []int
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

func newBenchSignerCmd(e *env) *cobra.Command {
	opts := benchSignerOptions{}
	cmd := &cobra.Command{
		Use:   "signer [--concurrency 1,8,64] [--requests N | --duration D] [--json]",
		Short: "Benchmark the signer end to end: gRPC on a Unix socket, SoftHSM, bbolt with fsync",
		Long: `Builds a throw-away signer in a temporary directory, measures it, and deletes
everything again (also when interrupted):

  - a SoftHSM token with its own SOFTHSM2_CONF, made with softhsm2-util
    (softhsm2 is installed with apt-get when missing, if running as root),
    holding a master key and one wallet;
  - a bbolt state file; every decision is committed with fsync;
  - a policy with one approver ("service") and one group: receives are
    automatic, a send needs the service's approval, no limits;
  - the signer served in this process on a Unix socket, and gRPC clients
    dialling unix:// to it.

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
		Args: noArgsQuiet,
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
	f.IntSliceVar(&opts.accounts, "accounts", []int{0}, "accounts a signer tracks in all: the measured ones and filler accounts written into its state file first (0: only the measured ones); several values make one signer each, measured in turn")
	f.IntVar(&opts.rounds, "rounds", 1, "times to measure every level on every signer, interleaved")
	f.BoolVar(&opts.history, "filler-history", false, "open each filler account with a recorded receive (request, signed block, audit), not only adopt it")
	f.DurationVar(&opts.duration, "duration", 0, "run each level this long instead of a number of requests")
	f.IntVar(&opts.cryptoIters, "crypto-iterations", 2000, "iterations of the pure CPU measurement")
	f.IntVar(&opts.poolSize, "pool-size", policy.DefaultPoolSize, "token sessions (token.pool_size)")
	f.StringVar(&opts.dir, "dir", "", "where to make the temporary directory (default: the system's)")
	f.StringVar(&opts.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured levels to this file")
	f.StringVar(&opts.trace, "trace", "", "write a Go execution trace of the measured levels to this file (go tool trace)")
	f.BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// benchSignerReport is the --json output.
type benchSignerReport struct {
	Machine  benchMachine `json:"machine"`
	Accounts int          `json:"accounts"`
	// TrackedAccounts is, for each signer of --accounts, Accounts plus
	// its filler accounts.
	TrackedAccounts []int `json:"tracked_accounts"`
	Rounds          int   `json:"rounds"`
	// FillerHistory: the filler accounts were opened (--filler-history).
	FillerHistory bool `json:"filler_history"`
	// Comparisons set each signer after the first against the first.
	Comparisons      []benchComparison `json:"comparisons,omitempty"`
	TokenPoolSize    int               `json:"token_pool_size"`
	RequestsPerLevel int               `json:"requests_per_level,omitempty"`
	DurationPerLevel string            `json:"duration_per_level,omitempty"`
	Levels           []benchLevel      `json:"levels"`
	CPU              benchCPU          `json:"cpu"`
	Targets          []benchTarget     `json:"targets,omitempty"`
	// OK: every request was signed and every account's frontier checked.
	OK bool `json:"ok"`
}

type benchMachine struct {
	CPUs         int    `json:"cpus"`
	GOMAXPROCS   int    `json:"gomaxprocs"`
	CPUModel     string `json:"cpu_model"`
	GoVersion    string `json:"go_version"`
	Platform     string `json:"platform"`
	LoadAvgStart string `json:"loadavg_start"` // /proc/loadavg: 1, 5 and 15 minutes
	LoadAvgEnd   string `json:"loadavg_end"`
	StateFS      string `json:"state_filesystem"`
	Date         string `json:"date"`
}

type benchLevel struct {
	Concurrency int `json:"concurrency"`
	// TrackedAccounts is the signer's (--accounts); Round counts from 1.
	TrackedAccounts int     `json:"tracked_accounts"`
	Round           int     `json:"round"`
	Accounts        int     `json:"accounts"`
	Requests        int     `json:"requests"` // sent
	Signed          int     `json:"signed"`
	Failed          int     `json:"failed"`
	Skipped         int     `json:"skipped"` // not sent: their account had failed
	FirstError      string  `json:"first_error,omitempty"`
	Seconds         float64 `json:"seconds"`
	PerSecond       float64 `json:"signed_per_second"`
	MeanMs          float64 `json:"mean_ms"`
	P50Ms           float64 `json:"p50_ms"`
	P90Ms           float64 `json:"p90_ms"`
	P99Ms           float64 `json:"p99_ms"`
	MaxMs           float64 `json:"max_ms"`
	// RequestBytes is the mean proto.Size of a SignRequest.
	RequestBytes float64 `json:"request_bytes"`
	// CPUPerRequestUs is the process's CPU time (user and system,
	// getrusage; the signer and its clients together) per signed
	// request, in µs; 0 where unknown. Unlike throughput it hardly depends
	// on what else the machine runs: cores × 1e6 / CPUPerRequestUs bounds
	// the throughput of an otherwise idle machine.
	CPUPerRequestUs float64 `json:"cpu_per_request_us"`
	// CPUUse is that CPU time over the level's wall time: how many cores
	// the process had on average.
	CPUUse float64 `json:"cpu_use"`
	// PagesPerRequest is the state file's pages written per signed
	// request (signer.Store.PagesWritten): the disk's share of a
	// decision, which the machine's load does not change.
	PagesPerRequest float64 `json:"pages_per_request"`
	// Verified: after the level, every account's frontier on the signer
	// is the last block the client received, and its signature verifies.
	Verified bool `json:"verified"`
}

// benchCPU is the pure CPU cost of one request, on one core, in µs.
type benchCPU struct {
	Iterations int `json:"iterations"`
	// Clock is "process_cpu" (CPU time, getrusage) or "wall".
	Clock            string  `json:"clock"`
	HashesUs         float64 `json:"hashes_us"` // intent digest, head hash, new block hash
	HeadVerifyUs     float64 `json:"head_verify_us"`
	ApprovalVerifyUs float64 `json:"approval_verify_us"`
	SignUs           float64 `json:"sign_us"` // derive the account key, expand, sign
	// TotalUs is the four above, measured together in one loop.
	TotalUs         float64 `json:"total_us"`
	CeilingPerCore  float64 `json:"ceiling_per_core"` // 1e6 / TotalUs requests/s
	CeilingAllCores float64 `json:"ceiling_all_cores"`
	// TokenSignUs is one signature through the token: SoftHSM unseals the
	// wallet (C_DecryptInit, C_Decrypt), then derive and sign.
	TokenSignUs float64 `json:"token_sign_us"`
}

type benchTarget struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Met   bool    `json:"met"`
}

func runBenchSigner(ctx context.Context, e *env, opts benchSignerOptions) (err error) {
	if len(opts.concurrency) == 0 {
		return usageErr("--concurrency: give at least one level")
	}
	maxC := 0
	for _, c := range opts.concurrency {
		if c < 1 || c > benchMaxLevel {
			return usageErr("--concurrency: %d is not from 1 to %d", c, benchMaxLevel)
		}
		maxC = max(maxC, c)
	}
	switch {
	case opts.requests < 0 || opts.duration < 0:
		return usageErr("--requests and --duration must not be negative")
	case opts.requests > 0 && opts.duration > 0:
		return usageErr("give --requests or --duration, not both")
	case opts.requests == 0 && opts.duration == 0:
		return usageErr("--requests must be at least 1 (or give --duration)")
	case opts.cryptoIters < 1:
		return usageErr("--crypto-iterations must be at least 1")
	case opts.poolSize < 1 || opts.poolSize > policy.MaxPoolSize:
		return usageErr("--pool-size must be from 1 to %d", policy.MaxPoolSize)
	case len(opts.accounts) == 0:
		return usageErr("--accounts: give at least one number")
	case opts.rounds < 1:
		return usageErr("--rounds must be at least 1")
	}
	for _, n := range opts.accounts {
		if n < 0 || n > benchMaxAccounts {
			return usageErr("--accounts must be from 0 to %d", benchMaxAccounts)
		}
	}

	// The signer in this process runs as `nanokms signer` does.
	defer tuneSignerGC()()

	// Ctrl-C or SIGTERM stops the run and cleans up, however run was called.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var profile *os.File
	if opts.cpuProfile != "" {
		if profile, err = os.Create(opts.cpuProfile); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer profile.Close()
	}

	var traceFile *os.File
	if opts.trace != "" {
		if traceFile, err = os.Create(opts.trace); err != nil {
			return fmt.Errorf("--trace: %w", err)
		}
		defer traceFile.Close()
	}

	prog := newBenchProgress(e.stderr)
	rep := benchSignerReport{
		Machine:       machineInfo(),
		Accounts:      max(maxC, benchMinAccounts),
		TokenPoolSize: opts.poolSize,
	}
	rep.Rounds, rep.FillerHistory = opts.rounds, opts.history
	for _, n := range opts.accounts {
		rep.TrackedAccounts = append(rep.TrackedAccounts, max(rep.Accounts, n))
	}
	if opts.requests > 0 {
		rep.RequestsPerLevel = opts.requests
	} else {
		rep.DurationPerLevel = opts.duration.String()
	}

	w := &benchWorld{prog: prog}
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
	rep.Machine.StateFS = fsType(w.stateFile)
	for i, tracked := range rep.TrackedAccounts {
		if i > 0 {
			s, err := w.newSibling(i)
			if s != nil {
				worlds = append(worlds, s)
			}
			if err != nil {
				return interrupted(ctx, err)
			}
		}
		wd := worlds[i]
		wd.tracked = tracked
		if err := wd.fillAccounts(ctx, tracked-rep.Accounts, opts.history); err != nil {
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

	if profile != nil {
		if err := pprof.StartCPUProfile(profile); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if traceFile != nil {
		if err := trace.Start(traceFile); err != nil {
			return fmt.Errorf("--trace: %w", err)
		}
		defer trace.Stop()
	}
	if err := runLevels(ctx, worlds, opts, &rep); err != nil {
		return interrupted(ctx, err)
	}
	pprof.StopCPUProfile()
	trace.Stop()
	rep.Machine.LoadAvgEnd = loadAvg()

	rep.OK = true
	for _, lv := range rep.Levels {
		if lv.Failed > 0 || lv.Skipped > 0 || !lv.Verified {
			rep.OK = false
		}
		switch {
		case lv.TrackedAccounts != rep.TrackedAccounts[0]:
			// The targets are the first signer's.
		case lv.Concurrency == 64:
			rep.Targets = append(rep.Targets, benchTarget{Name: "signed_per_second_at_64", Value: lv.PerSecond, Met: lv.PerSecond >= benchTargetRate})
		case lv.Concurrency == 8:
			rep.Targets = append(rep.Targets, benchTarget{Name: "p99_ms_at_8", Value: lv.P99Ms, Met: lv.P99Ms <= ms(benchTargetP99)})
		}
	}
	rep.Comparisons = compareWorlds(rep.Levels, rep.TrackedAccounts, opts.concurrency)
	for _, cmp := range rep.Comparisons {
		if cmp.Concurrency == 64 {
			rep.Targets = append(rep.Targets, benchTarget{Name: fmt.Sprintf("throughput_ratio_at_64_with_%d_accounts", cmp.TrackedAccounts),
				Value: cmp.RatioMedian, Met: cmp.RatioMedian >= benchTargetScaleRatio})
		}
	}
	if opts.json {
		if err := printJSON(e.stdout, rep); err != nil {
			return err
		}
	} else if err := printBenchSigner(e.stdout, &rep); err != nil {
		return err
	}
	if !rep.OK {
		return withHint(errors.New("some requests were not signed, or a frontier did not check"), "see first_error in the results")
	}
	return nil
}

// interrupted turns an error caused by cancellation into a plain message.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted (%v)", ctx.Err())
	}
	return err
}

// benchWorld is the throw-away signer and its clients.
type benchWorld struct {
	prog *benchProgress

	dir       string // the temporary directory
	stateFile string
	softhsm   *softhsmtool.Token
	tok       *hsm.Token
	store     *signer.Store
	stopServe context.CancelFunc
	served    chan error
	conn      *grpc.ClientConn
	client    pb.SignerClient

	// For a second world on the same token (sibling): the token's
	// module, label, PIN file and pool size, and whether this world owns
	// the shared parts (the directory, the token, the approver's key).
	module, label, pinFile string
	poolSize               int
	sibling                bool
	// tracked is how many accounts the signer tracks (--accounts).
	tracked int

	approver   ed25519.PrivateKey
	funder     benchExt
	rep, dest  nano.PublicKey
	sendAmount nano.Amount
	accounts   []*benchAccount
}

// benchAccount is a custody account and what the client knows of it. A
// level gives each account to one worker, so it needs no lock.
type benchAccount struct {
	index  uint32
	pub    nano.PublicKey
	head   nano.StateBlock
	hash   nano.Hash
	headPB *pb.Block
	failed bool // a request failed: its head is uncertain, it is not used again
}

// benchExt is an account outside custody whose key the benchmark holds.
type benchExt struct {
	key  *nano.SigningKey
	pub  nano.PublicKey
	last nano.StateBlock
}

func (x *benchExt) add(balance nano.Amount, link nano.Hash, rep nano.PublicKey) (block, previous nano.StateBlock) {
	b := nano.StateBlock{Account: x.pub, Representative: rep, Balance: balance, Link: link}
	previous = x.last
	if !previous.Account.IsZero() {
		b.Previous = previous.Hash()
	}
	h := b.Hash()
	b.Signature = x.key.Sign(h[:])
	x.last = b
	return b, previous
}

func randomKey() (*nano.SigningKey, error) {
	var k nano.PrivateKey
	if _, err := rand.Read(k[:]); err != nil {
		return nil, err
	}
	defer k.Wipe()
	return nano.NewSigningKey(&k), nil
}

func (w *benchWorld) setup(ctx context.Context, opts benchSignerOptions) error {
	dir, err := os.MkdirTemp(opts.dir, "nanokms-bench-")
	if err != nil {
		return withHint(fmt.Errorf("making the temporary directory: %w", err), "choose another place with --dir")
	}
	w.dir = dir
	sock := filepath.Join(dir, "signer.sock")
	if len(sock) > benchSocketMax {
		return withHint(fmt.Errorf("the socket path %s is longer than %d bytes", sock, benchSocketMax), "use a shorter --dir, such as /tmp")
	}
	w.stateFile = filepath.Join(dir, "signer.db")

	suffix, err := softhsmtool.RandomSecret(4)
	if err != nil {
		return err
	}
	label := "nanokms-bench-" + suffix
	w.prog.say("creating SoftHSM token %s", label)
	w.softhsm, err = softhsmtool.NewToken(ctx, "", label)
	if err == nil {
		w.module = w.softhsm.Module
	}
	if err != nil {
		if errors.Is(err, softhsmtool.ErrNotInstalled) {
			return withHint(err, "install it (apt-get install softhsm2, or softhsm-test/setup.sh as root) and run again")
		}
		return err
	}
	if w.softhsm.InProcess {
		w.prog.say("SoftHSM was already loaded in this process: the token was made in-process")
	}
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte(w.softhsm.PIN+"\n"), 0o600); err != nil {
		return err
	}
	pin, err := hsm.ReadPIN(pinFile, "")
	if err != nil {
		return err
	}
	defer pin.Wipe()
	w.tok, err = hsm.Open(ctx, hsm.Config{Module: w.softhsm.Module, TokenLabel: label, PIN: pin, PoolSize: opts.poolSize})
	if err != nil {
		return hintTokenErr(err)
	}
	if err := w.tok.CreateMasterKey(ctx, 0); err != nil {
		return err
	}
	if _, err := w.tok.CreateWallet(ctx, benchWallet); err != nil {
		return err
	}

	_, w.approver, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	fk, err := randomKey()
	if err != nil {
		return err
	}
	w.funder = benchExt{key: fk, pub: fk.Public()}
	w.rep = w.funder.pub
	dk, err := randomKey()
	if err != nil {
		return err
	}
	w.dest = dk.Public()
	dk.Wipe()
	if w.sendAmount, err = nano.ParseXNO(benchSend); err != nil {
		return err
	}
	w.pinFile, w.label, w.poolSize = pinFile, label, opts.poolSize
	return w.serve(w.stateFile, sock)
}

// serve starts this world's signer: its policy, its state file, its
// server on sock and a client.
func (w *benchWorld) serve(stateFile, sock string) error {
	w.stateFile = stateFile
	cfgText := fmt.Sprintf(`[signer]
state = %q
listen = %q
shutdown_grace = "5s"

[token]
module = %q
label = %q
pin_file = %q
pool_size = %d

[[approvers]]
name = "service"
public_key = "%x"

[[groups]]
name = "bench"
wallets = [%q]
receive_automatic = true
[[groups.tiers]]
quorum = 1
approvers = ["service"]
`, w.stateFile, "unix://"+sock, w.module, w.label, w.pinFile, w.poolSize,
		[]byte(w.approver.Public().(ed25519.PublicKey)), benchWallet)
	cfg, err := policy.Parse([]byte(cfgText))
	if err != nil {
		return fmt.Errorf("the benchmark's policy: %w", err)
	}
	if w.store, err = signer.OpenStore(cfg.Signer.State); err != nil {
		return err
	}
	s := signer.New(w.store, w.tok, cfg, signer.Options{MaxIntentTTL: cfg.Signer.MaxIntentTTL})
	sopts := signer.ServeOptions{Listen: cfg.Signer.Listen.String(), Grace: cfg.Signer.ShutdownGrace}
	l, err := signer.Listen(sopts)
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(context.Background())
	w.stopServe, w.served = stop, make(chan error, 1)
	go func() { w.served <- signer.Serve(sctx, l, signer.NewServer(s), sopts) }()
	w.conn, err = grpc.NewClient(sopts.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	w.client = pb.NewSignerClient(w.conn)
	w.prog.say("signer serving on %s, state in %s", sopts.Listen, w.stateFile)
	return nil
}

// close stops and deletes everything setup made, in reverse order.
func (w *benchWorld) close() error {
	var errs []error
	if w.conn != nil {
		errs = append(errs, w.conn.Close())
	}
	if w.stopServe != nil {
		w.stopServe()
		errs = append(errs, <-w.served)
	}
	if w.store != nil {
		errs = append(errs, w.store.Close())
	}
	if w.funder.key != nil {
		w.funder.key.Wipe()
	}
	if w.sibling {
		return errors.Join(errs...)
	}
	if w.tok != nil {
		errs = append(errs, w.tok.Close())
	}
	if w.softhsm != nil {
		errs = append(errs, w.softhsm.Close())
	}
	clear(w.approver)
	if w.dir != "" {
		errs = append(errs, os.RemoveAll(w.dir))
	}
	return errors.Join(errs...)
}

// requestID returns a fresh random request id, as a client would make.
func requestID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// openAccounts adopts n accounts of the wallet, funds each from the funder
// and opens it with a receive.
func (w *benchWorld) openAccounts(ctx context.Context, n int) error {
	bar := w.prog.bar(3*n, fmt.Sprintf("adopting, funding and opening %d accounts", n))
	err := w.adoptFundOpen(ctx, n, bar)
	bar.finish(err)
	return err
}

func (w *benchWorld) adoptFundOpen(ctx context.Context, n int, bar *benchBar) error {
	for i := range n {
		st, err := w.client.AdoptAccount(ctx, &pb.AdoptAccountRequest{Wallet: benchWallet, Index: uint32(i)})
		if err != nil {
			return fmt.Errorf("adopting account %d: %w", i, rpcFailure(err))
		}
		a := &benchAccount{index: uint32(i)}
		if len(st.GetAccount()) != nano.PublicKeySize {
			return fmt.Errorf("adopting account %d: the signer returned a %d-byte key", i, len(st.GetAccount()))
		}
		copy(a.pub[:], st.GetAccount())
		w.accounts = append(w.accounts, a)
		bar.add(1)
	}

	fund, err := nano.ParseAmountUnit(benchFund)
	if err != nil {
		return err
	}
	bal, err := nano.ParseXNO(benchFunderStart)
	if err != nil {
		return err
	}
	var src nano.Hash
	if _, err := rand.Read(src[:]); err != nil {
		return err
	}
	w.funder.add(bal, src, w.rep) // the funder's open block
	type opening struct {
		a          *benchAccount
		send, prev nano.StateBlock
	}
	todo := make([]opening, 0, n)
	for _, a := range w.accounts {
		if bal, err = bal.Sub(fund); err != nil {
			return err
		}
		send, prev := w.funder.add(bal, nano.Hash(a.pub), w.rep)
		todo = append(todo, opening{a, send, prev})
		bar.add(1)
	}

	expires := time.Now().Add(benchExpiry).Unix()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range min(benchSetupPar, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(todo) || ctx.Err() != nil {
					return
				}
				o := todo[i]
				id, err := requestID()
				if err == nil {
					err = w.open(ctx, o.a, fund, o.send, o.prev, id, expires)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("opening account %d: %w", o.a.index, err))
					mu.Unlock()
					return
				}
				bar.add(1)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

func (w *benchWorld) open(ctx context.Context, a *benchAccount, amount nano.Amount, send, prev nano.StateBlock, id string, expires int64) error {
	sh := send.Hash()
	in := &pb.Intent{RequestId: id, Kind: pb.IntentKind_INTENT_KIND_RECEIVE, Account: a.pub[:],
		AmountRaw: amount.String(), SourceHash: sh[:], Representative: w.rep[:], ExpiresAtUnix: expires}
	resp, err := w.client.Sign(ctx, &pb.SignRequest{Intent: in, Source: pb.BlockFromNano(&send), SourcePrevious: pb.BlockFromNano(&prev)})
	if err != nil {
		return rpcFailure(err)
	}
	if resp.GetSubtype() != "open" {
		return fmt.Errorf("the signer made a %q block, not an open", resp.GetSubtype())
	}
	b, err := resp.GetBlock().ToNano("block")
	if err != nil {
		return err
	}
	h := b.Hash()
	if !nano.Verify(a.pub, h[:], b.Signature) {
		return errors.New("the open block's signature does not verify")
	}
	a.head, a.hash, a.headPB = b, h, resp.GetBlock()
	return nil
}

// rpcFailure describes a failed call, with the refusal reason if any.
func rpcFailure(err error) error {
	st := status.Convert(err)
	if r, ok := signer.RefusalFromStatus(st); ok {
		return fmt.Errorf("refused: %s: %s", signer.ReasonName(r.Reason), r.Detail)
	}
	return fmt.Errorf("%s: %s", st.Code(), st.Message())
}

// benchItem is one prepared send: its intent and the service's approval.
type benchItem struct {
	a   *benchAccount
	in  *pb.Intent
	ap  *pb.Approval
	err error
}

func (w *benchWorld) newItem(a *benchAccount, amountRaw string, expires int64) benchItem {
	id, err := requestID()
	if err != nil {
		return benchItem{err: err}
	}
	in := &pb.Intent{RequestId: id, Kind: pb.IntentKind_INTENT_KIND_SEND, Account: a.pub[:],
		AmountRaw: amountRaw, Destination: w.dest[:], ExpiresAtUnix: expires}
	ap, err := intent.Approve(w.approver, in)
	return benchItem{a: a, in: in, ap: ap, err: err}
}

// benchWorker is one client goroutine's share of a level and its results.
type benchWorker struct {
	accounts []*benchAccount
	items    []benchItem // prepared (--requests)
	lat      []time.Duration
	bytes    int
	sent     int
	failed   int
	skipped  int
	firstErr error
}

func (w *benchWorld) runLevel(ctx context.Context, c int, opts benchSignerOptions) (benchLevel, error) {
	nAcct := min(max(c, benchMinAccounts), len(w.accounts))
	lv := benchLevel{Concurrency: c, Accounts: nAcct}
	workers := make([]*benchWorker, c)
	for i := range workers {
		workers[i] = &benchWorker{}
	}
	for i, a := range w.accounts[:nAcct] {
		if !a.failed {
			workers[i%c].accounts = append(workers[i%c].accounts, a)
		}
	}
	amountRaw := w.sendAmount.String()
	expires := time.Now().Add(benchExpiry).Unix()

	total := opts.requests
	if opts.requests > 0 {
		// Prepare every intent and approval before the clock starts.
		for i, wk := range workers {
			k := opts.requests / c
			if i < opts.requests%c {
				k++
			}
			if len(wk.accounts) == 0 {
				wk.skipped = k // every account it had failed at an earlier level
				continue
			}
			wk.items = make([]benchItem, k)
		}
		var wg sync.WaitGroup
		for i := range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for j, wk := range workers {
					if j%runtime.GOMAXPROCS(0) != i {
						continue
					}
					for k := range wk.items {
						wk.items[k] = w.newItem(wk.accounts[k%len(wk.accounts)], amountRaw, expires)
					}
				}
			})
		}
		wg.Wait()
		for _, wk := range workers {
			for _, it := range wk.items {
				if it.err != nil {
					return lv, it.err
				}
			}
			wk.lat = make([]time.Duration, 0, len(wk.items))
		}
	}
	desc := fmt.Sprintf("concurrency %d: %d requests on %d accounts", c, opts.requests, nAcct)
	if opts.requests == 0 {
		desc = fmt.Sprintf("concurrency %d: %s on %d accounts", c, opts.duration, nAcct)
		total = -1
	}
	bar := w.prog.bar(total, desc)

	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var deadline time.Time
	cpu0, pages0 := processCPU(), w.store.PagesWritten()
	start := time.Now()
	if opts.duration > 0 {
		deadline = start.Add(opts.duration)
	}
	var wg sync.WaitGroup
	for _, wk := range workers {
		wg.Go(func() { w.work(lctx, wk, bar, deadline, amountRaw) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu, pages := processCPU()-cpu0, w.store.PagesWritten()-pages0
	bar.finish(ctx.Err())
	if err := ctx.Err(); err != nil {
		return lv, err
	}

	var lat []time.Duration
	for _, wk := range workers {
		lat = append(lat, wk.lat...)
		lv.Requests += wk.sent
		lv.Failed += wk.failed
		lv.Skipped += wk.skipped
		lv.RequestBytes += float64(wk.bytes)
		if wk.firstErr != nil && lv.FirstError == "" {
			lv.FirstError = wk.firstErr.Error()
		}
	}
	lv.Signed = len(lat)
	lv.Seconds = elapsed.Seconds()
	lv.PerSecond = float64(lv.Signed) / elapsed.Seconds()
	if lv.Signed > 0 {
		lv.RequestBytes /= float64(lv.Signed)
		slices.Sort(lat)
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		lv.MeanMs = ms(sum / time.Duration(len(lat)))
		lv.P50Ms, lv.P90Ms, lv.P99Ms = ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99))
		lv.MaxMs = ms(lat[len(lat)-1])
	}
	if lv.Signed > 0 {
		lv.PagesPerRequest = float64(pages) / float64(lv.Signed)
	}
	if cpu > 0 && lv.Signed > 0 {
		lv.CPUPerRequestUs = float64(cpu.Microseconds()) / float64(lv.Signed)
		lv.CPUUse = cpu.Seconds() / elapsed.Seconds()
	}
	lv.Verified = true
	if err := w.checkFrontiers(ctx, w.accounts[:nAcct]); err != nil {
		lv.Verified = false
		if lv.FirstError == "" {
			lv.FirstError = err.Error()
		}
	}
	w.prog.say("concurrency %d: %d signed, %d failed, %.0f/s, p50 %.2f ms, p99 %.2f ms",
		c, lv.Signed, lv.Failed, lv.PerSecond, lv.P50Ms, lv.P99Ms)
	return lv, nil
}

// work runs one worker: its prepared items, or fresh ones until deadline.
func (w *benchWorld) work(ctx context.Context, wk *benchWorker, bar *benchBar, deadline time.Time, amountRaw string) {
	next := 0
	for i := 0; ; i++ {
		var it benchItem
		switch {
		case ctx.Err() != nil:
			return
		case deadline.IsZero():
			if i >= len(wk.items) {
				return
			}
			it = wk.items[i]
		default:
			if !time.Now().Before(deadline) {
				return
			}
			var a *benchAccount
			for range wk.accounts {
				if c := wk.accounts[next%len(wk.accounts)]; !c.failed {
					a = c
				}
				next++
				if a != nil {
					break
				}
			}
			if a == nil {
				return
			}
			it = w.newItem(a, amountRaw, time.Now().Add(benchExpiry).Unix())
			if it.err != nil {
				wk.fail(it.err)
				return
			}
		}
		if it.a.failed {
			wk.skipped++
			continue
		}
		a := it.a
		tmpl := nano.StateBlock{Account: a.pub, Previous: a.hash, Representative: a.head.Representative, Link: nano.Hash(w.dest)}
		bal, err := a.head.Balance.Sub(w.sendAmount)
		if err != nil {
			wk.fail(fmt.Errorf("account %d: %w", a.index, err))
			a.failed = true
			continue
		}
		tmpl.Balance = bal
		req := &pb.SignRequest{Intent: it.in, Head: a.headPB, Template: pb.BlockFromNano(&tmpl), Approvals: []*pb.Approval{it.ap}}

		t0 := time.Now()
		resp, err := w.client.Sign(ctx, req)
		d := time.Since(t0)
		wk.sent++
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wk.fail(fmt.Errorf("account %d: %w", a.index, rpcFailure(err)))
			a.failed = true
			continue
		}
		if err := a.advance(resp, &tmpl); err != nil {
			wk.fail(fmt.Errorf("account %d: %w", a.index, err))
			a.failed = true
			continue
		}
		wk.lat = append(wk.lat, d)
		wk.bytes += proto.Size(req)
		bar.add(1)
	}
}

func (wk *benchWorker) fail(err error) {
	wk.failed++
	if wk.firstErr == nil {
		wk.firstErr = err
	}
}

// advance makes the signed block the account's head, after checking it is
// the block the template described. (Signatures are checked after the
// level, on each account's last block: checking every one here would
// take client CPU from the signer.)
func (a *benchAccount) advance(resp *pb.SignResponse, tmpl *nano.StateBlock) error {
	b, err := resp.GetBlock().ToNano("block")
	if err != nil {
		return err
	}
	if resp.GetSubtype() != "send" {
		return fmt.Errorf("the signer made a %q block, not a send", resp.GetSubtype())
	}
	got := b
	got.Signature, got.Work = nano.Signature{}, 0
	if got != *tmpl {
		return errors.New("the signed block is not the template")
	}
	h := b.Hash()
	if string(resp.GetHash()) != string(h[:]) {
		return errors.New("the response's hash is not the block's")
	}
	a.head, a.hash, a.headPB = b, h, resp.GetBlock()
	return nil
}

// checkFrontiers asks the signer for each account's frontier, which must
// be the last block the client received, and verifies that block's
// signature.
func (w *benchWorld) checkFrontiers(ctx context.Context, accounts []*benchAccount) error {
	for _, a := range accounts {
		if a.failed {
			continue
		}
		st, err := w.client.GetAccount(ctx, &pb.GetAccountRequest{Account: a.pub[:]})
		if err != nil {
			return fmt.Errorf("account %d: %w", a.index, rpcFailure(err))
		}
		if string(st.GetFrontier()) != string(a.hash[:]) {
			return fmt.Errorf("account %d: the signer's frontier is %X, the client's %s", a.index, st.GetFrontier(), a.hash)
		}
		if !nano.Verify(a.pub, a.hash[:], a.head.Signature) {
			return fmt.Errorf("account %d: the signature of block %s does not verify", a.index, a.hash)
		}
	}
	return nil
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// measureRequestCPU times, on one goroutine, the cryptography of one send
// request as the signer does it, without gRPC, the token or the state file.
func measureRequestCPU(ctx context.Context, tok *hsm.Token, n int) (benchCPU, error) {
	out := benchCPU{Iterations: n}
	var seed nano.Seed
	if _, err := rand.Read(seed[:]); err != nil {
		return out, err
	}
	defer clear(seed[:])
	k := nano.DeriveKey(&seed, 0)
	sk := nano.NewSigningKey(&k)
	k.Wipe()
	pub := sk.Public()
	head := nano.StateBlock{Account: pub, Previous: nano.Hash{1}, Representative: pub, Balance: nano.AmountFromUint64(1 << 40), Link: nano.Hash{2}}
	hh := head.Hash()
	head.Signature = sk.Sign(hh[:])
	sk.Wipe()
	next := nano.StateBlock{Account: pub, Previous: hh, Representative: pub, Balance: nano.AmountFromUint64(1 << 39), Link: nano.Hash{3}}

	_, apKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return out, err
	}
	defer clear(apKey)
	in := &pb.Intent{RequestId: "0123456789abcdef0123456789abcdef", Kind: pb.IntentKind_INTENT_KIND_SEND, Account: pub[:],
		AmountRaw: "1000000000000000000000000", Destination: pub[:], ExpiresAtUnix: time.Now().Add(time.Hour).Unix()}
	ap, err := intent.Approve(apKey, in)
	if err != nil {
		return out, err
	}
	parsed, err := intent.Parse(in)
	if err != nil {
		return out, err
	}
	msg := parsed.Canonical()

	bad := 0 // results are used, so no loop is optimised away
	// Each loop is timed by the process's CPU time, so that time other
	// processes take from a shared machine is not counted. Nothing else
	// runs in the process meanwhile, but the garbage collector, whose work
	// is part of the cost. Where the system does not tell CPU time, the
	// wall clock is used.
	out.Clock = "process_cpu"
	timeIt := func(f func(i int)) float64 {
		runtime.GC()
		c0 := processCPU()
		t0 := time.Now()
		for i := range n {
			f(i)
		}
		d := time.Since(t0)
		if c1 := processCPU(); c0 > 0 && c1 > c0 {
			d = c1 - c0
		} else {
			out.Clock = "wall"
		}
		return float64(d.Nanoseconds()) / 1e3 / float64(n)
	}
	hashes := func() nano.Hash {
		d := parsed.Digest()
		h := head.Hash()
		nh := next.Hash()
		nh[0] ^= d[0] ^ h[0]
		return nh
	}
	sign := func(i int) nano.Signature {
		k := nano.DeriveKey(&seed, uint32(i%64))
		sk := nano.NewSigningKey(&k)
		sig := sk.Sign(hh[:])
		sk.Wipe()
		k.Wipe()
		return sig
	}
	var sink nano.Hash
	out.HashesUs = timeIt(func(int) { sink = hashes() })
	out.HeadVerifyUs = timeIt(func(int) {
		if !nano.Verify(head.Account, hh[:], head.Signature) {
			bad++
		}
	})
	out.ApprovalVerifyUs = timeIt(func(int) {
		if !intent.VerifyApproval(msg, ap) {
			bad++
		}
	})
	var sig nano.Signature
	out.SignUs = timeIt(func(i int) { sig = sign(i) })
	out.TotalUs = timeIt(func(i int) {
		sink = hashes()
		if !nano.Verify(head.Account, hh[:], head.Signature) || !intent.VerifyApproval(msg, ap) {
			bad++
		}
		sig = sign(i)
	})
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	var tokErr error
	out.TokenSignUs = timeIt(func(i int) {
		if tokErr != nil {
			return
		}
		sig, tokErr = tok.Sign(ctx, benchWallet, uint32(i%64), hh)
	})
	if tokErr != nil {
		return out, tokErr
	}
	if bad > 0 || sink == (nano.Hash{}) || sig.IsZero() {
		return out, errors.New("the CPU measurement's signatures did not verify")
	}
	out.CeilingPerCore = 1e6 / out.TotalUs
	out.CeilingAllCores = out.CeilingPerCore * float64(runtime.GOMAXPROCS(0))
	return out, nil
}

// machineInfo describes the machine, as far as the system tells.
func machineInfo() benchMachine {
	return benchMachine{
		CPUs:         runtime.NumCPU(),
		GOMAXPROCS:   runtime.GOMAXPROCS(0),
		CPUModel:     cpuModel(),
		GoVersion:    runtime.Version(),
		Platform:     runtime.GOOS + "/" + runtime.GOARCH,
		LoadAvgStart: loadAvg(),
		Date:         time.Now().UTC().Format(time.DateOnly),
	}
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// processCPU returns the user and system CPU time of the process so far
// (getrusage), or 0 if the system does not tell.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fsType returns the type of the file system holding path, from
// /proc/self/mountinfo ("unknown" elsewhere).
func fsType(path string) string {
	if p, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
		path = p
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "unknown"
	}
	best, typ := -1, "unknown"
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 {
			continue
		}
		mp := f[4]
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > best {
			best, typ = len(mp), g[0]
		}
	}
	return typ
}

func printBenchSigner(out io.Writer, r *benchSignerReport) error {
	m := r.Machine
	fmt.Fprintf(out, "nanokms bench signer: gRPC on a Unix socket, SoftHSM token (%d sessions), bbolt state file with fsync (%s)\n", r.TokenPoolSize, m.StateFS)
	fmt.Fprintf(out, "machine:  %d CPUs (GOMAXPROCS %d), %s, %s %s, %s\n", m.CPUs, m.GOMAXPROCS, m.CPUModel, m.GoVersion, m.Platform, m.Date)
	fmt.Fprintf(out, "load:     %s at the start, %s at the end (1, 5, 15 min)\n", m.LoadAvgStart, m.LoadAvgEnd)
	per := fmt.Sprintf("%d requests", r.RequestsPerLevel)
	if r.DurationPerLevel != "" {
		per = r.DurationPerLevel
	}
	fmt.Fprintf(out, "workload: sends with one approval, head and template; max(C, %d) accounts; %s per level\n", benchMinAccounts, per)
	fmt.Fprintf(out, "tracked:  %s accounts (the measured ones and filler accounts); %d round(s), signers and levels interleaved\n\n",
		strings.Trim(strings.Join(strings.Fields(fmt.Sprint(r.TrackedAccounts)), ", "), "[]"), r.Rounds)

	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TRACKED\tROUND\tCONCURRENCY\tACCOUNTS\tSIGNED\tFAILED\tSIGNED/S\tMEAN ms\tP50 ms\tP90 ms\tP99 ms\tMAX ms\tBYTES/REQ\tCPU µs/REQ\tCORES USED\tPAGES/REQ\t")
	for _, lv := range r.Levels {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t%.0f\t%.2f\t%.2f\t\n", lv.TrackedAccounts, lv.Round, lv.Concurrency, lv.Accounts, lv.Signed,
			lv.Failed+lv.Skipped, lv.PerSecond, lv.MeanMs, lv.P50Ms, lv.P90Ms, lv.P99Ms, lv.MaxMs, lv.RequestBytes, lv.CPUPerRequestUs, lv.CPUUse, lv.PagesPerRequest)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range r.Comparisons {
		fmt.Fprintf(out, "tracking %d vs %d accounts at concurrency %d: signed/s ratio %.2f (median of %s); medians %.0f vs %.0f/s, p99 %.2f vs %.2f ms, %.2f vs %.2f pages/request\n",
			c.TrackedAccounts, c.BaseAccounts, c.Concurrency, c.RatioMedian, formatRatios(c.Ratios), c.PerSecond, c.BasePerSecond, c.P99Ms, c.BaseP99Ms, c.Pages, c.BasePages)
	}
	fmt.Fprintln(out, "(latency at the client; CPU µs/REQ: the whole process's CPU time, signer and clients, per signed request)")
	for _, lv := range r.Levels {
		if lv.FirstError != "" {
			fmt.Fprintf(out, "concurrency %d: first error: %s\n", lv.Concurrency, lv.FirstError)
		}
	}

	c := r.CPU
	clock := "CPU time"
	if c.Clock != "process_cpu" {
		clock = "wall clock"
	}
	fmt.Fprintf(out, "\npure CPU cost of one request, one core (%d iterations each, %s):\n", c.Iterations, clock)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  hashes (intent digest, head, new block)\t%8.1f µs\n", c.HashesUs)
	fmt.Fprintf(tw, "  head signature check (nano.Verify; the signer skips it for its recorded frontier)\t%8.1f µs\n", c.HeadVerifyUs)
	fmt.Fprintf(tw, "  approval check (ed25519.Verify)\t%8.1f µs\n", c.ApprovalVerifyUs)
	fmt.Fprintf(tw, "  signature (derive key, expand, sign)\t%8.1f µs\n", c.SignUs)
	fmt.Fprintf(tw, "  total, measured together\t%8.1f µs\t→ %.0f requests/s per core, %.0f on %d\n", c.TotalUs, c.CeilingPerCore, c.CeilingAllCores, m.GOMAXPROCS)
	fmt.Fprintf(tw, "  not in the total: a signature through the token (SoftHSM unseal, derive, sign)\t%8.1f µs\n", c.TokenSignUs)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(out, "\ntargets (issue: on 2 cores):")
		for _, t := range r.Targets {
			verdict := "missed"
			if t.Met {
				verdict = "met"
			}
			switch t.Name {
			case "signed_per_second_at_64":
				fmt.Fprintf(out, "  ≥ %.0f signed requests/s at concurrency 64: %.0f, %s\n", benchTargetRate, t.Value, verdict)
			case "p99_ms_at_8":
				fmt.Fprintf(out, "  p99 ≤ %.0f ms at concurrency 8: %.2f ms, %s\n", ms(benchTargetP99), t.Value, verdict)
			default:
				if strings.HasPrefix(t.Name, "throughput_ratio_at_64_") {
					fmt.Fprintf(out, "  %s ≥ %.1f: %.2f, %s\n", t.Name, benchTargetScaleRatio, t.Value, verdict)
				}
			}
		}
	}
	return nil
}

// benchProgress reports progress on standard error: a bar when it is a
// terminal, otherwise a line at the start and end of each step.
type benchProgress struct {
	w   io.Writer
	tty bool
}

func newBenchProgress(w io.Writer) *benchProgress {
	p := &benchProgress{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (p *benchProgress) say(format string, a ...any) {
	fmt.Fprintf(p.w, "bench: "+format+"\n", a...)
}

// benchBar is one step's progress; total -1 is unknown.
type benchBar struct {
	p    *benchProgress
	bar  *progressbar.ProgressBar
	desc string
	t0   time.Time
}

func (p *benchProgress) bar(total int, desc string) *benchBar {
	b := &benchBar{p: p, desc: desc, t0: time.Now()}
	if p.tty {
		b.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription("bench: "+desc),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(30),
		)
	} else {
		p.say("%s…", desc)
	}
	return b
}

func (b *benchBar) add(n int) {
	if b.bar != nil {
		_ = b.bar.Add(n)
	}
}

// finish ends the step; err is how it ended.
func (b *benchBar) finish(err error) {
	if b.bar != nil {
		_ = b.bar.Exit()
		_ = b.bar.Clear()
	}
	if err == nil {
		b.p.say("%s: done in %s", b.desc, time.Since(b.t0).Round(time.Millisecond))
	}
}
