package cold

import (
	"context"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/nano"
	"github.com/spf13/cobra"
)

type workGenerateOptions struct {
	root      string
	threshold thresholdFlags
	workers   int
	json      bool
}

func newWorkGenerateCmd(e *cli.Env) *cobra.Command {
	var opts workGenerateOptions
	cmd := &cobra.Command{
		Use:   "generate --root HEX (--threshold HEX | --subtype S)",
		Short: "Find a work nonce for a root on every core",
		Long: `Searches for a nonce whose work value over --root (the block's previous hash,
or the account's public key for an open block) meets the threshold, on every
core. Prints the nonce in the JSON "work" form and its value; the hash rate
goes to standard error. Interrupt to stop.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWorkGenerate(cmd.Context(), e, opts)
		},
	}
	cmd.Flags().StringVar(&opts.root, "root", "", "work root as 64 hex digits")
	opts.threshold.register(cmd, true)
	cmd.Flags().IntVar(&opts.workers, "workers", 0, "goroutines to use (0: one per core)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// workResult is the --json output of the work subcommands.
type workResult struct {
	Root          string   `json:"root"`
	Work          string   `json:"work"`
	WorkValue     string   `json:"work_value"`
	WorkThreshold string   `json:"work_threshold"`
	WorkValid     bool     `json:"work_valid"`
	Attempts      uint64   `json:"attempts,omitempty"`
	HashRate      *float64 `json:"hash_rate,omitempty"`
}

func parseRootFlag(s string) (nano.Hash, error) {
	if s == "" {
		return nano.Hash{}, cli.UsageErr("--root is required")
	}
	h, err := nano.ParseHash(s)
	if err != nil {
		return nano.Hash{}, cli.UsageErr("--root: %w", err)
	}
	return h, nil
}

func runWorkGenerate(ctx context.Context, e *cli.Env, opts workGenerateOptions) error {
	root, err := parseRootFlag(opts.root)
	if err != nil {
		return err
	}
	threshold, _, err := opts.threshold.resolve()
	if err != nil {
		return err
	}
	if opts.workers < 0 {
		return cli.UsageErr("--workers: must not be negative")
	}
	res, err := nano.GenerateWork(ctx, root, threshold, nano.WorkOptions{Workers: opts.workers})
	if err != nil {
		return err
	}
	rate := res.HashRate()
	fmt.Fprintf(e.Stderr, "found after %d attempts in %s on %d workers (%.2f M hashes/s)\n",
		res.Attempts, res.Elapsed.Round(1e6), res.Workers, rate/1e6)
	out := workResult{
		Root:          root.String(),
		Work:          res.Work.String(),
		WorkValue:     fmt.Sprintf("%016X", res.Value),
		WorkThreshold: fmt.Sprintf("%016X", threshold),
		WorkValid:     true,
		Attempts:      res.Attempts,
		HashRate:      &rate,
	}
	if opts.json {
		return cli.PrintJSON(e.Stdout, out)
	}
	fmt.Fprintf(e.Stdout, "work:       %s\nwork value: %s\n", out.Work, out.WorkValue)
	return nil
}
