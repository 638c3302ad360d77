package cold

import (
	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// newBlockCmd groups the block subcommands.
func newBlockCmd(e *cli.Env) *cobra.Command {
	cmd := cli.NewGroup("block", "Hash, verify and sign state blocks offline")
	cmd.AddCommand(newBlockHashCmd(e), newBlockVerifyCmd(e), newBlockSignCmd(e))
	return cmd
}
