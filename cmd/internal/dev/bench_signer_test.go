package dev

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

// benchInProcess prepares an in-process run of `nanokms-dev bench signer`.
//
// SoftHSM reads its configuration once per process, and a token whose
// directory is deleted while SoftHSM has it loaded makes every later
// C_GetTokenInfo on its slot fail. So in-process runs use the test binary's
// own token directory (softhsmtest, removed when the tests end): the bench
// finds SoftHSM loaded and makes its token there, in-process. The real
// command's path, softhsm2-util in a directory of its own, is exercised in
// a separate process by TestBenchSignerInterrupt.
//
// It returns a directory that is also the system's temporary directory,
// for --dir, so that the test can check that nothing is left in it.
// chmodForPG opens dir and its parent to others (0755): a PostgreSQL
// server the test starts runs as an unprivileged user when the tests run
// as root, and must reach its directory under dir.
func chmodForPG(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func benchInProcess(t *testing.T) string {
	t.Helper()
	softhsmtest.Module(t)
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	return dir
}

// assertCleanedUp fails unless dir is empty and SOFTHSM2_CONF is as before.
func assertCleanedUp(t *testing.T, dir string, conf string, hadConf bool) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
	if got, ok := os.LookupEnv("SOFTHSM2_CONF"); ok != hadConf || got != conf {
		t.Errorf("SOFTHSM2_CONF is %q (set %v) after the run, was %q (set %v)", got, ok, conf, hadConf)
	}
}

func TestBenchSigner(t *testing.T) {
	dir := benchInProcess(t)
	conf, hadConf := os.LookupEnv("SOFTHSM2_CONF")
	out := t.TempDir()
	profile, traceFile := filepath.Join(out, "cpu.prof"), filepath.Join(out, "run.trace")
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), Binary, []string{"bench", "signer", "--concurrency", "1,4", "--requests", "50", "--json",
		"--crypto-iterations", "50", "--dir", dir, "--cpuprofile", profile, "--trace", traceFile}, strings.NewReader(""), &stdout, &stderr)
	if code != cli.ExitOK {
		t.Fatalf("exit %d\n--- stdout\n%s--- stderr\n%s", code, stdout.String(), stderr.String())
	}
	if data, err := os.ReadFile(traceFile); err != nil || !bytes.HasPrefix(data, []byte("go 1.")) {
		t.Errorf("--trace wrote no Go execution trace (%d bytes, %v)", len(data), err)
	}
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		t.Errorf("--cpuprofile wrote nothing (%v)", err)
	}
	var rep benchSignerReport
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("decoding the JSON: %v\n%s", err, stdout.String())
	}
	if !rep.OK {
		t.Errorf("ok is false")
	}
	if rep.Accounts != benchMinAccounts || len(rep.TrackedAccounts) != 1 || rep.TrackedAccounts[0] != benchMinAccounts || rep.RequestsPerLevel != 50 || rep.Machine.CPUs < 1 || rep.Machine.GoVersion == "" {
		t.Errorf("report header: %+v", rep)
	}
	if len(rep.Levels) != 2 || rep.Levels[0].Concurrency != 1 || rep.Levels[1].Concurrency != 4 {
		t.Fatalf("levels: %+v", rep.Levels)
	}
	for _, lv := range rep.Levels {
		if lv.Requests != 50 || lv.Signed != 50 || lv.Failed != 0 || lv.Skipped != 0 || lv.FirstError != "" || !lv.Verified {
			t.Errorf("concurrency %d: not every request was signed: %+v", lv.Concurrency, lv)
		}
		if lv.Accounts != benchMinAccounts {
			t.Errorf("concurrency %d: %d accounts, want %d", lv.Concurrency, lv.Accounts, benchMinAccounts)
		}
		if !(lv.PerSecond > 0) || !(lv.P50Ms > 0) || lv.P99Ms < lv.P50Ms || lv.P90Ms < lv.P50Ms || lv.MaxMs < lv.P99Ms {
			t.Errorf("concurrency %d: implausible figures: %+v", lv.Concurrency, lv)
		}
		if lv.RequestBytes < 300 || lv.RequestBytes > 2000 {
			t.Errorf("concurrency %d: %.0f bytes per request", lv.Concurrency, lv.RequestBytes)
		}
	}
	c := rep.CPU
	if c.Iterations != 50 || !(c.HeadVerifyUs > 0) || !(c.ApprovalVerifyUs > 0) || !(c.SignUs > 0) || !(c.TotalUs > 0) ||
		!(c.CeilingPerCore > 0) || !(c.TokenSignUs > 0) {
		t.Errorf("CPU figures: %+v", c)
	}
	if !strings.Contains(stderr.String(), "concurrency 4") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}
	assertCleanedUp(t, dir, conf, hadConf)
}

