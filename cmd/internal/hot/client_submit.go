package hot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/intent"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

type clientSubmitOptions struct {
	gw                       gatewayFlags
	intent                   string
	approvals                []string
	head, source, sourcePrev string
	wait, json               bool
	timeout                  time.Duration
	blockOut                 string
}

func newClientSubmitCmd(e *cli.Env) *cobra.Command {
	var opts clientSubmitOptions
	cmd := &cobra.Command{
		Use:   "submit --intent F [--approval F]... [--wait]",
		Short: "Submit an approved intent to the gateway (idempotent on its request id)",
		Long: `Submits the intent in F (its JSON form: 'nanokms client intent'; the
protobuf JSON form is read too) with the approvals in the --approval
files (the output of 'nanokms approve'). --head, --source and --source-previous
supply blocks when the gateway has no node (or to override what it would read).
With --wait it follows the request until it is final and exits 0 only if it was
confirmed (or signed, when the gateway has no node).`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runClientSubmit(cmd.Context(), e, opts) },
	}
	opts.gw.register(cmd)
	f := cmd.Flags()
	f.StringVar(&opts.intent, "intent", "", "the intent (its JSON form, as 'nanokms client intent' writes it)")
	f.StringArrayVar(&opts.approvals, "approval", nil, "an approval (JSON form of nanokms.v1.Approval); repeat for more")
	f.StringVar(&opts.head, "head", "", "the account's head block (any block JSON)")
	f.StringVar(&opts.source, "source", "", "receive: the source send block")
	f.StringVar(&opts.sourcePrev, "source-previous", "", "receive: the block before the source")
	f.BoolVar(&opts.wait, "wait", false, "follow the request until it is final")
	f.DurationVar(&opts.timeout, "timeout", 5*time.Minute, "with --wait: give up after this long")
	f.BoolVar(&opts.json, "json", false, "print the final request as JSON")
	f.StringVar(&opts.blockOut, "block-out", "", "with --wait: write the final block (node JSON form) to this file")
	return cmd
}

func runClientSubmit(ctx context.Context, e *cli.Env, opts clientSubmitOptions) error {
	if opts.intent == "" {
		return cli.UsageErr("--intent is required")
	}
	data, err := cli.ReadInput(e, opts.intent)
	if err != nil {
		return err
	}
	in, err := intent.UnmarshalJSON(data)
	if err != nil {
		return fmt.Errorf("--intent: %w", err)
	}
	req := &pb.SubmitIntentRequest{Intent: in}
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
	for _, b := range []struct {
		flag, file string
		dst        **pb.Block
	}{{"--head", opts.head, &req.Head}, {"--source", opts.source, &req.Source}, {"--source-previous", opts.sourcePrev, &req.SourcePrevious}} {
		if b.file == "" {
			continue
		}
		parsed, err := cli.ReadBlock(e, b.file)
		if err != nil {
			return fmt.Errorf("%s: %w", b.flag, err)
		}
		*b.dst = pb.BlockFromNano(&parsed.Block)
	}
	client, closeConn, err := opts.gw.dial()
	if err != nil {
		return err
	}
	defer closeConn()
	resp, err := client.SubmitIntent(ctx, req)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if !opts.wait {
		if opts.json {
			return cli.PrintJSON(e.Stdout, toRequestJSON(resp.GetRequest()))
		}
		fmt.Fprintf(e.Stdout, "%s %s\n", resp.GetRequestId(), statusName(resp.GetRequest().GetStatus()))
		return nil
	}
	return follow(ctx, e, client, resp.GetRequestId(), followOptions{timeout: opts.timeout, json: opts.json, blockOut: opts.blockOut})
}

// followOptions tune follow.
type followOptions struct {
	timeout  time.Duration
	json     bool
	blockOut string
}

// follow streams a request's states to stderr until it is final, then
// prints the final state and returns nil only for a request that reached
// its goal.
func follow(ctx context.Context, e *cli.Env, client pb.CustodyClient, id string, opts followOptions) error {
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	stream, err := client.WatchRequest(ctx, &pb.GetRequestRequest{RequestId: id})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	start := time.Now()
	stopSpinner := spinner(e, start)
	defer stopSpinner()
	var last *pb.Request
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("gateway: watching %s: %w", id, err)
		}
		last = r
		stopSpinner()
		fmt.Fprintln(e.Stderr, describe(r, start))
		stopSpinner = spinner(e, start)
	}
	stopSpinner()
	if last == nil {
		return fmt.Errorf("gateway: no state for %s", id)
	}
	if opts.blockOut != "" && last.GetBlock() != nil {
		b, err := last.GetBlock().ToNano("block")
		if err != nil {
			return err
		}
		data, err := json.MarshalIndent(b, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(opts.blockOut, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	if opts.json {
		if err := cli.PrintJSON(e.Stdout, toRequestJSON(last)); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.Stdout, "%s %s\n", id, statusName(last.GetStatus()))
	}
	switch last.GetStatus() {
	case pb.RequestStatus_REQUEST_STATUS_CONFIRMED, pb.RequestStatus_REQUEST_STATUS_SIGNED:
		return nil
	}
	return cli.ErrCheckFailed
}

// spinner shows the time spent waiting on a terminal, on one line that the
// next status line replaces; it does nothing when stderr is not a terminal.
// It returns its stop function (safe to call more than once).
func spinner(e *cli.Env, start time.Time) func() {
	f, ok := e.Stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		frames := `|/-\`
		t := time.NewTicker(120 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprintf(f, "\r%c waiting %.1fs", frames[i%len(frames)], time.Since(start).Seconds())
			}
		}
	}()
	var once bool
	return func() {
		if !once {
			once = true
			close(done)
			<-stopped
		}
	}
}
