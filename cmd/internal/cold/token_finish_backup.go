package cold

import (
	"context"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/spf13/cobra"
)

type tokenFinishBackupOptions struct {
	token tokenFlags
	json  bool
}

func newTokenFinishBackupCmd(e *cli.Env) *cobra.Command {
	var opts tokenFinishBackupOptions
	cmd := &cobra.Command{
		Use:   "finish-backup",
		Short: "Primary: end the backup ceremony (the master key is never extractable again)",
		Long: `Ends the backup ceremony on the primary: turns the master key's extractable
attribute off, which PKCS#11 never lets anyone turn back on. From then on the
key can never be wrapped for another backup token, and the token accepts it
for wallets. Prints the master key's attributes and check value. On a key
that is already not extractable it changes nothing.` + tokenFlagsHelp,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTokenFinishBackup(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runTokenFinishBackup(ctx context.Context, e *cli.Env, opts tokenFinishBackupOptions) error {
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	tok, err := tc.open(ctx)
	if err != nil {
		return err
	}
	defer tok.Close()
	before, err := tok.MasterKeyAttributes(ctx)
	if err != nil {
		return tc.explain(err)
	}
	if err := tok.FinishMasterKeyBackup(ctx); err != nil {
		return tc.explain(err)
	}
	info, err := tok.MasterKeyAttributes(ctx)
	if err != nil {
		return tc.explain(err)
	}
	if info.Extractable {
		return fmt.Errorf("token %q still reports the master key as extractable", tc.label)
	}
	res := newMasterKeyResult(tc.label, info)
	if opts.json {
		return cli.PrintJSON(e.Stdout, res)
	}
	printMasterKey(e, res)
	if before.Extractable {
		fmt.Fprintln(e.Stdout, "finished:    the master key can never be wrapped again; the token now accepts it for wallets")
	} else {
		fmt.Fprintln(e.Stdout, "finished:    already (the master key was not extractable); nothing changed")
	}
	return nil
}
