package hot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

type clientIntentOptions struct {
	kind, id, account, amount, destination, source, representative string
	ttl                                                            time.Duration
}

func newClientIntentCmd(e *cli.Env) *cobra.Command {
	var opts clientIntentOptions
	cmd := &cobra.Command{
		Use:   "intent --kind send|receive|change --account A ...",
		Short: "Write an intent (its JSON form) for approvers to sign",
		Long: `Builds and validates an intent and prints its JSON form, ready for
'nanokms approve', 'nanokms client submit' and 'nanokms block sign': accounts
as nano_ addresses, the amount in raw ("amount_raw") and in XNO
("amount_xno"), the source as its hash in hex (docs/PROTOCOL.md, "Intent
JSON"). Approvals sign the intent's canonical bytes, not this text. Amounts
take raw or XNO ("1.5 XNO"). --id defaults to a random request id; --ttl
sets the expiry.`,
		Args: cli.NoArgsQuiet,
		RunE: func(cmd *cobra.Command, _ []string) error { return runClientIntent(cmd.Context(), e, opts) },
	}
	f := cmd.Flags()
	f.StringVar(&opts.kind, "kind", "", "send, receive or change")
	f.StringVar(&opts.id, "id", "", "request id (default: random)")
	f.StringVar(&opts.account, "account", "", "the custody account (address)")
	f.StringVar(&opts.amount, "amount", "", "send/receive: the amount, raw or XNO (\"1.5 XNO\")")
	f.StringVar(&opts.destination, "destination", "", "send: the destination address")
	f.StringVar(&opts.source, "source", "", "receive: the source send block's hash")
	f.StringVar(&opts.representative, "representative", "", "change (or open): the representative's address")
	f.DurationVar(&opts.ttl, "ttl", time.Hour, "how long the intent stays valid")
	return cmd
}

func runClientIntent(_ context.Context, e *cli.Env, opts clientIntentOptions) error {
	if opts.ttl <= 0 {
		// An intent that has already expired can never be signed.
		return cli.UsageErr("--ttl must be positive")
	}
	in := &pb.Intent{RequestId: opts.id, ExpiresAtUnix: time.Now().Add(opts.ttl).Unix()}
	if in.RequestId == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		in.RequestId = "wd-" + hex.EncodeToString(b[:])
	}
	switch opts.kind {
	case "send":
		in.Kind = pb.IntentKind_INTENT_KIND_SEND
	case "receive":
		in.Kind = pb.IntentKind_INTENT_KIND_RECEIVE
	case "change":
		in.Kind = pb.IntentKind_INTENT_KIND_CHANGE
	default:
		return cli.UsageErr("--kind must be send, receive or change")
	}
	acct, err := nano.ParseAccount(opts.account)
	if err != nil {
		return cli.UsageErr("--account: %w", err)
	}
	in.Account = acct[:]
	if opts.amount != "" {
		a, err := nano.ParseAmountUnit(opts.amount)
		if err != nil {
			return cli.UsageErr("--amount: %w", err)
		}
		in.AmountRaw = a.String()
	}
	for _, kv := range []struct {
		flag, val string
		dst       *[]byte
	}{{"--destination", opts.destination, &in.Destination}, {"--representative", opts.representative, &in.Representative}} {
		if kv.val == "" {
			continue
		}
		k, err := nano.ParseAccount(kv.val)
		if err != nil {
			return cli.UsageErr("%s: %w", kv.flag, err)
		}
		*kv.dst = k[:]
	}
	if opts.source != "" {
		h, err := nano.ParseHash(opts.source)
		if err != nil {
			return cli.UsageErr("--source: %w", err)
		}
		in.SourceHash = h[:]
	}
	out, err := intent.MarshalJSON(in)
	if err != nil {
		return err
	}
	_, err = e.Stdout.Write(out)
	return err
}
