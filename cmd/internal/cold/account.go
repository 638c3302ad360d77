package cold

import (
	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// newAccountCmd groups the account subcommands.
func newAccountCmd(e *cli.Env) *cobra.Command {
	cmd := cli.NewGroup("account", "Derive and decode account addresses")
	cmd.AddCommand(newAccountDeriveCmd(e), newAccountDecodeCmd(e), newAccountListCmd(e))
	return cmd
}

// accountResult is the --json output of the account subcommands.
type accountResult struct {
	Index     *uint32 `json:"index,omitempty"`
	PublicKey string  `json:"public_key"`
	Account   string  `json:"account"`
}
