package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// benchRoots reads the root set shared with the nanocurrency benchmark in
// bench/npmwork, and checks its threshold is nano.ThresholdReceive.
func benchRoots(tb testing.TB) []nano.Hash {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "bench", "npmwork", "roots.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var f struct {
		Threshold string   `json:"threshold"`
		Roots     []string `json:"roots"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		tb.Fatal(err)
	}
	if th, err := nano.ParseThreshold(f.Threshold); err != nil || th != nano.ThresholdReceive {
		tb.Fatalf("roots.json threshold %q, want %016x (%v)", f.Threshold, nano.ThresholdReceive, err)
	}
	var roots []nano.Hash
	for _, s := range f.Roots {
		h, err := nano.ParseHash(s)
		if err != nil {
			tb.Fatal(err)
		}
		roots = append(roots, h)
	}
	if len(roots) != 8 {
		tb.Fatalf("roots.json has %d roots, want 8", len(roots))
	}
	return roots
}

func TestBenchRoots(t *testing.T) { benchRoots(t) }

// BenchmarkWorkReceiveThreshold generates work at the receive threshold
// (fffffe0000000000) with nano.GenerateWork, cycling over the 8 roots of
// bench/npmwork/roots.json (one root per op), with 2 workers (the
// figure compared with the nanocurrency package) and 1. It reports
// solutions/s and hashes/s (Σ attempts / Σ wall time). Run with
//
//	go test -run XXX -bench WorkReceiveThreshold -benchtime 8x -count 3 ./e2e
func BenchmarkWorkReceiveThreshold(b *testing.B) {
	roots := benchRoots(b)
	for _, workers := range []int{2, 1} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var (
				attempts uint64
				elapsed  time.Duration
			)
			for i := 0; b.Loop(); i++ {
				root := roots[i%len(roots)]
				res, err := nano.GenerateWork(context.Background(), root, nano.ThresholdReceive, nano.WorkOptions{Workers: workers})
				if err != nil {
					b.Fatal(err)
				}
				if !nano.ValidateWork(root, res.Work, nano.ThresholdReceive) {
					b.Fatalf("invalid work %s for %s", res.Work, root)
				}
				attempts += res.Attempts
				elapsed += res.Elapsed
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "solutions/s")
			b.ReportMetric(float64(attempts)/elapsed.Seconds(), "hashes/s")
			b.ReportMetric(float64(attempts)/float64(b.N), "hashes/solution")
		})
	}
}
