package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

type tokenInitOptions struct {
	token     tokenFlags
	forBackup bool
	json      bool
}

func newTokenInitCmd(e *env) *cobra.Command {
	var opts tokenInitOptions
	cmd := &cobra.Command{
		Use:   "init [--for-backup]",
		Short: "Create the token's master key (refused if it has one)",
		Long: `Generates the token's master key on the token: AES-256, sensitive, never
extractable. It seals every wallet of the token. A token has one master key;
init refuses a token that already has one. Prints the key's check value,
which identifies the key without revealing it.

With --for-backup the key is made extractable, so that it can be copied to
backup tokens, and the token refuses to use it for wallets until the ceremony
is finished: 'nanokms token wrap-master' for every backup token, then
'nanokms token finish-backup', must follow. Without --for-backup the master
key can never be backed up.` + tokenFlagsHelp,
		Args: noArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTokenInit(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().BoolVar(&opts.forBackup, "for-backup", false, "make the key extractable for the backup ceremony ('token wrap-master', then 'token finish-backup', must follow)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runTokenInit(ctx context.Context, e *env, opts tokenInitOptions) error {
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	tok, err := tc.open(ctx)
	if err != nil {
		return err
	}
	defer tok.Close()
	if opts.forBackup {
		err = tok.CreateMasterKeyForBackup(ctx)
	} else {
		err = tok.CreateMasterKey(ctx)
	}
	if err != nil {
		return tc.explain(err)
	}
	info, err := tok.MasterKeyAttributes(ctx)
	if err != nil {
		return tc.explain(err)
	}
	res := newMasterKeyResult(tc.label, info)
	if opts.json {
		return printJSON(e.stdout, res)
	}
	printMasterKey(e, res)
	if opts.forBackup {
		fmt.Fprintln(e.stdout, "next:        on each backup token 'nanokms token transport-key', here 'nanokms token wrap-master' for each, then 'nanokms token finish-backup'")
	}
	return nil
}
