package cold

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

type signerReleaseOptions struct {
	conn      connectFlags
	statement string
	approvals []string
	previous  string
	json      bool
}

func newSignerReleaseCmd(e *cli.Env) *cobra.Command {
	var opts signerReleaseOptions
	cmd := &cobra.Command{
		Use:   "release --statement F --approval F... [--previous FILE]",
		Short: "Withdraw an account's recorded frontier that the network refused (M-of-N approvals)",
		Long: `Asks the running signer to withdraw an account's recorded frontier, a block
the network refused for good (the gateway's BLOCK_REJECTED alert), and to
return the account's record to the frontier before it. F is a release
statement made by 'nanokms signer release prepare' and signed by approvers
with 'nanokms approve --release'; the signer demands the approvals of the
account's group's last tier. Read docs/OPERATIONS.md ("A block the network
refuses") first: if any node ever accepts the withdrawn block, the next block
signed on the old frontier forks the account.

--previous FILE is the block before the withdrawn one (any block JSON), only
when the signer has no record of it (it says so).`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSignerRelease(cmd.Context(), e, opts) },
	}
	opts.conn.register(cmd)
	f := cmd.Flags()
	f.StringVar(&opts.statement, "statement", "", "the release statement (JSON form of nanokms.v1.ReleaseStatement)")
	f.StringArrayVar(&opts.approvals, "approval", nil, "an approval of the statement (the output of 'nanokms approve --release'); repeat for more")
	f.StringVar(&opts.previous, "previous", "", "the block before the withdrawn one, when the signer has no record of it")
	f.BoolVar(&opts.json, "json", false, "print JSON")
	cmd.AddCommand(newSignerReleasePrepareCmd(e))
	return cmd
}

// readStatement reads and checks a release statement file.
func readStatement(e *cli.Env, file string) (*pb.ReleaseStatement, intent.Release, error) {
	data, err := cli.ReadInput(e, file)
	if err != nil {
		return nil, intent.Release{}, err
	}
	st := new(pb.ReleaseStatement)
	if err := protojson.Unmarshal(data, st); err != nil {
		return nil, intent.Release{}, cli.WithHint(fmt.Errorf("release statement: %w", err), "the statement is the output of 'nanokms signer release prepare'")
	}
	r, err := intent.ParseRelease(st)
	if err != nil {
		return nil, intent.Release{}, err
	}
	return st, r, nil
}

// describeRelease is a release statement in words, for the people who
// approve and apply it.
func describeRelease(r *intent.Release) string {
	back := fmt.Sprintf("frontier %s, balance %s XNO", r.Frontier, r.Balance.XNO())
	if r.Frontier.IsZero() {
		back = "unopened"
	}
	return fmt.Sprintf("withdraw block %s, the recorded frontier of %s; the record returns to %s; the statement expires %s",
		r.Block, r.Account.Address(), back, time.Unix(r.ExpiresAtUnix, 0).UTC().Format(time.RFC3339))
}

// releaseJSON is the --json form of a release.
type releaseJSON struct {
	Account    string `json:"account"`
	Withdrawn  string `json:"withdrawn"`
	RequestID  string `json:"request_id"`
	Frontier   string `json:"frontier"`
	BalanceRaw string `json:"balance_raw"`
	Height     uint64 `json:"height"`
	AuditSeq   uint64 `json:"audit_seq"`
}

