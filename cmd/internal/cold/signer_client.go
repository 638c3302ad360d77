package cold

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// connectFlags name a running signer: --connect unix:///path, or --config F
// whose signer.listen is a Unix socket.
type connectFlags struct {
	connect string
	config  string
}

func (c *connectFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.connect, "connect", "", "the signer's socket, unix:///path")
	cmd.Flags().StringVar(&c.config, "config", "", "the signer's configuration file (its signer.listen is used)")
}

// dial connects to the signer over its Unix socket.
func (c *connectFlags) dial() (*grpc.ClientConn, error) {
	target := c.connect
	if target == "" && c.config != "" {
		cfg, err := loadSignerConfig(c.config)
		if err != nil {
			return nil, err
		}
		target = cfg.Signer.Listen
	}
	if target == "" {
		return nil, cli.UsageErr("one of --connect or --config is required")
	}
	if !strings.HasPrefix(target, "unix://") {
		return nil, cli.UsageErr("only a unix:// signer socket can be reached from the cold host's shell (got %q)", target)
	}
	return grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// RPCErr turns a signer status into a CLI error, keeping its reason: a
// refusal says so with its reason and detail; any other failure says what
// failed, chosen by the status code (never by the message's text), with a
// hint for that code.
func RPCErr(err error) error {
	st := status.Convert(err)
	if r, ok := signerapi.RefusalFromStatus(st); ok {
		return fmt.Errorf("the signer refused: %s: %s", signerapi.ReasonName(r.Reason), r.Detail)
	}
	if signerapi.IsStoreFull(st) {
		return cli.WithHint(fmt.Errorf("signer: %s", st.Message()),
			"free space on the file system of the signer's state file (signer.state); the signer resumes by itself, without a restart")
	}
	if signerapi.IsStoreUnavailable(st) {
		// The message names the signer already.
		return cli.WithHint(errors.New(st.Message()),
			"the signer's state database (PostgreSQL) is unreachable: check it and the network to it; resend the request, to this or another signer, once it answers")
	}
	if signerapi.IsTokenUnavailable(st) {
		return cli.WithHint(fmt.Errorf("signer: %s", st.Message()),
			"the signer's token went away (removed, its store renamed, hidden or emptied, its connection lost): bring it back; the signer reconnects by itself unless its log says the PIN was refused")
	}
	what, hint := rpcFailureHint(st.Code())
	if what != "" {
		return cli.WithHint(fmt.Errorf("signer: %s: %s", what, st.Message()), hint)
	}
	return cli.WithHint(fmt.Errorf("signer: %s", st.Message()), hint)
}

// rpcFailureHint says, for a failed call's status code, what failed (""
// where the message says it) and what to do.
func rpcFailureHint(c codes.Code) (what, hint string) {
	switch c {
	case codes.Unavailable:
		return "", "is the signer running? check its log"
	case codes.ResourceExhausted:
		return "out of room", "an answer over gRPC's 4 MiB limit comes from a signer older than this command (upgrade it); a full state store is in the signer's log"
	case codes.DeadlineExceeded:
		return "no answer in time", "the signer is busy or stuck: check its log and its host's load"
	case codes.Canceled:
		return "cancelled", "the command was interrupted"
	case codes.Unimplemented:
		return "not offered by this signer", "the signer and this command are of different versions: run the same release on both"
	case codes.Unauthenticated, codes.PermissionDenied:
		return "not allowed", "check that this user may use the signer's socket"
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return "request refused", "this command and the signer disagree on the protocol: run the same release on both"
	case codes.Internal, codes.DataLoss:
		return "internal error", "the signer's log says what failed"
	}
	return "", "check the signer's log"
}

type signerAdoptOptions struct {
	conn     connectFlags
	wallet   string
	index    uint32
	headFile string
	chain    []string
	height   uint64
	json     bool
}

func newSignerAdoptCmd(e *cli.Env) *cobra.Command {
	var opts signerAdoptOptions
	cmd := &cobra.Command{
		Use:   "adopt --wallet W --index I [--head FILE [--chain FILE]...] [--height N]",
		Short: "Start tracking an account on a running signer, or re-adopt a restored one",
		Long: `Asks the running signer to start tracking account I of wallet W. For an
account that already has blocks, --head FILE is its current head block (any
JSON form, e.g. a block_info response) and must be signed by the account; the
signer records it as the frontier. Without --head the account is tracked as
unopened.

An account whose frontier is unconfirmed (restored from a backup into a lost
state: 'signer restore') is re-adopted the same way, from its current head as
the network has it (block_info of account_info's frontier, checked on several
nodes): the head must be the restored frontier itself, or be built on it
through the blocks given with --chain, oldest first (one --chain per block,
each signed by the account; block_info of each). The signer checks every
signature and link, moves the account's record to the head and signs for it
again. Without --head, an account restored unopened is confirmed unopened.`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSignerAdopt(cmd.Context(), e, opts) },
	}
	opts.conn.register(cmd)
	cmd.Flags().StringVar(&opts.wallet, "wallet", "", "wallet label")
	cmd.Flags().Uint32Var(&opts.index, "index", 0, "account index")
	cmd.Flags().StringVar(&opts.headFile, "head", "", "the account's current head block (omit for an unopened account)")
	cmd.Flags().StringArrayVar(&opts.chain, "chain", nil, "re-adoption: a block between the restored frontier and --head, oldest first (repeat)")
	cmd.Flags().Uint64Var(&opts.height, "height", 0, "the head's height, if known")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runSignerAdopt(ctx context.Context, e *cli.Env, opts signerAdoptOptions) error {
	if opts.wallet == "" {
		return cli.UsageErr("--wallet is required")
	}
	req := &pb.AdoptAccountRequest{Wallet: opts.wallet, Index: opts.index, Height: opts.height}
	if opts.headFile != "" {
		pb0, err := cli.ReadBlock(e, opts.headFile)
		if err != nil {
			return err
		}
		req.Head = pb.BlockFromNano(&pb0.Block)
	}
	if len(opts.chain) > 0 && opts.headFile == "" {
		return cli.UsageErr("--chain needs --head")
	}
	for i, f := range opts.chain {
		b, err := cli.ReadBlock(e, f)
		if err != nil {
			return fmt.Errorf("--chain %s (block %d): %w", f, i, err)
		}
		req.Chain = append(req.Chain, pb.BlockFromNano(&b.Block))
	}
	conn, err := opts.conn.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := pb.NewSignerClient(conn).AdoptAccount(ctx, req)
	if err != nil {
		return RPCErr(err)
	}
	return printAccountStates(e, []*pb.AccountState{st}, opts.json)
}

// AccountStateJSON is the --json form of an account the signer tracks
// (signer adopt, signer accounts), as scripts and the dev tools read it.
type AccountStateJSON struct {
	Account    string `json:"account"`
	PublicKey  string `json:"public_key"`
	Wallet     string `json:"wallet"`
	Index      uint32 `json:"index"`
	Frontier   string `json:"frontier"`
	BalanceRaw string `json:"balance_raw"`
	Height     uint64 `json:"height"`
	Sent24hRaw string `json:"sent_24h_raw"`
	// Unconfirmed: restored from a backup and not yet re-adopted.
	Unconfirmed bool `json:"frontier_unconfirmed,omitempty"`
}

func printAccountStates(e *cli.Env, states []*pb.AccountState, asJSON bool) error {
	return printAccountRows(e, appendAccountRows(nil, states), asJSON)
}

// appendAccountRows appends the printed forms of states to rows.
func appendAccountRows(rows []AccountStateJSON, states []*pb.AccountState) []AccountStateJSON {
	for _, st := range states {
		rows = append(rows, accountRow(st))
	}
	return rows
}

// accountRow is the printed form of st.
func accountRow(st *pb.AccountState) AccountStateJSON {
	return AccountStateJSON{
		Account: st.GetAddress(), PublicKey: upperHex(st.GetAccount()), Wallet: st.GetWallet(),
		Index: st.GetIndex(), Frontier: upperHex(st.GetFrontier()), BalanceRaw: st.GetBalanceRaw(),
		Height: st.GetHeight(), Sent24hRaw: st.GetSent_24HRaw(), Unconfirmed: st.GetFrontierUnconfirmed(),
	}
}

// upperHex is fmt.Sprintf("%X", b), in one allocation.
func upperHex(b []byte) string {
	const digits = "0123456789ABCDEF"
	var sb strings.Builder
	sb.Grow(2 * len(b))
	for _, c := range b {
		sb.WriteByte(digits[c>>4])
		sb.WriteByte(digits[c&15])
	}
	return sb.String()
}

// printAccountRows prints rows as one JSON array, or as a table aligned
// over all of them.
func printAccountRows(e *cli.Env, out []AccountStateJSON, asJSON bool) error {
	if asJSON {
		if out == nil {
			out = []AccountStateJSON{} // [], not null
		}
		return cli.PrintJSON(e.Stdout, out)
	}
	tw := newAccountTable(e.Stdout)
	for _, a := range out {
		writeAccountLine(tw, a)
	}
	return tw.Flush()
}

// newAccountTable returns the table of accounts with its header written.
// Nothing reaches w before Flush: the rows have one block of columns.
func newAccountTable(w io.Writer) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tWALLET\tINDEX\tBALANCE (XNO)\tHEIGHT\tFRONTIER")
	return tw
}

func writeAccountLine(tw *tabwriter.Writer, a AccountStateJSON) {
	bal, _ := nano.ParseAmount(a.BalanceRaw)
	mark := ""
	if a.Unconfirmed {
		mark = " UNCONFIRMED" // refused until re-adopted (signer restore)
	}
	fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s%s\n", a.Account, a.Wallet, a.Index, bal.XNO(), a.Height, a.Frontier, mark)
}
