package cold

import (
	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// newWorkCmd groups the proof-of-work subcommands.
func newWorkCmd(e *cli.Env) *cobra.Command {
	cmd := cli.NewGroup("work", "Generate and validate proof of work")
	cmd.AddCommand(newWorkGenerateCmd(e), newWorkValidateCmd(e))
	return cmd
}