func runSignerRelease(ctx context.Context, e *cli.Env, opts signerReleaseOptions) error {
	if opts.statement == "" {
		return cli.UsageErr("--statement is required")
	}
	if len(opts.approvals) == 0 {
		return cli.UsageErr("--approval is required (the statement's approvals; policy demands the group's last tier)")
	}
	st, r, err := readStatement(e, opts.statement)
	if err != nil {
		return err
	}
	req := &pb.ReleaseRequest{Statement: st}
	for _, f := range opts.approvals {
		data, err := cli.ReadInput(e, f)
		if err != nil {
			return err
		}
		a := new(pb.Approval)
		if err := protojson.Unmarshal(data, a); err != nil {
			return fmt.Errorf("--approval %s: %w", f, err)
		}
		req.Approvals = append(req.Approvals, a)
	}
	if opts.previous != "" {
		b, err := cli.ReadBlock(e, opts.previous)
		if err != nil {
			return fmt.Errorf("--previous: %w", err)
		}
		req.Previous = pb.BlockFromNano(&b.Block)
	}
	conn, err := opts.conn.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := pb.NewSignerClient(conn).Release(ctx, req)
	if err != nil {
		return RPCErr(err)
	}
	acct := resp.GetAccount()
	if opts.json {
		return cli.PrintJSON(e.Stdout, releaseJSON{
			Account: acct.GetAddress(), Withdrawn: r.Block.String(), RequestID: resp.GetRequestId(),
			Frontier: fmt.Sprintf("%X", acct.GetFrontier()), BalanceRaw: acct.GetBalanceRaw(), Height: acct.GetHeight(), AuditSeq: resp.GetAuditSeq(),
		})
	}
	bal, _ := nano.ParseAmount(acct.GetBalanceRaw())
	fmt.Fprintf(e.Stdout, "released block %s of %s (request %s): frontier %X, balance %s XNO, height %d; audit record %d\n",
		r.Block, acct.GetAddress(), resp.GetRequestId(), acct.GetFrontier(), bal.XNO(), acct.GetHeight(), resp.GetAuditSeq())
	return nil
}

type signerReleasePrepareOptions struct {
	conn     connectFlags
	account  string
	block    string
	ttl      time.Duration
	previous string
}

func newSignerReleasePrepareCmd(e *cli.Env) *cobra.Command {
	var opts signerReleasePrepareOptions
	cmd := &cobra.Command{
		Use:   "prepare --account A --block H [--ttl D] [--previous FILE]",
		Short: "Print the release statement that would withdraw block H, the recorded frontier of account A",
		Long: `Asks the running signer for the release statement that would withdraw block
H, the recorded frontier of account A, and return the record to the frontier
before it: the statement's JSON on standard output (for 'nanokms approve
--release' and 'nanokms signer release'), and what it says in words on
standard error. It changes nothing. The statement expires after --ttl (at
most signer.max_intent_ttl).`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSignerReleasePrepare(cmd.Context(), e, opts) },
	}
	opts.conn.register(cmd)
	f := cmd.Flags()
	f.StringVar(&opts.account, "account", "", "the account (nano_ address)")
	f.StringVar(&opts.block, "block", "", "the hash of the block to withdraw (the gateway's BLOCK_REJECTED alert names it)")
	f.DurationVar(&opts.ttl, "ttl", time.Hour, "how long the statement stays valid")
	f.StringVar(&opts.previous, "previous", "", "the block before the withdrawn one, when the signer has no record of it")
	return cmd
}

func runSignerReleasePrepare(ctx context.Context, e *cli.Env, opts signerReleasePrepareOptions) error {
	if opts.account == "" || opts.block == "" {
		return cli.UsageErr("--account and --block are required")
	}
	if opts.ttl <= 0 {
		return cli.UsageErr("--ttl must be positive")
	}
	acct, err := nano.ParseAccount(opts.account)
	if err != nil {
		return fmt.Errorf("--account: %w", err)
	}
	h, err := nano.ParseHash(opts.block)
	if err != nil {
		return fmt.Errorf("--block: %w", err)
	}
	req := &pb.PrepareReleaseRequest{Account: acct[:], BlockHash: h[:], ExpiresAtUnix: time.Now().Add(opts.ttl).Unix()}
	if opts.previous != "" {
		b, err := cli.ReadBlock(e, opts.previous)
		if err != nil {
			return fmt.Errorf("--previous: %w", err)
		}
		req.Previous = pb.BlockFromNano(&b.Block)
	}
	conn, err := opts.conn.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := pb.NewSignerClient(conn).PrepareRelease(ctx, req)
	if err != nil {
		return RPCErr(err)
	}
	r, err := intent.ParseRelease(st)
	if err != nil {
		return fmt.Errorf("the signer's statement: %w", err)
	}
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(st)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, string(out))
	fmt.Fprintf(e.Stderr, "release statement: %s\n", describeRelease(&r))
	return nil
}
