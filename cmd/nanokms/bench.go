package main

import "github.com/spf13/cobra"

// newBenchCmd is the `bench` group: measurements of nanokms on this machine.
func newBenchCmd(e *env) *cobra.Command {
	cmd := newGroup("bench", "Measure nanokms's performance on this machine")
	cmd.AddCommand(newBenchSignerCmd(e), newBenchListingCmd(e))
	return cmd
}
