package dev

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// benchPipelineReport is the --json output of bench pipeline.
type benchPipelineReport struct {
	Machine          benchMachine  `json:"machine"`
	Variants         []pipeVariant `json:"variants"`
	Accounts         int           `json:"accounts"`
	Rounds           int           `json:"rounds"`
	DurationPerLevel string        `json:"duration_per_level"`
	SignerDuration   string        `json:"signer_alone_duration"`
	PollInterval     string        `json:"poll_interval"`
	ConfirmDelay     string        `json:"confirm_delay"`
	// Medium is --medium ("": in the temporary directory) and MediumFS the
	// type of the file system holding the bridge's directories.
	Medium   string               `json:"medium,omitempty"`
	MediumFS string               `json:"medium_filesystem"`
	Levels   []benchPipelineLevel `json:"levels"`
	// Summary holds, per variant and number of submitters, the medians
	// over the rounds.
	Summary []benchPipelineLevel `json:"summary"`
	// Targets are the issue's, judged on each variant's summary.
	Targets []benchPipelineTarget `json:"targets"`
	// OK: every withdrawal submitted was confirmed.
	OK bool `json:"ok"`
}

// pipeProcNames are the processes whose CPU is reported, in order.
var pipeProcNames = []string{"gateway", "relay", "signer", "dev node", "postgres", "clients"}