func TestBenchSignerTable(t *testing.T) {
	dir := benchInProcess(t)
	r := runCLI(t, "bench", "signer", "--concurrency", "8", "--requests", "16", "--crypto-iterations", "5", "--dir", dir)
	if r.code != cli.ExitOK {
		t.Fatal(r)
	}
	for _, want := range []string{"machine:", "CONCURRENCY", "P99 ms", "total, measured together", "p99 ≤ 10 ms at concurrency 8:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the table lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestBenchSignerInterrupt runs the command in a process of its own (the
// test binary doubles as nanokms-dev, see TestMain), interrupts it as Ctrl-C
// would once it is measuring, and checks that it says so and leaves
// nothing behind: not its directory, not its SoftHSM token directory.
func TestBenchSignerInterrupt(t *testing.T) {
	bin, err := exec.LookPath("nanokms-dev")
	if err != nil {
		t.Fatalf("the test binary as nanokms-dev is not on PATH (TestMain sets it up): %v", err)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "bench", "signer", "--concurrency", "64", "--duration", "10m", "--crypto-iterations", "5", "--dir", dir)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "GORACE=atexit_sleep_ms=10")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(3*time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	signalled := false
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if !signalled && strings.HasPrefix(sc.Text(), "bench: concurrency 64:") {
			signalled = true
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !signalled || !errors.As(err, &ee) || ee.ExitCode() != cli.ExitFailed || !strings.Contains(log.String(), "interrupted") {
		t.Fatalf("signalled %v, exit %v, want %d with \"interrupted\"\n--- stderr\n%s", signalled, err, cli.ExitFailed, log.String())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
}

// TestBenchSignerAccounts: with --accounts 0,300 the bench measures two
// signers on one token, one tracking only the measured accounts and one
// with filler accounts too, round after round in turns, and compares
// them.
func TestBenchSignerAccounts(t *testing.T) {
	dir := benchInProcess(t)
	conf, hadConf := os.LookupEnv("SOFTHSM2_CONF")
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), Binary, []string{"bench", "signer", "--concurrency", "4", "--requests", "24", "--accounts", "0,300",
		"--rounds", "2", "--crypto-iterations", "5", "--json", "--dir", dir}, strings.NewReader(""), &stdout, &stderr)
	if code != cli.ExitOK {
		t.Fatalf("exit %d\n--- stdout\n%s--- stderr\n%s", code, stdout.String(), stderr.String())
	}
	var rep benchSignerReport
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("decoding the JSON: %v\n%s", err, stdout.String())
	}
	if !rep.OK || rep.Rounds != 2 || len(rep.TrackedAccounts) != 2 || rep.TrackedAccounts[0] != benchMinAccounts || rep.TrackedAccounts[1] != 300 {
		t.Fatalf("report: ok %v, rounds %d, tracked %v", rep.OK, rep.Rounds, rep.TrackedAccounts)
	}
	var order []int
	for _, lv := range rep.Levels {
		order = append(order, lv.Round, lv.TrackedAccounts)
		if lv.Signed != 24 || !lv.Verified || lv.Accounts != benchMinAccounts {
			t.Errorf("level %+v", lv)
		}
	}
	// The second round takes the signers in the other order.
	if want := []int{1, 64, 1, 300, 2, 300, 2, 64}; !slices.Equal(order, want) {
		t.Errorf("levels (round, tracked): %v, want %v", order, want)
	}
	if len(rep.Comparisons) != 1 {
		t.Fatalf("comparisons: %+v", rep.Comparisons)
	}
	c := rep.Comparisons[0]
	if c.Concurrency != 4 || c.TrackedAccounts != 300 || c.BaseAccounts != 64 || len(c.Ratios) != 2 || !(c.RatioMedian > 0) ||
		c.RatioMedian != (c.Ratios[0]+c.Ratios[1])/2 || !(c.PerSecond > 0) || !(c.BasePerSecond > 0) {
		t.Errorf("comparison: %+v", c)
	}
	if !strings.Contains(stderr.String(), "writing 236 filler accounts (adopted with a head) into the state file") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	assertCleanedUp(t, dir, conf, hadConf)
}

func TestBenchSignerUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--accounts", "-1"},
		{"--accounts", "0,-5"},
		{"--rounds", "0"},
		{"--concurrency", "0"},
		{"--requests", "10", "--duration", "1s"},
		{"--requests", "0"},
		{"--pool-size", "0"},
		{"--store", "sqlite"},
		{"--store", "bbolt,bbolt"},
		{"--store", ""},
		{"--store", "postgres", "--accounts", "1000"},
		{"--store", "bbolt,postgres", "--accounts", "0,1000"},
		{"extra"},
	} {
		r := runCLI(t, append([]string{"bench", "signer"}, args...)...)
		if r.code != cli.ExitUsage {
			t.Errorf("%v: %s", args, r)
		}
	}
}

