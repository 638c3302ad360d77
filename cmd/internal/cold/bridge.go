package cold

import (
	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// newBridgeCmd groups the bridge subcommands.
func newBridgeCmd(e *cli.Env) *cobra.Command {
	cmd := cli.NewGroup("bridge", "Look at the one-way bridge's frames")
	cmd.AddCommand(newBridgeInspectCmd(e))
	return cmd
}
