package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
(ListAccounts, docs/PROTOCOL.md); this command follows them. The table is
aligned over all rows, so it is printed once every page is in (nothing is
printed on an error). --json prints one JSON array (of the objects 'signer
adopt --json' prints) as the pages come; on an error part of the array may
have been printed, never its closing bracket, so it does not parse as a
listing. The exit status is 0 only for a whole listing.`,
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
	client := pb.NewSignerClient(conn)
	if !opts.json {
		// The table keeps its text until every page is in (it aligns
		// the columns over all rows), as bytes, not as messages.
		tw := newAccountTable(e.stdout)
		if err := listSignerAccounts(ctx, client, func(page []*pb.AccountState) error {
			for _, st := range page {
				writeAccountLine(tw, accountRow(st))
			}
			return nil
		}); err != nil {
			return err
		}
		return tw.Flush()
	}
	// JSON: each page printed as it comes, so that the command's memory
	// does not grow with the listing. A failure part way through leaves an
	// array without its closing bracket, which no JSON parser takes for a
	// whole listing.
	out := jsonArray{w: bufio.NewWriterSize(e.stdout, 64<<10)}
	if err := listSignerAccounts(ctx, client, func(page []*pb.AccountState) error {
		for _, st := range page {
			if err := out.add(accountRow(st)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return out.finish()
}

// jsonArray writes a JSON array element by element exactly as printJSON
// (json.Encoder with a two-space indent) writes the whole array.
type jsonArray struct {
	w *bufio.Writer
	n int
}

func (a *jsonArray) add(v any) error {
	el, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		return err
	}
	sep := ",\n  "
	if a.n == 0 {
		sep = "[\n  "
	}
	a.n++
	a.w.WriteString(sep)
	_, err = a.w.Write(el) // a write error sticks: finish reports it
	return err
}

// finish writes the end of the array and flushes.
func (a *jsonArray) finish() error {
	if a.n == 0 {
		a.w.WriteString("[]\n")
	} else {
		a.w.WriteString("\n]\n")
	}
	return a.w.Flush()
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
// checking that every account sorts after the one before, and gives each
// page to each.
func listSignerAccounts(ctx context.Context, c accountLister, each func([]*pb.AccountState) error) error {
	var (
		token string
		last  []byte
	)
	for page := 1; ; page++ {
		resp, err := c.ListAccounts(ctx, &pb.ListAccountsRequest{PageSize: signer.MaxPageSize, PageToken: token})
		if err != nil {
			return pageErr(rpcErr(err), page)
		}
		for _, st := range resp.GetAccounts() {
			if last != nil && bytes.Compare(st.GetAccount(), last) <= 0 {
				return fmt.Errorf("page %d: %w: %s after %X", page, errListingOrder, st.GetAddress(), last)
			}
			last = st.GetAccount()
		}
		if err := each(resp.GetAccounts()); err != nil {
			return err
		}
		if token = resp.GetNextPageToken(); token == "" {
			return nil
		}
		if len(resp.GetAccounts()) == 0 {
			return fmt.Errorf("page %d: %w: an empty page that is not the last", page, errListingOrder)
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
