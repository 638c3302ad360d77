package cold

import (
	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/nano"
	"github.com/spf13/cobra"
)

// thresholdFlags are --threshold HEX and --subtype S, of which at most one
// (or, when required, exactly one) may be given.
type thresholdFlags struct {
	hex      string
	subtype  string
	required bool
}

func (t *thresholdFlags) register(cmd *cobra.Command, required bool) {
	t.required = required
	cmd.Flags().StringVar(&t.hex, "threshold", "", "work threshold as up to 16 hex digits (e.g. fffffff800000000)")
	cmd.Flags().StringVar(&t.subtype, "subtype", "", "pick the epoch-2 threshold for this subtype: send, change, receive, open, epoch")
}

// resolve returns the threshold and whether one was asked for.
func (t *thresholdFlags) resolve() (uint64, bool, error) {
	switch {
	case t.hex != "" && t.subtype != "":
		return 0, false, cli.UsageErr("--threshold and --subtype are mutually exclusive")
	case t.hex != "":
		v, err := nano.ParseThreshold(t.hex)
		if err != nil {
			return 0, false, cli.UsageErr("--threshold: %w", err)
		}
		return v, true, nil
	case t.subtype != "":
		s, err := nano.ParseSubtype(t.subtype)
		if err != nil {
			return 0, false, cli.UsageErr("--subtype: %w", err)
		}
		return s.WorkThreshold(), true, nil
	case t.required:
		return 0, false, cli.UsageErr("one of --threshold or --subtype is required")
	}
	return 0, false, nil
}
