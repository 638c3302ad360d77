package cold

import (
	"context"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/nano"
	"github.com/spf13/cobra"
)

type workValidateOptions struct {
	root      string
	work      string
	threshold thresholdFlags
	json      bool
}

func newWorkValidateCmd(e *cli.Env) *cobra.Command {
	var opts workValidateOptions
	cmd := &cobra.Command{
		Use:   "validate --root HEX --work HEX (--threshold HEX | --subtype S)",
		Short: "Check a work nonce against a root and threshold",
		Long: `Prints the work value of --work (16 hex digits, as in a block's "work" field)
over --root, and whether it meets the threshold. Exits 0 only if it does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWorkValidate(cmd.Context(), e, opts)
		},
	}
	cmd.Flags().StringVar(&opts.root, "root", "", "work root as 64 hex digits")
	cmd.Flags().StringVar(&opts.work, "work", "", "work nonce as 16 hex digits")
	opts.threshold.register(cmd, true)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runWorkValidate(_ context.Context, e *cli.Env, opts workValidateOptions) error {
	root, err := parseRootFlag(opts.root)
	if err != nil {
		return err
	}
	if opts.work == "" {
		return cli.UsageErr("--work is required")
	}
	w, err := nano.ParseWork(opts.work)
	if err != nil {
		return cli.UsageErr("--work: %w", err)
	}
	threshold, _, err := opts.threshold.resolve()
	if err != nil {
		return err
	}
	v := nano.WorkValue(root, w)
	out := workResult{
		Root:          root.String(),
		Work:          w.String(),
		WorkValue:     fmt.Sprintf("%016X", v),
		WorkThreshold: fmt.Sprintf("%016X", threshold),
		WorkValid:     v >= threshold,
	}
	if opts.json {
		if err := cli.PrintJSON(e.Stdout, out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.Stdout, "work value: %s\nwork:       %s (threshold %s)\n", out.WorkValue, meetsWord(out.WorkValid), out.WorkThreshold)
	}
	if !out.WorkValid {
		return cli.ErrCheckFailed
	}
	return nil
}
