package cold

import (
	"context"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/nano"
	"github.com/spf13/cobra"
)

type accountDecodeOptions struct {
	address string
	json    bool
}

func newAccountDecodeCmd(e *cli.Env) *cobra.Command {
	var opts accountDecodeOptions
	cmd := &cobra.Command{
		Use:   "decode ADDRESS",
		Short: "Print the public key of a nano_ (or xrb_) address, or what is wrong with it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.address = args[0]
			return runAccountDecode(cmd.Context(), e, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runAccountDecode(_ context.Context, e *cli.Env, opts accountDecodeOptions) error {
	pub, err := nano.ParseAddress(opts.address)
	if err != nil {
		return cli.WithHint(err, "an address is nano_ (or xrb_) followed by 60 characters of 13456789abcdefghijkmnopqrstuwxyz")
	}
	res := accountResult{PublicKey: pub.String(), Account: pub.Address()}
	if opts.json {
		return cli.PrintJSON(e.Stdout, res)
	}
	fmt.Fprintf(e.Stdout, "public key: %s\naccount:    %s\n", res.PublicKey, res.Account)
	return nil
}
