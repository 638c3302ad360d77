package dev

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// benchSignerReport is the --json output.
type benchSignerReport struct {
	Machine  benchMachine `json:"machine"`
	Accounts int          `json:"accounts"`
	// TrackedAccounts is, for each world (a signer of --accounts, or the
	// signers of a --store), Accounts plus its filler accounts.
	TrackedAccounts []int `json:"tracked_accounts"`
	// Stores is each world's store (--store): bbolt, postgres or
	// postgres-2.
	Stores []string `json:"stores"`
	Rounds int      `json:"rounds"`
	// FillerHistory: the filler accounts were opened (--filler-history).
	FillerHistory bool `json:"filler_history"`
	// Comparisons set each world after the first against the first, and
	// postgres-2 against postgres.
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
	StateFS      string `json:"state_filesystem"` // where the bbolt files and PostgreSQL's data are
	Date         string `json:"date"`
}

type benchLevel struct {
	Concurrency int `json:"concurrency"`
	// Store is the world's (--store); TrackedAccounts its signer's
	// (--accounts); Round counts from 1.
	Store           string  `json:"store"`
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
	// decision, which the machine's load does not change; 0 on
	// PostgreSQL.
	PagesPerRequest float64 `json:"pages_per_request"`
	// DBCPUPerRequestUs is the PostgreSQL server's CPU time (all its
	// processes, from /proc) per signed request, in µs: the database's
	// share of a decision, which CPUPerRequestUs does not count; 0 on
	// bbolt.
	DBCPUPerRequestUs float64 `json:"db_cpu_per_request_us"`
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

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func printBenchSigner(out io.Writer, r *benchSignerReport) error {
	m := r.Machine
	fmt.Fprintf(out, "nanokms-dev bench signer: gRPC on a Unix socket, SoftHSM token (%d sessions), %s (%s)\n", r.TokenPoolSize, storesLine(r.Stores), m.StateFS)
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
	fmt.Fprintln(tw, "STORE\tTRACKED\tROUND\tCONCURRENCY\tACCOUNTS\tSIGNED\tFAILED\tSIGNED/S\tMEAN ms\tP50 ms\tP90 ms\tP99 ms\tMAX ms\tBYTES/REQ\tCPU µs/REQ\tDB CPU µs/REQ\tCORES USED\tPAGES/REQ\t")
	for _, lv := range r.Levels {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t\n", lv.Store, lv.TrackedAccounts, lv.Round, lv.Concurrency, lv.Accounts, lv.Signed,
			lv.Failed+lv.Skipped, lv.PerSecond, lv.MeanMs, lv.P50Ms, lv.P90Ms, lv.P99Ms, lv.MaxMs, lv.RequestBytes, lv.CPUPerRequestUs, lv.DBCPUPerRequestUs, lv.CPUUse, lv.PagesPerRequest)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range r.Comparisons {
		what := fmt.Sprintf("tracking %d vs %d accounts", c.TrackedAccounts, c.BaseAccounts)
		if c.Store != c.BaseStore {
			what = c.Store + " vs " + c.BaseStore
		}
		fmt.Fprintf(out, "%s at concurrency %d: signed/s ratio %.2f (median of %s); medians %.0f vs %.0f/s, p99 %.2f vs %.2f ms, %.2f vs %.2f pages/request\n",
			what, c.Concurrency, c.RatioMedian, formatRatios(c.Ratios), c.PerSecond, c.BasePerSecond, c.P99Ms, c.BaseP99Ms, c.Pages, c.BasePages)
	}
	fmt.Fprintln(out, "(latency at the client; CPU µs/REQ: the whole process's CPU time, signer and clients, per signed request; DB CPU µs/REQ: the PostgreSQL server's, all its processes, per signed request)")
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
			case "p99_ms_at_8_postgres":
				fmt.Fprintf(out, "  postgres: p99 ≤ %.0f ms at concurrency 8: %.2f ms, %s\n", ms(benchTargetPGP99), t.Value, verdict)
			case "postgres_over_bbolt_at_64":
				fmt.Fprintf(out, "  postgres ≥ %.1f × bbolt's signed/s at concurrency 64 (median ratio): %.2f, %s\n", benchTargetPGRatio, t.Value, verdict)
			case "two_signers_over_one_at_64":
				fmt.Fprintf(out, "  two signers on one database ≥ %.1f × one at concurrency 64 (median ratio): %.2f, %s\n", benchTargetPG2Ratio, t.Value, verdict)
			default:
				if strings.HasPrefix(t.Name, "throughput_ratio_at_64_") {
					fmt.Fprintf(out, "  %s ≥ %.1f: %.2f, %s\n", t.Name, benchTargetScaleRatio, t.Value, verdict)
				}
			}
		}
	}
	return nil
}

