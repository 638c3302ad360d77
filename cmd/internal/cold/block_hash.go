package cold

import (
	"context"
	"fmt"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/nano"
	"github.com/spf13/cobra"
)

type blockHashOptions struct {
	file string
	json bool
}

func newBlockHashCmd(e *cli.Env) *cobra.Command {
	var opts blockHashOptions
	cmd := &cobra.Command{
		Use:   "hash [FILE]",
		Short: "Print a state block's hash, computed from its contents",
		Long: `Reads a state block in any JSON form a node prints (a bare block, an RPC
response with "contents", a block_create or process document, a WebSocket
notification, an HTTP callback body) from FILE or standard input, and prints
its hash as 64 uppercase hex digits. When the document also states a hash,
the two must agree.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.file = args[0]
			}
			return runBlockHash(cmd.Context(), e, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runBlockHash(_ context.Context, e *cli.Env, opts blockHashOptions) error {
	pb, err := cli.ReadBlock(e, opts.file)
	if err != nil {
		return err
	}
	h := pb.Block.Hash()
	if err := checkClaimedHash(pb, h); err != nil {
		return err
	}
	if opts.json {
		if err := cli.PrintJSON(e.Stdout, map[string]string{"hash": h.String()}); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(e.Stdout, h)
	}
	return nil
}

// checkClaimedHash refuses a document whose stated hash is not the hash
// of its contents.
func checkClaimedHash(pb nano.ParsedBlock, h nano.Hash) error {
	if pb.HasClaimedHash && pb.ClaimedHash != h {
		return cli.WithHint(fmt.Errorf("the document claims hash %s but its contents hash to %s", pb.ClaimedHash, h),
			"the block was altered, or the hash field belongs to another block: do not trust this document")
	}
	return nil
}
