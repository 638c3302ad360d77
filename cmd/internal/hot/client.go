package hot

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/internal/mtls"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

func newClientCmd(e *cli.Env) *cobra.Command {
	cmd := cli.NewGroup("client", "Talk to a gateway's Custody API, as a withdrawal service would")
	cmd.AddCommand(newClientIntentCmd(e), newClientSubmitCmd(e), newClientWatchCmd(e),
		newClientRequestsCmd(e), newClientAccountsCmd(e))
	return cmd
}

// gatewayFlags name a gateway: --connect (or $NANOKMS_GATEWAY), and for
// tcp:// the client's certificate, key, the gateway's CA and name.
type gatewayFlags struct {
	connect, cert, key, ca, serverName string
}

func (g *gatewayFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&g.connect, "connect", "", "the gateway: unix:///path or tcp://host:port (default $NANOKMS_GATEWAY)")
	cmd.Flags().StringVar(&g.cert, "cert", "", "tcp: this client's certificate (PEM)")
	cmd.Flags().StringVar(&g.key, "key", "", "tcp: this client's private key (PEM)")
	cmd.Flags().StringVar(&g.ca, "ca", "", "tcp: the CA of the gateway's certificate (PEM)")
	cmd.Flags().StringVar(&g.serverName, "server-name", "", "tcp: the name in the gateway's certificate")
}

func (g *gatewayFlags) dial() (pb.CustodyClient, func(), error) {
	target := g.connect
	if target == "" {
		target = os.Getenv("NANOKMS_GATEWAY")
	}
	var conn *grpc.ClientConn
	var err error
	switch {
	case target == "":
		return nil, nil, cli.UsageErr("--connect (or $NANOKMS_GATEWAY) is required")
	case strings.HasPrefix(target, "unix://"):
		conn, err = grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	case strings.HasPrefix(target, "tcp://"):
		c, cerr := mtls.Client(g.cert, g.key, g.ca, g.serverName)
		if cerr != nil {
			return nil, nil, cli.WithHint(cerr, "a tcp:// gateway needs --cert, --key, --ca and --server-name")
		}
		conn, err = grpc.NewClient(strings.TrimPrefix(target, "tcp://"), grpc.WithTransportCredentials(credentials.NewTLS(c)))
	default:
		return nil, nil, cli.UsageErr("--connect %q is neither unix:// nor tcp://", target)
	}
	if err != nil {
		return nil, nil, err
	}
	return pb.NewCustodyClient(conn), func() { conn.Close() }, nil
}

// statusName is a request status without its prefix, in lower case.
func statusName(s pb.RequestStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "REQUEST_STATUS_"))
}

// requestJSON is the --json form of a gateway request.
type requestJSON struct {
	RequestID     string           `json:"request_id"`
	Status        string           `json:"status"`
	Kind          string           `json:"kind"`
	Account       string           `json:"account"`
	AmountRaw     string           `json:"amount_raw,omitempty"`
	Subtype       string           `json:"subtype,omitempty"`
	Hash          string           `json:"hash,omitempty"`
	Block         *nano.StateBlock `json:"block,omitempty"`
	RefusalReason string           `json:"refusal_reason,omitempty"`
	Error         string           `json:"error,omitempty"`
	Rejection     string           `json:"rejection,omitempty"`
	Attempts      uint32           `json:"attempts"`
}

func toRequestJSON(r *pb.Request) requestJSON {
	out := requestJSON{
		RequestID: r.GetRequestId(), Status: statusName(r.GetStatus()),
		Kind:    strings.ToLower(strings.TrimPrefix(r.GetIntent().GetKind().String(), "INTENT_KIND_")),
		Account: nano.PublicKey(r.GetIntent().GetAccount()).Address(), AmountRaw: r.GetIntent().GetAmountRaw(),
		Subtype: r.GetSubtype(), RefusalReason: r.GetRefusalReason(), Error: r.GetError(), Rejection: r.GetRejection(),
		Attempts: r.GetAttempts(),
	}
	if len(r.GetBlockHash()) == 32 {
		out.Hash = nano.Hash(r.GetBlockHash()).String()
	}
	if r.GetBlock() != nil {
		if b, err := r.GetBlock().ToNano("block"); err == nil {
			out.Block = &b
		}
	}
	return out
}

// describe is a one-line account of a request's state.
func describe(r *pb.Request, since time.Time) string {
	line := fmt.Sprintf("[%6.2fs] %-12s %s", time.Since(since).Seconds(), statusName(r.GetStatus()), r.GetRequestId())
	switch r.GetStatus() {
	case pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD:
		line += fmt.Sprintf(" (frame on the bridge, attempt %d)", r.GetAttempts())
	case pb.RequestStatus_REQUEST_STATUS_SIGNED:
		line += fmt.Sprintf(" (verified and signed on the cold side: %s %X)", r.GetSubtype(), r.GetBlockHash())
	case pb.RequestStatus_REQUEST_STATUS_PUBLISHED:
		if b, err := r.GetBlock().ToNano("block"); err == nil {
			line += fmt.Sprintf(" (work %s attached, processed by the node)", b.Work)
		}
	case pb.RequestStatus_REQUEST_STATUS_REFUSED:
		line += fmt.Sprintf(" (%s: %s)", r.GetRefusalReason(), r.GetError())
	case pb.RequestStatus_REQUEST_STATUS_FAILED:
		line += " (" + r.GetError() + ")"
	}
	return line
}
