package cold

import (
	"context"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/spf13/cobra"
)

type walletCreateOptions struct {
	token tokenFlags
	label string
	json  bool
}

func newWalletCreateCmd(e *cli.Env) *cobra.Command {
	var opts walletCreateOptions
	cmd := &cobra.Command{
		Use:   "create LABEL",
		Short: "Create a wallet from a seed drawn from the token's random generator",
		Long: `Draws a 32-byte Nano seed from the token's random number generator and stores
it on the token under LABEL, sealed under the master key. The seed is never
printed and never leaves the token's seal. Prints the wallet's id and its
account 0. Labels are unique: a taken one is refused.` + tokenFlagsHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.label = args[0]
			return runWalletCreate(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runWalletCreate(ctx context.Context, e *cli.Env, opts walletCreateOptions) error {
	if err := checkWalletLabel(opts.label); err != nil {
		return err
	}
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	tok, err := tc.open(ctx)
	if err != nil {
		return err
	}
	defer tok.Close()
	info, err := tok.CreateWallet(ctx, opts.label)
	if err != nil {
		return tc.explainWallet(err, opts.label)
	}
	return reportWallet(ctx, e, tc, tok, info, opts.json)
}
