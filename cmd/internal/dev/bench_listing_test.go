package dev

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// TestBenchListing runs `nanokms-dev bench listing` on a small signer: it
// starts the signer as a process of its own (nanokms-cold, found on PATH:
// this test binary doubling as nanokms-cold, see TestMain), lists every
// account with `nanokms-cold signer accounts --json` (a process too)
// twice, reads the signer's memory, and deletes everything.
func TestBenchListing(t *testing.T) {
	dir := benchInProcess(t)
	conf, hadConf := os.LookupEnv("SOFTHSM2_CONF")
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), Binary, []string{"bench", "listing", "--accounts", "6000", "--listings", "2", "--json", "--dir", dir},
		strings.NewReader(""), &stdout, &stderr)
	if code != cli.ExitOK {
		t.Fatalf("exit %d\n--- stdout\n%s--- stderr\n%s", code, stdout.String(), stderr.String())
	}
	var rep benchListingReport
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("decoding the JSON: %v\n%s", err, stdout.String())
	}
	if !rep.OK || rep.Accounts != 6000 || len(rep.Listings) != 2 || rep.StateFileBytes <= 0 || rep.SignerStartRSSKiB <= 0 {
		t.Fatalf("report: %+v", rep)
	}
	for i, l := range rep.Listings {
		if l.Printed != 6000 || l.ExitError != "" || !(l.Seconds > 0) || l.RSSKiB <= 0 || l.PeakKiB < l.RSSKiB || l.OutBytes < 6000*200 {
			t.Errorf("listing %d: %+v", i+1, l)
		}
	}
	if rep.SignerPeakRSSKiB != rep.Listings[1].PeakKiB || !(rep.MedianSeconds > 0) || len(rep.Targets) != 2 {
		t.Errorf("summary: %+v", rep)
	}
	if !strings.Contains(stderr.String(), "listing 2: 6000 accounts") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}
	assertCleanedUp(t, dir, conf, hadConf)
}

func TestBenchListingUsage(t *testing.T) {
	for _, args := range [][]string{{"--accounts", "-1"}, {"--listings", "0"}, {"extra"}} {
		if r := runCLI(t, append([]string{"bench", "listing"}, args...)...); r.code != cli.ExitUsage {
			t.Errorf("%v: %s", args, r)
		}
	}
}

// TestBenchListingColdBinary: a --cold-binary that is not there fails
// before anything is made, naming the flag.
func TestBenchListingColdBinary(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, "bench", "listing", "--accounts", "10", "--cold-binary", filepath.Join(dir, "nanokms-cold"), "--dir", dir)
	if r.code != cli.ExitFailed || r.stdout != "" ||
		!strings.HasPrefix(r.stderr, "nanokms-dev: error: --cold-binary: ") ||
		!strings.Contains(r.stderr, "\nhint: give the path of a built nanokms-cold (make build puts it in bin/)\n") {
		t.Fatalf("%v", r)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("made %v (%v)", entries, err)
	}
}
