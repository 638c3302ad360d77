package cold

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/signer"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// runBlockSignVerified is block sign's verified path: build the block from
// the head and the intent, show it, confirm, sign.
func runBlockSignVerified(ctx context.Context, e *cli.Env, opts blockSignOptions) error {
	if opts.wallet == "" {
		return cli.UsageErr("--wallet is required")
	}
	index, err := parseIndexFlag("--index", opts.index)
	if err != nil {
		return err
	}
	fromStdin := 0
	for _, f := range []string{opts.intent, opts.head, opts.source, opts.sourcePrev, opts.work, opts.workFile} {
		if f == "-" {
			fromStdin++
		}
	}
	if opts.file == "-" {
		fromStdin++
	}
	if fromStdin > 1 || (fromStdin == 1 && !opts.yes) {
		return cli.UsageErr("standard input can carry one file, and only with --yes (the confirmation is read from it)")
	}
	tc, err := opts.token.resolve()
	if err != nil {
		return err
	}
	work, haveWork, err := readWorkFlags(e, opts)
	if err != nil {
		return err
	}
	data, err := cli.ReadInput(e, opts.intent)
	if err != nil {
		return err
	}
	in, err := intent.UnmarshalJSON(data)
	if err != nil {
		return cli.WithHint(fmt.Errorf("--intent: %w", err), intentHint)
	}
	parsed, err := intent.Parse(in)
	if err != nil {
		return fmt.Errorf("--intent: %w", err)
	}
	optBlock := func(flag, file string) (*nano.StateBlock, error) {
		if file == "" {
			return nil, nil
		}
		b, err := cli.ReadBlock(e, file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		if err := checkClaimedHash(b, b.Block.Hash()); err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		return &b.Block, nil
	}
	head, err := optBlock("--head", opts.head)
	if err != nil {
		return err
	}
	source, err := optBlock("--source", opts.source)
	if err != nil {
		return err
	}
	sourcePrev, err := optBlock("--source-previous", opts.sourcePrev)
	if err != nil {
		return err
	}
	template, err := optBlock("template", opts.file)
	if err != nil {
		return err
	}
	block, subtype, err := signer.BuildFromHead(&parsed, head, source, sourcePrev, template, nil)
	if err != nil {
		var r *signerapi.Refusal
		if errors.As(err, &r) {
			return fmt.Errorf("refused: %s: %s", signerapi.ReasonName(r.Reason), r.Detail)
		}
		return err
	}
	if haveWork {
		what := "a " + subtype.String() + " block"
		if subtype == nano.SubtypeOpen {
			what = "an open block"
		}
		if block.Work, err = checkWork(workFlagName(opts), work, &block, subtype.WorkThreshold(), what); err != nil {
			return err
		}
	}
	hash := block.Hash()

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
		return cli.WithHint(fmt.Errorf("the intent is for %s, but account %d of wallet %q is %s: not signed", block.Account.Address(), index, opts.wallet, pub.Address()),
			"check --wallet and --index")
	}

	w := e.Stderr
	fmt.Fprintf(w, "About to sign a %s block for %s (wallet %q, index %d):\n", strings.ToUpper(subtype.String()), block.Account.Address(), opts.wallet, index)
	switch subtype {
	case nano.SubtypeSend:
		fmt.Fprintf(w, "  amount:         %s XNO (%s raw)\n  destination:    %s\n", parsed.Amount.XNO(), parsed.Amount, nano.PublicKey(block.Link).Address())
	case nano.SubtypeReceive, nano.SubtypeOpen:
		fmt.Fprintf(w, "  amount:         %s XNO (%s raw)\n  source:         %s\n", parsed.Amount.XNO(), parsed.Amount, block.Link)
	}
	fmt.Fprintf(w, "  representative: %s\n  previous:       %s\n  new balance:    %s XNO (%s raw)\n  block hash:     %s\n",
		block.Representative.Address(), block.Previous, block.Balance.XNO(), block.Balance, hash)
	if haveWork {
		fmt.Fprintf(w, "  work:           %s (value %016X, threshold %016X)\n", block.Work, block.WorkValue(), subtype.WorkThreshold())
	} else {
		fmt.Fprintf(w, "  work:           none (0000000000000000: add it before publishing, or sign with --work)\n")
	}
	if !opts.yes {
		fmt.Fprint(w, "Type yes to sign: ")
		line, _ := bufio.NewReader(e.Stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return errors.New("not confirmed: nothing was signed")
		}
	}
	return signAndPrint(ctx, e, tc, tok, opts.wallet, index, block, subtype)
}
