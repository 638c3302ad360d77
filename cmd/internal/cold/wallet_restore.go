package cold

import (
	"context"
	"errors"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
	"github.com/spf13/cobra"
)

type walletRestoreOptions struct {
	token tokenFlags
	label string
	file  string
	json  bool
}

func newWalletRestoreCmd(e *cli.Env) *cobra.Command {
	var opts walletRestoreOptions
	cmd := &cobra.Command{
		Use:   "restore LABEL FILE",
		Short: "Store a wallet export on this token (same master key only)",
		Long: `Stores the wallet that 'nanokms wallet export' wrote to FILE (or - for
standard input) on this token under LABEL, unchanged. The token must hold the
same master key as the one that exported it (the check values must agree),
and the sealed wallet must pass its integrity check here: an export that was
altered, or made under another master key, is refused. A taken label, or a
wallet already stored under another label, is refused. Prints the wallet's id
and its account 0: compare it with the other token's.` + tokenFlagsHelp,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.label, opts.file = args[0], args[1]
			return runWalletRestore(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runWalletRestore(ctx context.Context, e *cli.Env, opts walletRestoreOptions) error {
	if err := checkWalletLabel(opts.label); err != nil {
		return err
	}
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	doc, err := cli.ReadInput(e, opts.file)
	if err != nil {
		return err
	}
	tok, err := tc.open(ctx)
	if err != nil {
		return err
	}
	defer tok.Close()
	info, err := tok.RestoreWallet(ctx, opts.label, doc)
	switch {
	case err == nil:
	case errors.Is(err, hsm.ErrBadBlob):
		return cli.WithHint(fmt.Errorf("the file is not a valid wallet export: %s", trimHSM(err)),
			"give the file that 'nanokms wallet export' wrote, unchanged")
	case errors.Is(err, hsm.ErrWrongMasterKey):
		return cli.WithHint(fmt.Errorf("the export was sealed under another master key than token %q holds: %s", tc.label, trimHSM(err)),
			"restore it on a token holding the same master key (a backup token of the same ceremony): the check values must agree")
	case errors.Is(err, hsm.ErrWalletExists):
		if _, werr := tok.Wallet(ctx, opts.label); werr == nil {
			return cli.WithHint(fmt.Errorf("a wallet labelled %q already exists on token %q", opts.label, tc.label),
				"wallet labels are unique and nanokms never replaces a wallet: choose another label")
		}
		return cli.WithHint(fmt.Errorf("this wallet is already on token %q under another label: %s", tc.label, trimHSM(err)),
			"a wallet is stored once per token: nothing to restore")
	default:
		return tc.explainWallet(err, opts.label)
	}
	return reportWallet(ctx, e, tc, tok, info, opts.json)
}
