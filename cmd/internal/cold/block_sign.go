package cold

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/nano"
	"github.com/spf13/cobra"
)

type blockSignOptions struct {
	token      tokenFlags
	wallet     string
	index      string
	unverified bool
	file       string // the template (optional with --head/--intent)
	head       string
	intent     string
	source     string
	sourcePrev string
	yes        bool
	work       string // --work: 16 hex digits, or "-" for standard input
	workFile   string // --work-file: a file holding work generate's output
}

// errSignNeedsVerification is the refusal of block sign without the
// verification inputs.
const errSignNeedsVerification = "block sign needs --head and --intent to verify what it signs (or --unverified to sign a template as it is)"

func newBlockSignCmd(e *cli.Env) *cobra.Command {
	var opts blockSignOptions
	cmd := &cobra.Command{
		Use:   "sign --wallet W --index I --head FILE --intent FILE [--source F --source-previous F] [--work HEX|- | --work-file F] [TEMPLATE] [--yes]",
		Short: "Sign a verified block with a token wallet's account (the manual cold-wallet workflow)",
		Long: `The cold operator's manual workflow. Reads the account's head block (--head: a
block_info response or any JSON form 'nanokms block hash' reads; omit it only
to open an account) and the intent (--intent: its JSON form, as 'nanokms
client intent' writes it; the protobuf JSON form is read too); for a receive
also the source send block and the block before it (--source,
--source-previous). It runs the signer's verification:
the head's hash and signature, the source blocks' hashes and signatures and the
amount they sent, and builds the new block from the head and the intent (a
TEMPLATE, when given, must match it field by field, and be unsigned and
without work). It shows what it will sign
(kind, amount in XNO and raw, destination, representative, new balance) and
asks for confirmation on standard input unless --yes. Then the token signs and
the body of a node's "process" RPC is printed, ready to publish with
"json_block": "true" and the subtype.

--work HEX puts the proof of work in the block: 16 hex digits, checked
against the block's threshold (epoch 2: send and change fffffff800000000,
receive and open fffffe0000000000) over its root (the head's hash, or the
account's key for an open block) before anything is signed. --work - reads
it from standard input, and --work-file F from a file, in the form 'nanokms
work generate' prints it (text or --json; its root must be the block's) or
a node's work_generate response:

  nanokms work generate --root HEAD_HASH --subtype send |
    nanokms block sign ... --yes --work -

Without --work the block has work 0000000000000000, which no node accepts:
add the work before publishing.

There is no durable record here: the operator vouches that the head is the
account's current frontier, and policy and approvals are not applied. The
signer service ('nanokms signer') is the path that enforces both.

--unverified signs a TEMPLATE as it is, checking only that its account is
the wallet's key at --index, and says so loudly. Its subtype is unknown
there, so --work must meet the send/change threshold (the receive/open one
for an open block), and replaces the template's work.` + tokenFlagsHelp,
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
	cmd.Flags().StringVar(&opts.head, "head", "", "the account's head block (a block_info response or any block JSON)")
	cmd.Flags().StringVar(&opts.intent, "intent", "", "the intent (its JSON form, as 'nanokms client intent' writes it)")
	cmd.Flags().StringVar(&opts.source, "source", "", "receive: the source send block")
	cmd.Flags().StringVar(&opts.sourcePrev, "source-previous", "", "receive: the block before the source")
	cmd.Flags().BoolVar(&opts.yes, "yes", false, "sign without asking for confirmation")
	cmd.Flags().StringVar(&opts.work, "work", "", "the block's proof of work: 16 hex digits, or - to read what 'nanokms work generate' printed from standard input")
	cmd.Flags().StringVar(&opts.workFile, "work-file", "", "read the proof of work from this file ('nanokms work generate' output, text or JSON, or a node's work_generate response)")
	return cmd
}

func runBlockSign(ctx context.Context, e *cli.Env, opts blockSignOptions) error {
	if !opts.unverified {
		if opts.intent == "" {
			return cli.UsageErr("%s", errSignNeedsVerification)
		}
		return runBlockSignVerified(ctx, e, opts)
	}
	if opts.intent != "" || opts.head != "" {
		return cli.UsageErr("--unverified signs a template as it is: it takes no --head or --intent")
	}
	if opts.wallet == "" {
		return cli.UsageErr("--wallet is required")
	}
	index, err := parseIndexFlag("--index", opts.index)
	if err != nil {
		return err
	}
	if (opts.file == "" || opts.file == "-") && (opts.work == "-" || opts.workFile == "-") {
		return cli.UsageErr("standard input can carry the template or the work, not both")
	}
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	work, haveWork, err := readWorkFlags(e, opts)
	if err != nil {
		return err
	}
	pb, err := cli.ReadBlock(e, opts.file)
	if err != nil {
		return err
	}
	block := pb.Block
	if haveWork {
		threshold, what := nano.ThresholdSend, "a block of unknown subtype (without --head and --intent: the send/change threshold)"
		if block.IsOpen() {
			threshold, what = nano.SubtypeOpen.WorkThreshold(), "an open block"
		}
		if block.Work, err = checkWork(workFlagName(opts), work, &block, threshold, what); err != nil {
			return err
		}
	}
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
		return cli.WithHint(fmt.Errorf("the template is for %s, but account %d of wallet %q is %s: not signed", block.Account.Address(), index, opts.wallet, pub.Address()),
			"a template is signed only by the account it names: check --wallet and --index")
	}
	fmt.Fprintf(e.Stderr, "WARNING: signing WITHOUT verification: block %s was not checked against the head block of %s (previous, balance, representative, link)\n", hash, block.Account.Address())
	return signAndPrint(ctx, e, tc, tok, opts.wallet, index, block, nano.SubtypeUnknown)
}

