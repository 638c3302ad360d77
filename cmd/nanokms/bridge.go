package main

import "github.com/spf13/cobra"

// newBridgeCmd groups the bridge subcommands.
func newBridgeCmd(e *env) *cobra.Command {
	cmd := newGroup("bridge", "Look at the one-way bridge's frames")
	cmd.AddCommand(newBridgeInspectCmd(e))
	return cmd
}
