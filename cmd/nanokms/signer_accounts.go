package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
)

type signerAccountsOptions struct {
	conn connectFlags
	json bool
}

func newSignerAccountsCmd(e *env) *cobra.Command {
	var opts signerAccountsOptions
	cmd := &cobra.Command{
		Use:   "accounts",
		Short: "List the accounts a running signer tracks, with frontier and balance",
		Long: `Lists every account the running signer tracks, ordered by address, with its
wallet, index, balance, height and frontier. The signer answers in pages
(ListAccounts, docs/PROTOCOL.md); this command follows them and prints
nothing until it has every page, so the output is the whole listing or,
on an error, nothing: the table is aligned over all rows, and --json prints
one JSON array.`,
		Args: noArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSignerAccounts(cmd.Context(), e, opts) },
	}
	opts.conn.register(cmd)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (one array)")
	return cmd
}

func runSignerAccounts(ctx context.Context, e *env, opts signerAccountsOptions) error {
	conn, err := opts.conn.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	rows, err := listSignerAccounts(ctx, pb.NewSignerClient(conn))
	if err != nil {
		return err
	}
	return printAccountRows(e, rows, opts.json)
}

// accountLister is the call listSignerAccounts makes.
type accountLister interface {
	ListAccounts(ctx context.Context, in *pb.ListAccountsRequest, opts ...grpc.CallOption) (*pb.ListAccountsResponse, error)
}

// errListingOrder is returned when a signer's pages do not go forwards:
// an account that does not sort after the one before it. Following such
// pages could loop for ever.
var errListingOrder = errors.New("the signer's listing does not go forwards")

// listSignerAccounts follows the signer's pages of accounts to the last,
// checking that every account sorts after the one before.
func listSignerAccounts(ctx context.Context, c accountLister) ([]accountStateJSON, error) {
	var (
		rows  []accountStateJSON
		token string
		last  []byte
	)
	for page := 1; ; page++ {
		resp, err := c.ListAccounts(ctx, &pb.ListAccountsRequest{PageSize: signer.MaxPageSize, PageToken: token})
		if err != nil {
			return nil, pageErr(rpcErr(err), page)
		}
		for _, st := range resp.GetAccounts() {
			if last != nil && bytes.Compare(st.GetAccount(), last) <= 0 {
				return nil, fmt.Errorf("page %d: %w: %s after %X", page, errListingOrder, st.GetAddress(), last)
			}
			last = st.GetAccount()
		}
		rows = appendAccountRows(rows, resp.GetAccounts())
		if token = resp.GetNextPageToken(); token == "" {
			return rows, nil
		}
		if len(resp.GetAccounts()) == 0 {
			return nil, fmt.Errorf("page %d: %w: an empty page that is not the last", page, errListingOrder)
		}
	}
}

// pageErr says which page failed, after the first, keeping err's hint.
func pageErr(err error, page int) error {
	if page == 1 {
		return err
	}
	var ce *cliError
	if errors.As(err, &ce) {
		return &cliError{err: fmt.Errorf("listing page %d: %w", page, ce.err), hint: ce.hint, code: ce.code}
	}
	return fmt.Errorf("listing page %d: %w", page, err)
}
