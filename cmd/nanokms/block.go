package main

import "github.com/spf13/cobra"

// newBlockCmd groups the block subcommands.
func newBlockCmd(e *env) *cobra.Command {
	cmd := newGroup("block", "Hash, verify and sign state blocks offline")
	cmd.AddCommand(newBlockHashCmd(e), newBlockVerifyCmd(e), newBlockSignCmd(e))
	return cmd
}
