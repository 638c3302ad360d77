package dev

import (
	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// newBenchCmd is the `bench` group: measurements of nanokms on this machine.
func newBenchCmd(e *cli.Env) *cobra.Command {
	cmd := cli.NewGroup("bench", "Measure nanokms's performance on this machine")
	cmd.AddCommand(newBenchSignerCmd(e), newBenchListingCmd(e), newBenchPipelineCmd(e))
	return cmd
}
