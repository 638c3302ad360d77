package cold

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
)

type tokenInitOptions struct {
	token     tokenFlags
	forBackup bool
	scheme    string
	json      bool
}

func newTokenInitCmd(e *cli.Env) *cobra.Command {
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
key can never be backed up.

The seal scheme is chosen from what the token offers (it is probed, as
'nanokms token probe' shows): aes-256-gcm where the token has AES-GCM,
otherwise aes-256-cbc-pad+hmac-sha-256 (AES-256-CBC-PAD and an HMAC-SHA-256
key beside the master key, both generated on the token). --scheme asks for
one: a backup token of another kind must offer the primary's scheme. init
prints the scheme and the protective attributes the token does not
enforce, and where wallets will be kept.` + tokenFlagsHelp,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTokenInit(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().BoolVar(&opts.forBackup, "for-backup", false, "make the key extractable for the backup ceremony ('token wrap-master', then 'token finish-backup', must follow)")
	cmd.Flags().StringVar(&opts.scheme, "scheme", "", "seal scheme: aes-256-gcm or aes-256-cbc-pad+hmac-sha-256 (default: the token's best)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// tokenInitResult is the --json output of token init.
type tokenInitResult struct {
	masterKeyResult
	NotEnforced   []probeAttribute `json:"not_enforced"`
	WalletStorage probeStorage     `json:"wallet_storage"`
}

func runTokenInit(ctx context.Context, e *cli.Env, opts tokenInitOptions) error {
	var scheme hsm.SealScheme
	if opts.scheme != "" {
		s, err := hsm.ParseSealScheme(opts.scheme)
		if err != nil {
			return cli.UsageErr("--scheme: %s", pinReason(err))
		}
		scheme = s
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
	if opts.forBackup {
		err = tok.CreateMasterKeyForBackup(ctx, scheme)
	} else {
		err = tok.CreateMasterKey(ctx, scheme)
	}
	if err != nil {
		return tc.explain(err)
	}
	info, err := tok.MasterKeyAttributes(ctx)
	if err != nil {
		return tc.explain(err)
	}
	if _, err := tok.ProbeWalletStorage(ctx); err != nil {
		return tc.explain(err)
	}
	pr := newProbeResult(tok.Capabilities(), tok.WalletDir(), info.Scheme.String())
	res := tokenInitResult{masterKeyResult: newMasterKeyResult(tc.label, info), NotEnforced: []probeAttribute{}, WalletStorage: pr.WalletStorage}
	for _, a := range pr.Attributes {
		if !a.Enforced {
			res.NotEnforced = append(res.NotEnforced, a)
		}
	}
	if opts.json {
		return cli.PrintJSON(e.Stdout, res)
	}
	printMasterKey(e, res.masterKeyResult)
	fmt.Fprintf(e.Stdout, "not enforced: %s\n", pr.notEnforcedLine())
	fmt.Fprintf(e.Stdout, "wallets:     %s\n", pr.storageLine())
	if opts.forBackup {
		fmt.Fprintln(e.Stdout, "next:        on each backup token 'nanokms token transport-key', here 'nanokms token wrap-master' for each, then 'nanokms token finish-backup'")
	}
	return nil
}
