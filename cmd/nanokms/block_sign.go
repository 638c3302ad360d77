package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nanokms/nanokms/nano"
	"github.com/spf13/cobra"
)

type blockSignOptions struct {
	token      tokenFlags
	wallet     string
	index      string
	unverified bool
	file       string
}

// errSignNeedsUnverified is the refusal of block sign without --unverified.
const errSignNeedsUnverified = "block sign verifies templates against the head block only from the signer milestone on; pass --unverified to sign this template as it is"

func newBlockSignCmd(e *env) *cobra.Command {
	var opts blockSignOptions
	cmd := &cobra.Command{
		Use:   "sign --wallet W --index I --unverified [FILE]",
		Short: "Sign a block template with a token wallet's account (unverified for now)",
		Long: `Reads a state block template (any JSON form, see 'nanokms block hash'; its
signature and work may be absent) from FILE or standard input, checks that
the template's account is account --index of the token wallet --wallet
(refusing it otherwise), has the token sign the block's hash, and prints the
body of a node's "process" RPC for the signed block (with "json_block":
"true"), which 'nanokms block verify' and the node accept. The work is
copied from the template (zero if it had none): add it before publishing.

Nothing else about the template is checked: not its previous block, balance,
representative or link against the account's head block. That verification
comes with the signer milestone; until then block sign refuses to run
without --unverified, and with it prints a warning on standard error.` + tokenFlagsHelp,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.file = args[0]
			}
			return runBlockSign(cmd.Context(), e, opts)
		},
	}
	opts.token.register(cmd)
	cmd.Flags().StringVar(&opts.wallet, "wallet", "", "label of the wallet on the token")
	cmd.Flags().StringVar(&opts.index, "index", "", "account index, 0 to 4294967295")
	cmd.Flags().BoolVar(&opts.unverified, "unverified", false, "sign the template as it is, without checking it against the head block")
	return cmd
}

func runBlockSign(ctx context.Context, e *env, opts blockSignOptions) error {
	if !opts.unverified {
		return usageErr("%s", errSignNeedsUnverified)
	}
	if opts.wallet == "" {
		return usageErr("--wallet is required")
	}
	index, err := parseIndexFlag("--index", opts.index)
	if err != nil {
		return err
	}
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	pb, err := readBlock(e, opts.file)
	if err != nil {
		return err
	}
	block := pb.Block
	hash := block.Hash()
	if err := checkClaimedHash(pb, hash); err != nil {
		return err
	}
	tok, err := tc.open(ctx)
	if err != nil {
		return err
	}
	defer tok.Close()
	pub, err := tok.PublicKey(ctx, opts.wallet, index)
	if err != nil {
		return tc.explainWallet(err, opts.wallet)
	}
	if pub != block.Account {
		return withHint(fmt.Errorf("the template is for %s, but account %d of wallet %q is %s: not signed", block.Account.Address(), index, opts.wallet, pub.Address()),
			"a template is signed only by the account it names: check --wallet and --index")
	}
	fmt.Fprintf(e.stderr, "WARNING: signing WITHOUT verification: block %s was not checked against the head block of %s (previous, balance, representative, link)\n", hash, block.Account.Address())
	sig, err := tok.Sign(ctx, opts.wallet, index, hash)
	if err != nil {
		return tc.explainWallet(err, opts.wallet)
	}
	if !nano.Verify(pub, hash[:], sig) {
		return errors.New("the token's signature does not verify: not printed")
	}
	block.Signature = sig
	body, err := nano.ProcessRequest(&block, nano.SubtypeUnknown, true)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = e.stdout.Write(out.Bytes())
	return err
}
