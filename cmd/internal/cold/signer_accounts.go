package cold

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
)

type signerAccountsOptions struct {
	conn connectFlags
	json bool
}

func newSignerAccountsCmd(e *cli.Env) *cobra.Command {
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
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSignerAccounts(cmd.Context(), e, opts) },
	}
	opts.conn.register(cmd)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (one array)")
	return cmd
}

func runSignerAccounts(ctx context.Context, e *cli.Env, opts signerAccountsOptions) error {
	conn, err := opts.conn.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	client := pb.NewSignerClient(conn)
	if !opts.json {
		// The table keeps its text until every page is in (it aligns
		// the columns over all rows), as bytes, not as messages.
		// (tabwriter writes cell by cell: through a buffer, not a write
		// call each.)
		bw := bufio.NewWriterSize(e.Stdout, 64<<10)
		tw := newAccountTable(bw)
		if err := listSignerAccounts(ctx, client, func(page []*pb.AccountState) error {
			for _, st := range page {
				writeAccountLine(tw, accountRow(st))
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		return bw.Flush()
	}
	// JSON: each page printed as it comes, so that the command's memory
	// does not grow with the listing. A failure part way through leaves an
	// array without its closing bracket, which no JSON parser takes for a
	// whole listing.
	out := jsonArray{w: bufio.NewWriterSize(e.Stdout, 64<<10)}
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

// jsonArray writes a JSON array of accounts element by element, exactly
// as printJSON (json.Encoder with a two-space indent) writes the whole
// array (TestAccountJSONAsEncoder), without reflection for the common
// case: it is most of the command's time for 100,000 accounts.
type jsonArray struct {
	w   *bufio.Writer
	n   int
	buf []byte
}

func (a *jsonArray) add(r AccountStateJSON) error {
	b := a.buf[:0]
	if a.n == 0 {
		b = append(b, "[\n  {"...)
	} else {
		b = append(b, ",\n  {"...)
	}
	a.n++
	var err error
	field := func(name string, s string) {
		if err != nil {
			return
		}
		b = append(b, "\n    \""...)
		b = append(b, name...)
		b = append(b, "\": "...)
		if b, err = appendJSONString(b, s); err != nil {
			return
		}
		b = append(b, ',')
	}
	number := func(name string, v uint64) {
		b = append(b, "\n    \""...)
		b = append(b, name...)
		b = append(b, "\": "...)
		b = strconv.AppendUint(b, v, 10)
		b = append(b, ',')
	}
	field("account", r.Account)
	field("public_key", r.PublicKey)
	field("wallet", r.Wallet)
	number("index", uint64(r.Index))
	field("frontier", r.Frontier)
	field("balance_raw", r.BalanceRaw)
	number("height", r.Height)
	field("sent_24h_raw", r.Sent24hRaw)
	if r.Unconfirmed { // omitempty, as encoding/json writes it
		b = append(b, "\n    \"frontier_unconfirmed\": true,"...)
	}
	if err != nil {
		return err
	}
	b = append(b[:len(b)-1], "\n  }"...)
	a.buf = b
	_, err = a.w.Write(b) // a write error sticks: finish reports it
	return err
}

// appendJSONString appends s as encoding/json writes a string: plain
// printable ASCII as it is, anything else through encoding/json.
func appendJSONString(b []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			return append(b, q...), err
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
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
			return pageErr(RPCErr(err), page)
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
	var ce *cli.Error
	if errors.As(err, &ce) {
		return &cli.Error{Err: fmt.Errorf("listing page %d: %w", page, ce.Err), Hint: ce.Hint, Code: ce.Code}
	}
	return fmt.Errorf("listing page %d: %w", page, err)
}