// workFlagName is the flag that gives the work, for errors.
func workFlagName(opts blockSignOptions) string {
	if opts.workFile != "" {
		return "--work-file"
	}
	return "--work"
}

// readWorkFlags reads --work or --work-file, and reports whether one was
// given. A --work value that is not a nonce is a usage error.
func readWorkFlags(e *cli.Env, opts blockSignOptions) (workInput, bool, error) {
	switch {
	case opts.work != "" && opts.workFile != "":
		return workInput{}, false, cli.UsageErr("--work and --work-file are mutually exclusive")
	case opts.workFile != "":
		data, err := cli.ReadInput(e, opts.workFile)
		if err != nil {
			return workInput{}, false, fmt.Errorf("--work-file: %w", err)
		}
		in, err := parseWorkInput("--work-file", data)
		return in, err == nil, err
	case opts.work == "-":
		data, err := cli.ReadInput(e, "-")
		if err != nil {
			return workInput{}, false, fmt.Errorf("--work: %w", err)
		}
		in, err := parseWorkInput("--work", data)
		return in, err == nil, err
	case opts.work != "":
		in, err := parseWorkInput("--work", []byte(opts.work))
		if err != nil {
			return workInput{}, false, &cli.Error{Err: err, Code: cli.ExitUsage}
		}
		return in, true, nil
	}
	return workInput{}, false, nil
}

// signAndPrint has the token sign block (as account index of wallet),
// checks the signature, and prints the body of a node's "process" RPC.
func signAndPrint(ctx context.Context, e *cli.Env, tc *tokenConfig, tok *hsm.Token, wallet string, index uint32, block nano.StateBlock, subtype nano.Subtype) error {
	hash := block.Hash()
	sig, err := tok.Sign(ctx, wallet, index, hash)
	if err != nil {
		return tc.explainWallet(err, wallet)
	}
	if !nano.Verify(block.Account, hash[:], sig) {
		return errors.New("the token's signature does not verify: not printed")
	}
	block.Signature = sig
	body, err := nano.ProcessRequest(&block, subtype, true)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = e.Stdout.Write(out.Bytes())
	return err
}
