// Package cold holds the subcommands that run on the isolated (cold)
// host: the signer and the relay, the token, wallet and account
// ceremony, the offline block, account and work tools, approvals, audit
// verification and bridge inspection. Both the operator's binary
// (nanokms) and the isolated host's (nanokms-cold) ship them.
//
// Package cold must never import the hot side (node, the gateway, a
// WebSocket or HTTP client), the dev tools (devnode, softhsm-test, a
// progress bar) or the other command packages: the cold binary is built
// from it alone, and cmd/layout_test.go checks what it links.
//
// approve and approver keygen are here too, although approvers often work
// elsewhere: they link only the intent codec and Ed25519, and the release
// ceremony (signer release prepare → approve --release → signer release)
// is run on the isolated host.
package cold

import (
	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// Binary is nanokms-cold, the isolated host's binary: only these
// subcommands, no hot code linked.
var Binary = cli.Binary{
	Name:     "nanokms-cold",
	Short:    "The isolated host's nanokms: signer, relay, token ceremony and offline tools (no network client)",
	Commands: Commands,
	Config:   configCheck,
}

// Commands returns the cold side's subcommands.
func Commands(e *cli.Env) []*cobra.Command {
	return []*cobra.Command{
		newBlockCmd(e),
		newAccountCmd(e),
		newWorkCmd(e),
		newApproveCmd(e),
		newApproverCmd(e),
		newSignerCmd(e),
		newAuditCmd(e),
		newRelayCmd(e),
		newTokenCmd(e),
		newWalletCmd(e),
		newBridgeCmd(e),
	}
}
