package cold

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/nano"
	"github.com/spf13/cobra"
)

type accountDeriveOptions struct {
	seedFile string
	index    string
	json     bool
}

func newAccountDeriveCmd(e *cli.Env) *cobra.Command {
	var opts accountDeriveOptions
	cmd := &cobra.Command{
		Use:   "derive --seed-file F --index N",
		Short: "Print the public key and address of a seed's account (never the private key)",
		Long: `Reads a 64-hex-digit seed from --seed-file (or standard input with
--seed-file -) and prints the public key and address of account N. The seed
is never taken from the command line and nothing secret is printed.`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAccountDerive(cmd.Context(), e, opts)
		},
	}
	cmd.Flags().StringVar(&opts.seedFile, "seed-file", "", "file holding the seed as 64 hex digits, or - for standard input")
	cmd.Flags().StringVar(&opts.index, "index", "", "account index, 0 to 4294967295")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runAccountDerive(_ context.Context, e *cli.Env, opts accountDeriveOptions) error {
	if opts.seedFile == "" {
		return cli.UsageErr("--seed-file is required")
	}
	if opts.index == "" {
		return cli.UsageErr("--index is required")
	}
	idx, err := strconv.ParseUint(opts.index, 10, 32)
	if err != nil {
		return cli.UsageErr("--index: want a whole number from 0 to 4294967295")
	}
	index := uint32(idx)
	data, err := cli.ReadSecretInput(e, "--seed-file", opts.seedFile)
	if err != nil {
		return err
	}
	seed, err := nano.ParseSeedBytes(data)
	clear(data)
	if err != nil {
		return cli.WithHint(fmt.Errorf("--seed-file: %w", err), "the file must hold exactly 64 hex digits (a trailing newline is fine)")
	}
	priv := nano.DeriveKey(&seed, index)
	seed.Wipe()
	pub := priv.PublicKey()
	priv.Wipe()
	res := accountResult{Index: &index, PublicKey: pub.String(), Account: pub.Address()}
	if opts.json {
		return cli.PrintJSON(e.Stdout, res)
	}
	fmt.Fprintf(e.Stdout, "index:      %d\npublic key: %s\naccount:    %s\n", index, res.PublicKey, res.Account)
	return nil
}
