package main

import "github.com/spf13/cobra"

// newWorkCmd groups the proof-of-work subcommands.
func newWorkCmd(e *env) *cobra.Command {
	cmd := newGroup("work", "Generate and validate proof of work")
	cmd.AddCommand(newWorkGenerateCmd(e), newWorkValidateCmd(e))
	return cmd
}
