package cold

import (
	"context"
	"errors"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
	"github.com/spf13/cobra"
)

type tokenImportMasterOptions struct {
	token tokenFlags
	file  string
	json  bool
}

func newTokenImportMasterCmd(e *cli.Env) *cobra.Command {
	var opts tokenImportMasterOptions
	cmd := &cobra.Command{
		Use:   "import-master PKG",
		Short: "Backup token: import the master key from a package",
		Long: `The last step of the backup ceremony, on a backup token: unwraps the package
that 'nanokms token wrap-master' wrote (PKG, or - for standard input) with
the token's transport key, as a sensitive, non-extractable master key. The
token recomputes the key's check value and refuses the key unless it equals
the primary's; the transport key is then destroyed. Prints the check value:
compare it with the primary's.` + tokenFlagsHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.file = args[0]
			return runTokenImportMaster(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runTokenImportMaster(ctx context.Context, e *cli.Env, opts tokenImportMasterOptions) error {
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	pkg, err := cli.ReadInput(e, opts.file)
	if err != nil {
		return err
	}
	tok, err := tc.open(ctx)
	if err != nil {
		return err
	}
	defer tok.Close()
	switch err := tok.ImportMasterKey(ctx, pkg); {
	case err == nil:
	case errors.Is(err, hsm.ErrBadBlob):
		return cli.WithHint(fmt.Errorf("the package is not a valid master-key package: %s", trimHSM(err)),
			"give the file that 'nanokms token wrap-master' wrote for this token, unchanged")
	case errors.Is(err, hsm.ErrWrongMasterKey):
		return cli.WithHint(fmt.Errorf("the unwrapped key is not the primary's: %s", trimHSM(err)),
			"the package was damaged or altered: nothing was imported; wrap the master key again on the primary")
	default:
		return tc.explain(err)
	}
	info, err := tok.MasterKeyAttributes(ctx)
	if err != nil {
		return tc.explain(err)
	}
	res := newMasterKeyResult(tc.label, info)
	if opts.json {
		return cli.PrintJSON(e.Stdout, res)
	}
	printMasterKey(e, res)
	fmt.Fprintln(e.Stdout, "next:        compare the check value with the primary's; restore wallets here with 'nanokms wallet restore'")
	return nil
}
