package cold

import (
	"context"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
	"github.com/spf13/cobra"
)

// newWalletCmd groups the wallet subcommands.
func newWalletCmd(e *cli.Env) *cobra.Command {
	cmd := cli.NewGroup("wallet", "Create, import, list, export and restore sealed wallets")
	cmd.Long = `A wallet is a Nano seed (or the BIP39 seed of a mnemonic) stored on the token,
sealed under its master key. Secrets are read only from files or standard
input, never from the command line, and never printed; exports are
ciphertext that only a token holding the same master key can open.`
	cmd.AddCommand(
		newWalletCreateCmd(e),
		newWalletImportCmd(e),
		newWalletListCmd(e),
		newWalletExportCmd(e),
		newWalletRestoreCmd(e),
	)
	return cmd
}

// walletResult is the --json output of wallet create, import and restore.
type walletResult struct {
	Token        string         `json:"token"`
	Label        string         `json:"label"`
	WalletID     string         `json:"wallet_id"`
	Kind         string         `json:"kind"`
	FirstAccount *accountResult `json:"first_account"`
}

// reportWallet prints a wallet just stored, with its account 0 so that
// operators can compare it with what they expect (or with another token).
func reportWallet(ctx context.Context, e *cli.Env, tc *tokenConfig, tok *hsm.Token, info hsm.WalletInfo, asJSON bool) error {
	pub, err := tok.PublicKey(ctx, info.Label, 0)
	if err != nil {
		return tc.explainWallet(err, info.Label)
	}
	var zero uint32
	res := walletResult{
		Token:        tc.label,
		Label:        info.Label,
		WalletID:     info.ID.String(),
		Kind:         info.Kind.String(),
		FirstAccount: &accountResult{Index: &zero, PublicKey: pub.String(), Account: pub.Address()},
	}
	if asJSON {
		return cli.PrintJSON(e.Stdout, res)
	}
	fmt.Fprintf(e.Stdout, "token:      %s\n", res.Token)
	fmt.Fprintf(e.Stdout, "wallet:     %s\n", res.Label)
	fmt.Fprintf(e.Stdout, "wallet id:  %s\n", res.WalletID)
	fmt.Fprintf(e.Stdout, "kind:       %s\n", res.Kind)
	fmt.Fprintf(e.Stdout, "account 0:  %s\n", res.FirstAccount.Account)
	return nil
}
