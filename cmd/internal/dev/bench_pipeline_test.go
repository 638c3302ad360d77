package dev

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// TestBenchPipeline runs `nanokms-dev bench pipeline` briefly: the dev
// node, the signer, the relay and the gateway each a process of its own
// (this test binary doubling as nanokms-dev, nanokms-cold and nanokms,
// see TestMain), one and two submitters, the signer alone; every
// withdrawal confirmed, the figures there, everything deleted.
func TestBenchPipeline(t *testing.T) {
	dir := benchInProcess(t)
	conf, hadConf := os.LookupEnv("SOFTHSM2_CONF")
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), Binary, []string{"bench", "pipeline", "--submitters", "1,2", "--accounts", "2",
		"--duration", "2s", "--signer-duration", "1s", "--json", "--dir", dir}, strings.NewReader(""), &stdout, &stderr)
	if code != cli.ExitOK {
		t.Fatalf("exit %d\n--- stdout\n%s--- stderr\n%s", code, stdout.String(), stderr.String())
	}
	var rep benchPipelineReport
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("decoding the JSON: %v\n%s", err, stdout.String())
	}
	if !rep.OK || rep.Accounts != 2 || len(rep.Variants) != 1 || rep.Variants[0].Name != "this" || rep.MediumFS == "" {
		t.Fatalf("report: %+v", rep)
	}
	if len(rep.Levels) != 2 || rep.Levels[0].Submitters != 1 || rep.Levels[1].Submitters != 2 || len(rep.Summary) != 2 {
		t.Fatalf("levels %+v, summary %+v", rep.Levels, rep.Summary)
	}
	for _, lv := range rep.Levels {
		if lv.Withdrawals < 1 || lv.Failed != 0 || lv.FirstError != "" || !(lv.PerSecond > 0) || !(lv.P50Ms > 0) || lv.P99Ms < lv.P50Ms {
			t.Errorf("%d submitters: %+v", lv.Submitters, lv)
		}
		for _, name := range pipeProcNames {
			if v, ok := lv.CPUMsPerWithdrawal[name]; !ok || v < 0 {
				t.Errorf("%d submitters: no CPU figure for the %s: %v", lv.Submitters, name, lv.CPUMsPerWithdrawal)
			}
		}
		if lv.CPUMsPerWithdrawal["gateway"] <= 0 || lv.CPUMsPerWithdrawal["signer"] <= 0 {
			t.Errorf("%d submitters: the gateway and the signer used no CPU? %v", lv.Submitters, lv.CPUMsPerWithdrawal)
		}
		if !(lv.SignerAlonePerSecond > 0) || lv.OfSignerAlone != lv.PerSecond/lv.SignerAlonePerSecond {
			t.Errorf("%d submitters: signer alone %v, share %v", lv.Submitters, lv.SignerAlonePerSecond, lv.OfSignerAlone)
		}
	}
	if len(rep.Targets) != 1 || rep.Targets[0].Name != "p50_ms_at_1" {
		t.Errorf("targets: %+v (only the one-submitter target applies)", rep.Targets)
	}
	if !strings.Contains(stderr.String(), "2 submitters: ") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}
	assertCleanedUp(t, dir, conf, hadConf)
}

// TestBenchPipelineStores: --gateway-store bbolt,postgres measures the
// binaries twice, the gateway's state in its bbolt file and in a database
// of a PostgreSQL server the run starts (its CPU reported), and judges the
// PostgreSQL store's rate against bbolt's at 64 submitters.
func TestBenchPipelineStores(t *testing.T) {
	dir := benchInProcess(t)
	conf, hadConf := os.LookupEnv("SOFTHSM2_CONF")
	chmodForPG(t, dir)
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), Binary, []string{"bench", "pipeline", "--gateway-store", "bbolt,postgres", "--submitters", "1",
		"--accounts", "1", "--duration", "2s", "--signer-duration", "0s", "--json", "--dir", dir}, strings.NewReader(""), &stdout, &stderr)
	if code != cli.ExitOK {
		t.Fatalf("exit %d\n--- stdout\n%s--- stderr\n%s", code, stdout.String(), stderr.String())
	}
	var rep benchPipelineReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Variants) != 2 || rep.Variants[0].Name != "this-bbolt" || rep.Variants[0].Store != pipeStoreBolt ||
		rep.Variants[1].Name != "this-postgres" || rep.Variants[1].Store != pipeStorePG || len(rep.Levels) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	for _, lv := range rep.Levels {
		pg := lv.CPUMsPerWithdrawal["postgres"]
		if lv.Withdrawals < 1 || lv.Failed != 0 || (lv.Variant == "this-postgres") != (pg > 0) {
			t.Errorf("%s: %d confirmed, %d failed, postgres CPU %v ms", lv.Variant, lv.Withdrawals, lv.Failed, pg)
		}
	}
	var s benchPipelineReport
	s.Variants = []pipeVariant{{Name: "new-bbolt", Store: pipeStoreBolt}, {Name: "new-postgres", Store: pipeStorePG}}
	s.Levels = []benchPipelineLevel{{Variant: "new-bbolt", Submitters: 64, PerSecond: 100}, {Variant: "new-postgres", Submitters: 64, PerSecond: 59}}
	s.summarise([]int{64})
	var got []benchPipelineTarget
	for _, tg := range s.Targets {
		if tg.Name == "of_bbolt_at_64" {
			got = append(got, tg)
		}
	}
	if len(got) != 1 || got[0].Variant != "new-postgres" || got[0].Value != 0.59 || got[0].Met {
		t.Errorf("the store target: %+v", got)
	}
	assertCleanedUp(t, dir, conf, hadConf)
}

func TestBenchPipelineUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--submitters", "0"}, {"--submitters", "65"}, {"--accounts", "0"}, {"--duration", "0s"}, {"--rounds", "0"},
		{"--poll-interval", "0s"}, {"--signer-duration", "-1s"}, {"--variant", "noequals"}, {"--variant", "a=/x", "--variant", "a=/y"},
		{"--gateway-store", "sqlite"}, {"--gateway-store", "bbolt,bbolt"}, {"extra"},
	} {
		if r := runCLI(t, append([]string{"bench", "pipeline"}, args...)...); r.code != cli.ExitUsage {
			t.Errorf("%v: %s", args, r)
		}
	}
	dir := t.TempDir()
	r := runCLI(t, "bench", "pipeline", "--variant", "old="+dir, "--dir", dir)
	if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "--variant old: ") || !strings.Contains(r.stderr, "hint: DIR must hold nanokms, nanokms-cold and nanokms-dev") {
		t.Errorf("a variant without binaries: %s", r)
	}
}

func TestParseProcStatCPU(t *testing.T) {
	for _, tt := range []struct {
		stat string
		want time.Duration
		ok   bool
	}{
		{"4242 (nanokms) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 125 0 0 20 0 9 0 100 0 0", 3750 * time.Millisecond, true},
		{"7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0", 30 * time.Millisecond, true},
		{"no parenthesis here", 0, false},
		{"9 (x) S 1 2 3", 0, false},
		{"9 (x) S 1 9 9 0 -1 0 0 0 0 0 -4 2 0 0", 0, false},
	} {
		got, err := parseProcStatCPU([]byte(tt.stat))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%q: %v, %v; want %v (ok %v)", tt.stat, got, err, tt.want, tt.ok)
		}
	}
}

// TestBenchPipelineTableColumns: every row of the printed tables has as
// many columns as the heading, each named (the postgres column once had
// no heading and shifted the others).
func TestBenchPipelineTableColumns(t *testing.T) {
	lv := benchPipelineLevel{Variant: "v-postgres", Round: 1, Submitters: 64, Withdrawals: 10, PerSecond: 1,
		CPUMsPerWithdrawal: map[string]float64{"gateway": 1, "relay": 2, "signer": 3, "dev node": 4, "postgres": 5, "clients": 6}}
	r := &benchPipelineReport{Rounds: 2, Levels: []benchPipelineLevel{lv}, Summary: []benchPipelineLevel{lv}}
	var out strings.Builder
	if err := printBenchPipeline(&out, r); err != nil {
		t.Fatal(err)
	}
	var heads int
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "VARIANT":
			if !strings.Contains(line, "POSTGRES") {
				t.Errorf("heading without the postgres column: %q", line)
			}
			heads = len(splitColumns(line)) // headings of several words: split at the gaps
		case len(f) > 0 && f[0] == "v-postgres":
			if len(f) != heads {
				t.Errorf("row of %d columns under a heading of %d:\n%s", len(f), heads, out.String())
			}
		}
	}
	if heads == 0 {
		t.Fatalf("no table printed:\n%s", out.String())
	}
}

// splitColumns splits a heading line of the tables at its gaps of two
// spaces or more.
func splitColumns(line string) []string {
	var cols []string
	for _, c := range strings.Split(strings.TrimSpace(line), "  ") {
		if c = strings.TrimSpace(c); c != "" {
			cols = append(cols, c)
		}
	}
	return cols
}