// judge sets OK (every request of every level signed, every frontier
// checked), the comparisons of the worlds and the targets: the
// first world's rate and latency (on bbolt), each bbolt world's throughput
// with filler accounts against the first's, and for PostgreSQL its p99 at
// 8, its throughput against bbolt's and two signers' against one's.
func (r *benchSignerReport) judge(concurrency []int, worlds []benchWorldKey) {
	r.OK = true
	for _, lv := range r.Levels {
		if lv.Failed > 0 || lv.Skipped > 0 || !lv.Verified {
			r.OK = false
		}
		switch {
		case lv.Store == benchStorePG && lv.Concurrency == 8:
			r.Targets = append(r.Targets, benchTarget{Name: "p99_ms_at_8_postgres", Value: lv.P99Ms, Met: lv.P99Ms <= ms(benchTargetPGP99)})
		case lv.key() != worlds[0] || lv.Store != benchStoreBolt:
			// The bbolt targets are the first world's.
		case lv.Concurrency == 64:
			r.Targets = append(r.Targets, benchTarget{Name: "signed_per_second_at_64", Value: lv.PerSecond, Met: lv.PerSecond >= benchTargetRate})
		case lv.Concurrency == 8:
			r.Targets = append(r.Targets, benchTarget{Name: "p99_ms_at_8", Value: lv.P99Ms, Met: lv.P99Ms <= ms(benchTargetP99)})
		}
	}
	r.Comparisons = compareWorlds(r.Levels, worlds, concurrency)
	for _, cmp := range r.Comparisons {
		if cmp.Concurrency != 64 {
			continue
		}
		switch {
		case cmp.Store == cmp.BaseStore:
			r.Targets = append(r.Targets, benchTarget{Name: fmt.Sprintf("throughput_ratio_at_64_with_%d_accounts", cmp.TrackedAccounts),
				Value: cmp.RatioMedian, Met: cmp.RatioMedian >= benchTargetScaleRatio})
		case cmp.Store == benchStorePG && cmp.BaseStore == benchStoreBolt:
			r.Targets = append(r.Targets, benchTarget{Name: "postgres_over_bbolt_at_64", Value: cmp.RatioMedian, Met: cmp.RatioMedian >= benchTargetPGRatio})
		case cmp.Store == benchStorePG2 && cmp.BaseStore == benchStorePG:
			r.Targets = append(r.Targets, benchTarget{Name: "two_signers_over_one_at_64", Value: cmp.RatioMedian, Met: cmp.RatioMedian >= benchTargetPG2Ratio})
		}
	}
}

// storesLine describes the stores of a run for the header.
func storesLine(stores []string) string {
	parts := make([]string, len(stores))
	for i, s := range stores {
		switch s {
		case benchStoreBolt:
			parts[i] = "bbolt state file with fsync"
		case benchStorePG:
			parts[i] = "PostgreSQL 15 on this host (fsync on)"
		case benchStorePG2:
			parts[i] = "two signers on one PostgreSQL 15 database"
		}
	}
	return strings.Join(parts, "; ")
}
