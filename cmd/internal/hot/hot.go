// Package hot holds the subcommands of the online (hot) side: the
// gateway, which talks to a Nano node and drives the bridge, and the
// client of its Custody API. Only the operator's binary (nanokms) ships
// them.
//
// Package hot must never import the token (hsm), the signer's internals or
// the dev tools (devnode, softhsm-test, a progress bar).
package hot

import (
	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// Commands returns the hot side's subcommands.
func Commands(e *cli.Env) []*cobra.Command {
	return []*cobra.Command{
		newGatewayCmd(e),
		newClientCmd(e),
	}
}
