package cold

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/spf13/cobra"
)

type walletListOptions struct {
	token tokenFlags
	json  bool
}

func newWalletListCmd(e *cli.Env) *cobra.Command {
	var opts walletListOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the token's wallets (labels, ids, kinds; nothing secret)",
		Long: `Prints every nanokms wallet on the token: its label, kind (seed or bip39) and
wallet id. It reads only the sealed wallets' headers: nothing is unsealed.` + tokenFlagsHelp,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWalletList(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// walletEntry is one wallet in the --json output of wallet list.
type walletEntry struct {
	Label    string `json:"label"`
	WalletID string `json:"wallet_id"`
	Kind     string `json:"kind"`
	Scheme   string `json:"scheme"`
	// FormatVersion is the sealed blob's: 1 for wallets sealed before
	// seal schemes (read as ever), 2 since.
	FormatVersion int `json:"format_version"`
}

// walletListResult is the --json output of wallet list.
type walletListResult struct {
	Token   string        `json:"token"`
	Wallets []walletEntry `json:"wallets"`
}

func runWalletList(ctx context.Context, e *cli.Env, opts walletListOptions) error {
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	tok, err := tc.open(ctx)
	if err != nil {
		return err
	}
	defer tok.Close()
	infos, err := tok.ListWallets(ctx)
	if err != nil {
		return tc.explain(err)
	}
	res := walletListResult{Token: tc.label, Wallets: []walletEntry{}}
	for _, w := range infos {
		res.Wallets = append(res.Wallets, walletEntry{Label: w.Label, WalletID: w.ID.String(), Kind: w.Kind.String(), Scheme: w.Scheme.String(), FormatVersion: int(w.Version)})
	}
	if opts.json {
		return cli.PrintJSON(e.Stdout, res)
	}
	if len(res.Wallets) == 0 {
		fmt.Fprintf(e.Stdout, "no wallets on token %q\n", tc.label)
		return nil
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LABEL\tKIND\tWALLET ID")
	for _, w := range res.Wallets {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", w.Label, w.Kind, w.WalletID)
	}
	return tw.Flush()
}
