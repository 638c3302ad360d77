package cold

import (
	"context"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/nano"
	"github.com/spf13/cobra"
)

type blockVerifyOptions struct {
	file      string
	threshold thresholdFlags
	json      bool
}

func newBlockVerifyCmd(e *cli.Env) *cobra.Command {
	var opts blockVerifyOptions
	cmd := &cobra.Command{
		Use:   "verify [FILE]",
		Short: "Check a state block's signature and work",
		Long: `Reads a state block (any JSON form, see 'nanokms block hash') from FILE or
standard input and prints its hash, account, whether its signature is valid
for its account, and its work value. With --threshold or --subtype it also
says whether the work meets that threshold. Exits 0 only if the signature is
valid (and, when a threshold was asked, the work meets it).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.file = args[0]
			}
			return runBlockVerify(cmd.Context(), e, opts)
		},
	}
	opts.threshold.register(cmd, false)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

// blockVerifyResult is the --json output of block verify.
type blockVerifyResult struct {
	Hash           string `json:"hash"`
	Account        string `json:"account"`
	PublicKey      string `json:"public_key"`
	SignatureValid bool   `json:"signature_valid"`
	WorkValue      string `json:"work_value"`
	WorkThreshold  string `json:"work_threshold,omitempty"`
	WorkValid      *bool  `json:"work_valid,omitempty"`
}

func runBlockVerify(_ context.Context, e *cli.Env, opts blockVerifyOptions) error {
	threshold, haveThreshold, err := opts.threshold.resolve()
	if err != nil {
		return err
	}
	pb, err := cli.ReadBlock(e, opts.file)
	if err != nil {
		return err
	}
	b := &pb.Block
	h := b.Hash()
	res := blockVerifyResult{
		Hash:           h.String(),
		Account:        b.Account.Address(),
		PublicKey:      b.Account.String(),
		SignatureValid: nano.Verify(b.Account, h[:], b.Signature),
		WorkValue:      fmt.Sprintf("%016X", b.WorkValue()),
	}
	ok := res.SignatureValid
	if haveThreshold {
		valid := b.Validate(threshold)
		res.WorkThreshold = fmt.Sprintf("%016X", threshold)
		res.WorkValid = &valid
		ok = ok && valid
	}
	if opts.json {
		if err := cli.PrintJSON(e.Stdout, res); err != nil {
			return err
		}
	} else {
		w := e.Stdout
		fmt.Fprintf(w, "hash:       %s\n", res.Hash)
		fmt.Fprintf(w, "account:    %s\n", res.Account)
		fmt.Fprintf(w, "signature:  %s\n", validWord(res.SignatureValid))
		fmt.Fprintf(w, "work value: %s\n", res.WorkValue)
		if res.WorkValid != nil {
			fmt.Fprintf(w, "work:       %s (threshold %s)\n", meetsWord(*res.WorkValid), res.WorkThreshold)
		}
	}
	if err := checkClaimedHash(pb, h); err != nil {
		return err
	}
	if !ok {
		return cli.ErrCheckFailed
	}
	return nil
}

func validWord(ok bool) string {
	if ok {
		return "valid"
	}
	return "INVALID"
}

func meetsWord(ok bool) string {
	if ok {
		return "meets the threshold"
	}
	return "BELOW the threshold"
}
