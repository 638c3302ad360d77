package cold

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
	"github.com/spf13/cobra"
)

// maxAccountList bounds account list --count.
const maxAccountList = 10000

type accountListOptions struct {
	token  tokenFlags
	wallet string
	from   string
	count  string
	json   bool
}

func newAccountListCmd(e *cli.Env) *cobra.Command {
	var opts accountListOptions
	cmd := &cobra.Command{
		Use:   "list --wallet W [--from I] [--count N]",
		Short: "Print the public keys and addresses of a token wallet's accounts",
		Long: `Prints the public keys and addresses of --count accounts (1 to 10000) of the
token wallet --wallet, from index --from. Nothing secret is printed: the
token unseals the wallet for each account, derives its key in locked memory
and wipes it.

With --json it prints a manifest that the hot side loads to know the
addresses it may ask the signer for:

  {
    "wallet": "W",
    "accounts": [
      {"index": I, "public_key": "64 uppercase hex digits", "account": "nano_…"},
      …
    ]
  }

with one entry per account, in index order; each entry is what 'nanokms
account derive --json' prints for that index of the same seed.` + tokenFlagsHelp,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAccountList(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().StringVar(&opts.wallet, "wallet", "", "label of the wallet on the token")
	cmd.Flags().StringVar(&opts.from, "from", "0", "first account index, 0 to 4294967295")
	cmd.Flags().StringVar(&opts.count, "count", "10", "number of accounts, 1 to "+strconv.Itoa(maxAccountList))
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the manifest as JSON")
	return cmd
}

// accountManifest is the --json output of account list.
type accountManifest struct {
	Wallet   string          `json:"wallet"`
	Accounts []accountResult `json:"accounts"`
}

func runAccountList(ctx context.Context, e *cli.Env, opts accountListOptions) error {
	if opts.wallet == "" {
		return cli.UsageErr("--wallet is required")
	}
	from, err := parseIndexFlag("--from", opts.from)
	if err != nil {
		return err
	}
	count, err := strconv.ParseUint(opts.count, 10, 32)
	if err != nil || count < 1 || count > maxAccountList {
		return cli.UsageErr("--count: want a whole number from 1 to %d", maxAccountList)
	}
	last := uint64(from) + count - 1
	if last > 1<<32-1 {
		return cli.UsageErr("--from %d --count %d goes past the last index, 4294967295", from, count)
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
	info, err := tok.Wallet(ctx, opts.wallet)
	if err != nil {
		return tc.explainWallet(err, opts.wallet)
	}
	if info.Kind == hsm.KindBIP39 && last >= 1<<31 {
		return cli.WithHint(fmt.Errorf("wallet %q is a BIP39 wallet: its account indexes are below 2147483648, and the list ends at %d", opts.wallet, last),
			"BIP39 accounts are hardened SLIP-0010 keys (m/44'/165'/i'): lower --from or --count")
	}
	res := accountManifest{Wallet: opts.wallet, Accounts: make([]accountResult, 0, count)}
	for i := uint64(from); i <= last; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		index := uint32(i)
		pub, err := tok.PublicKey(ctx, opts.wallet, index)
		if err != nil {
			return tc.explainWallet(err, opts.wallet)
		}
		res.Accounts = append(res.Accounts, accountResult{Index: &index, PublicKey: pub.String(), Account: pub.Address()})
	}
	if opts.json {
		return cli.PrintJSON(e.Stdout, res)
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tPUBLIC KEY\tACCOUNT")
	for _, a := range res.Accounts {
		fmt.Fprintf(tw, "%d\t%s\t%s\n", *a.Index, a.PublicKey, a.Account)
	}
	return tw.Flush()
}
