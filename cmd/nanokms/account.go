package main

import "github.com/spf13/cobra"

// newAccountCmd groups the account subcommands.
func newAccountCmd(e *env) *cobra.Command {
	cmd := newGroup("account", "Derive and decode account addresses")
	cmd.AddCommand(newAccountDeriveCmd(e), newAccountDecodeCmd(e), newAccountListCmd(e))
	return cmd
}

// accountResult is the --json output of the account subcommands.
type accountResult struct {
	Index     *uint32 `json:"index,omitempty"`
	PublicKey string  `json:"public_key"`
	Account   string  `json:"account"`
}
