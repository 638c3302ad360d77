package hot

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

type clientWatchOptions struct {
	gw      gatewayFlags
	timeout time.Duration
	json    bool
}

func newClientWatchCmd(e *cli.Env) *cobra.Command {
	var opts clientWatchOptions
	cmd := &cobra.Command{
		Use:   "watch REQUEST-ID",
		Short: "Follow a request until it is final",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, closeConn, err := opts.gw.dial()
			if err != nil {
				return err
			}
			defer closeConn()
			return follow(cmd.Context(), e, client, args[0], followOptions{timeout: opts.timeout, json: opts.json})
		},
	}
	opts.gw.register(cmd)
	cmd.Flags().DurationVar(&opts.timeout, "timeout", 5*time.Minute, "give up after this long")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the final request as JSON")
	return cmd
}

type clientRequestsOptions struct {
	gw      gatewayFlags
	account string
	json    bool
}

func newClientRequestsCmd(e *cli.Env) *cobra.Command {
	var opts clientRequestsOptions
	cmd := &cobra.Command{
		Use:   "requests [--account A]",
		Short: "List the gateway's requests, oldest first",
		Args:  cli.NoArgsQuiet,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runClientRequests(cmd.Context(), e, opts) },
	}
	opts.gw.register(cmd)
	cmd.Flags().StringVar(&opts.account, "account", "", "only this account's requests")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func runClientRequests(ctx context.Context, e *cli.Env, opts clientRequestsOptions) error {
	req := &pb.ListRequestsRequest{}
	if opts.account != "" {
		k, err := nano.ParseAccount(opts.account)
		if err != nil {
			return cli.UsageErr("--account: %w", err)
		}
		req.Account = k[:]
	}
	client, closeConn, err := opts.gw.dial()
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := client.ListRequests(ctx, req)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	out := make([]requestJSON, 0, len(resp.GetRequests()))
	for _, r := range resp.GetRequests() {
		out = append(out, toRequestJSON(r))
	}
	if opts.json {
		return cli.PrintJSON(e.Stdout, out)
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REQUEST\tKIND\tSTATUS\tAMOUNT (XNO)\tHASH")
	for _, r := range out {
		amt, _ := nano.ParseAmount(r.AmountRaw)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.RequestID, r.Kind, r.Status, amt.XNO(), r.Hash)
	}
	return tw.Flush()
}

type clientAccountsOptions struct {
	gw   gatewayFlags
	json bool
}

func newClientAccountsCmd(e *cli.Env) *cobra.Command {
	var opts clientAccountsOptions
	cmd := &cobra.Command{
		Use:   "accounts",
		Short: "List the gateway's custody accounts",
		Args:  cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, closeConn, err := opts.gw.dial()
			if err != nil {
				return err
			}
			defer closeConn()
			resp, err := client.ListAccounts(cmd.Context(), &pb.ListCustodyAccountsRequest{})
			if err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			type acct struct {
				Wallet    string `json:"wallet"`
				Index     uint32 `json:"index"`
				PublicKey string `json:"public_key"`
				Account   string `json:"account"`
			}
			var out []acct
			for _, a := range resp.GetAccounts() {
				out = append(out, acct{a.GetWallet(), a.GetIndex(), fmt.Sprintf("%X", a.GetPublicKey()), a.GetAddress()})
			}
			if opts.json {
				return cli.PrintJSON(e.Stdout, out)
			}
			tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WALLET\tINDEX\tACCOUNT")
			for _, a := range out {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", a.Wallet, a.Index, a.Account)
			}
			return tw.Flush()
		},
	}
	opts.gw.register(cmd)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}