// benchPipelineLevel is one variant, one number of submitters, one round
// (or, in the summary, the medians of the rounds).
type benchPipelineLevel struct {
	Variant     string  `json:"variant"`
	Round       int     `json:"round,omitempty"`
	Submitters  int     `json:"submitters"`
	Accounts    int     `json:"accounts"`
	Withdrawals int     `json:"withdrawals"` // confirmed
	Failed      int     `json:"failed"`
	FirstError  string  `json:"first_error,omitempty"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"withdrawals_per_second"`
	// Submit → confirmed, as a submitter sees it.
	P50Ms float64 `json:"p50_ms"`
	P90Ms float64 `json:"p90_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// CPUMsPerWithdrawal is each process's CPU time (utime + stime) over
	// the level per confirmed withdrawal, in ms: "gateway", "relay",
	// "signer", "dev node", "postgres" (the gateway's database server; 0
	// with bbolt) and "clients" (this process: the submitters).
	CPUMsPerWithdrawal map[string]float64 `json:"cpu_ms_per_withdrawal"`
	// SignerAlonePerSecond is the signer alone's rate in the same round
	// (64 concurrent gRPC clients), and OfSignerAlone PerSecond over it.
	SignerAlonePerSecond float64 `json:"signer_alone_per_second"`
	OfSignerAlone        float64 `json:"of_signer_alone"`
	LoadAvgStart         string  `json:"loadavg_start,omitempty"`
	LoadAvgEnd           string  `json:"loadavg_end,omitempty"`
}

// benchPipelineTarget is one of the targets for one variant.
type benchPipelineTarget struct {
	Variant string  `json:"variant"`
	Name    string  `json:"name"`
	Want    string  `json:"want"`
	Value   float64 `json:"value"`
	Met     bool    `json:"met"`
}

// summarise fills Summary and Targets from Levels.
func (r *benchPipelineReport) summarise(submitters []int) {
	for _, v := range r.Variants {
		for _, s := range submitters {
			var lvs []benchPipelineLevel
			for _, lv := range r.Levels {
				if lv.Variant == v.Name && lv.Submitters == s {
					lvs = append(lvs, lv)
				}
			}
			if len(lvs) == 0 {
				continue
			}
			pick := func(f func(benchPipelineLevel) float64) float64 {
				var xs []float64
				for _, lv := range lvs {
					xs = append(xs, f(lv))
				}
				return median(xs)
			}
			sum := benchPipelineLevel{Variant: v.Name, Submitters: s, Accounts: lvs[0].Accounts,
				PerSecond:            pick(func(l benchPipelineLevel) float64 { return l.PerSecond }),
				P50Ms:                pick(func(l benchPipelineLevel) float64 { return l.P50Ms }),
				P90Ms:                pick(func(l benchPipelineLevel) float64 { return l.P90Ms }),
				P99Ms:                pick(func(l benchPipelineLevel) float64 { return l.P99Ms }),
				MaxMs:                pick(func(l benchPipelineLevel) float64 { return l.MaxMs }),
				Seconds:              pick(func(l benchPipelineLevel) float64 { return l.Seconds }),
				SignerAlonePerSecond: pick(func(l benchPipelineLevel) float64 { return l.SignerAlonePerSecond }),
				OfSignerAlone:        pick(func(l benchPipelineLevel) float64 { return l.OfSignerAlone }),
				CPUMsPerWithdrawal:   map[string]float64{},
			}
			for _, lv := range lvs {
				sum.Withdrawals += lv.Withdrawals
				sum.Failed += lv.Failed
			}
			for _, name := range pipeProcNames {
				sum.CPUMsPerWithdrawal[name] = pick(func(l benchPipelineLevel) float64 { return l.CPUMsPerWithdrawal[name] })
			}
			r.Summary = append(r.Summary, sum)
		}
	}
	target := func(v, name, want string, value float64, met bool) {
		r.Targets = append(r.Targets, benchPipelineTarget{Variant: v, Name: name, Want: want, Value: value, Met: met})
	}
	for _, sum := range r.Summary {
		v := sum.Variant
		switch sum.Submitters {
		case 64:
			target(v, "gateway_cpu_ms_per_withdrawal_at_64", fmt.Sprintf("≤ %.0f ms", pipeTargetGatewayCPUMs), sum.CPUMsPerWithdrawal["gateway"], sum.CPUMsPerWithdrawal["gateway"] <= pipeTargetGatewayCPUMs)
			target(v, "relay_cpu_ms_per_withdrawal_at_64", fmt.Sprintf("≤ %.0f ms", pipeTargetRelayCPUMs), sum.CPUMsPerWithdrawal["relay"], sum.CPUMsPerWithdrawal["relay"] <= pipeTargetRelayCPUMs)
			target(v, "withdrawals_per_second_at_64", fmt.Sprintf("≥ %.0f", pipeTargetRate64), sum.PerSecond, sum.PerSecond >= pipeTargetRate64)
			if sum.SignerAlonePerSecond > 0 {
				target(v, "of_signer_alone_at_64", fmt.Sprintf("≥ %.2f", pipeTargetOfSigner), sum.OfSignerAlone, sum.OfSignerAlone >= pipeTargetOfSigner)
			}
		case 1:
			target(v, "p50_ms_at_1", fmt.Sprintf("≤ %.0f ms", ms(pipeTargetP50One)), sum.P50Ms, sum.P50Ms <= ms(pipeTargetP50One))
		}
	}
	// The PostgreSQL store against bbolt, for the same binaries.
	rate := map[string]float64{}
	for _, sum := range r.Summary {
		if sum.Submitters == 64 {
			rate[sum.Variant] = sum.PerSecond
		}
	}
	for _, v := range r.Variants {
		base, ok := strings.CutSuffix(v.Name, "-"+pipeStorePG)
		bolt, found := rate[base+"-"+pipeStoreBolt]
		if v.Store != pipeStorePG || !ok || !found || bolt == 0 {
			continue
		}
		if pg, measured := rate[v.Name]; measured {
			target(v.Name, "of_bbolt_at_64", fmt.Sprintf("≥ %.1f", pipeTargetPGOfBolt), pg/bolt, pg/bolt >= pipeTargetPGOfBolt)
		}
	}
}

func printBenchPipeline(out io.Writer, r *benchPipelineReport) error {
	m := r.Machine
	fmt.Fprintf(out, "nanokms-dev bench pipeline: gateway, file bridge (poll %s), relay, signer on SoftHSM, dev node (confirms after %s); each a process; %d accounts; %s per level, %d round(s)\n",
		r.PollInterval, r.ConfirmDelay, r.Accounts, r.DurationPerLevel, r.Rounds)
	fmt.Fprintf(out, "machine:  %d CPUs, %s, %s %s, %s; state files on %s, the bridge on %s\n", m.CPUs, m.CPUModel, m.GoVersion, m.Platform, m.Date, m.StateFS, r.MediumFS)
	fmt.Fprintf(out, "load:     %s at the start, %s at the end (1, 5, 15 min)\n", m.LoadAvgStart, m.LoadAvgEnd)
	for _, v := range r.Variants {
		fmt.Fprintf(out, "variant %s: %s, %s, %s; the gateway's state in %s\n", v.Name, v.Gateway, v.Cold, v.Dev, v.Store)
	}
	fmt.Fprintln(out)
	table := func(title string, lvs []benchPipelineLevel, rounds bool) error {
		fmt.Fprintln(out, title)
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		head := "VARIANT\t"
		if rounds {
			head += "ROUND\t"
		}
		fmt.Fprintln(tw, head+"SUBMITTERS\tCONFIRMED\tFAILED\tPER S\tP50 MS\tP99 MS\tGATEWAY CPU MS\tRELAY\tSIGNER\tDEV NODE\tPOSTGRES\tCLIENTS\tSIGNER ALONE /S\tOF ALONE\t")
		for _, lv := range lvs {
			row := lv.Variant + "\t"
			if rounds {
				row += fmt.Sprintf("%d\t", lv.Round)
			}
			c := lv.CPUMsPerWithdrawal
			fmt.Fprintf(tw, "%s%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f\t%.3f\t\n", row, lv.Submitters, lv.Withdrawals, lv.Failed,
				lv.PerSecond, lv.P50Ms, lv.P99Ms, c["gateway"], c["relay"], c["signer"], c["dev node"], c["postgres"], c["clients"], lv.SignerAlonePerSecond, lv.OfSignerAlone)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(out)
		return nil
	}
	if r.Rounds > 1 {
		if err := table("each round:", r.Levels, true); err != nil {
			return err
		}
	}
	if err := table("medians over the rounds:", r.Summary, false); err != nil {
		return err
	}
	for _, lv := range r.Levels {
		if lv.FirstError != "" {
			fmt.Fprintf(out, "%s, %d submitters, round %d: first error: %s\n", lv.Variant, lv.Submitters, lv.Round, lv.FirstError)
		}
	}
	fmt.Fprintln(out, "targets (issue 14):")
	for _, t := range r.Targets {
		verdict := "missed"
		if t.Met {
			verdict = "met"
		}
		fmt.Fprintf(out, "  %s %s: %.3f (want %s), %s\n", t.Variant, t.Name, t.Value, t.Want, verdict)
	}
	return nil
}