// TestBenchSignerStores: with --store bbolt,postgres,postgres-2 the bench
// measures a signer on a bbolt file, one on a PostgreSQL database of its
// own server, and two signers sharing one database, in turns, round after
// round; it compares each with the first and the two signers with the
// one, judges the PostgreSQL targets, and leaves nothing behind (the
// server stopped, its directory removed).
func TestBenchSignerStores(t *testing.T) {
	dir := benchInProcess(t)
	chmodForPG(t, dir)
	conf, hadConf := os.LookupEnv("SOFTHSM2_CONF")
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), Binary, []string{"bench", "signer", "--concurrency", "8", "--requests", "24", "--store", "bbolt,postgres,postgres-2",
		"--rounds", "2", "--crypto-iterations", "5", "--json", "--dir", dir}, strings.NewReader(""), &stdout, &stderr)
	if code != cli.ExitOK {
		t.Fatalf("exit %d\n--- stdout\n%s--- stderr\n%s", code, stdout.String(), stderr.String())
	}
	var rep benchSignerReport
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("decoding the JSON: %v\n%s", err, stdout.String())
	}
	if !rep.OK || !slices.Equal(rep.Stores, []string{"bbolt", "postgres", "postgres-2"}) || !slices.Equal(rep.TrackedAccounts, []int{64, 64, 64}) {
		t.Fatalf("report: ok %v, stores %v, tracked %v", rep.OK, rep.Stores, rep.TrackedAccounts)
	}
	var order []string
	for _, lv := range rep.Levels {
		order = append(order, fmt.Sprintf("%d %s", lv.Round, lv.Store))
		if lv.Signed != 24 || !lv.Verified || lv.Failed != 0 {
			t.Errorf("level %+v", lv)
		}
		if (lv.Store == "bbolt") != (lv.PagesPerRequest > 0) {
			t.Errorf("%s: %.2f pages per request", lv.Store, lv.PagesPerRequest)
		}
	}
	if want := []string{"1 bbolt", "1 postgres", "1 postgres-2", "2 postgres-2", "2 postgres", "2 bbolt"}; !slices.Equal(order, want) {
		t.Errorf("levels (round, store): %v, want %v", order, want)
	}
	var pairs []string
	for _, c := range rep.Comparisons {
		pairs = append(pairs, c.Store+"/"+c.BaseStore)
		if c.Concurrency != 8 || len(c.Ratios) != 2 || !(c.RatioMedian > 0) || !(c.PerSecond > 0) || !(c.BasePerSecond > 0) {
			t.Errorf("comparison: %+v", c)
		}
	}
	if want := []string{"postgres/bbolt", "postgres-2/bbolt", "postgres-2/postgres"}; !slices.Equal(pairs, want) {
		t.Errorf("comparisons %v, want %v", pairs, want)
	}
	n := 0
	for _, tg := range rep.Targets {
		if tg.Name == "p99_ms_at_8_postgres" {
			n++
			if tg.Met != (tg.Value <= 25) {
				t.Errorf("target %+v", tg)
			}
		}
	}
	if n != 2 {
		t.Errorf("targets %+v: want p99_ms_at_8_postgres for each round", rep.Targets)
	}
	if !strings.Contains(stderr.String(), "starting PostgreSQL 15") || !strings.Contains(stderr.String(), "two signers on one PostgreSQL database") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	assertCleanedUp(t, dir, conf, hadConf)
}
