package relay

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/internal/health"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// HealthClient is the part of the gRPC health API the relay's readiness
// uses: the signer's health service, on the relay's connection to it.
type HealthClient interface {
	Check(ctx context.Context, in *healthpb.HealthCheckRequest, opts ...grpc.CallOption) (*healthpb.HealthCheckResponse, error)
}

// Readiness is what the relay needs to do its job, as /readyz reports it
// (package health): "medium", the bridge medium there now (present, such
// as bridge.Medium.Present), and "signer", a signer reachable and serving
// (its gRPC health service answers SERVING for the Signer service: a
// signer whose token is away, whose state file is full or whose database
// is unreachable cannot sign, so neither can the relay). With several
// signers (relay.signers) one serving is enough, as Signers then sends
// every request to it; the failure names each signer with its reason in
// short (the relay's log has each signer's whole error).
func Readiness(present func(context.Context) error, signers []SignerEndpoint) []health.Check {
	return []health.Check{
		{Name: "medium", Probe: present},
		{Name: "signer", Probe: func(ctx context.Context) error {
			if len(signers) == 1 {
				return signerServing(ctx, signers[0].Health).detailed()
			}
			why := make([]string, 0, len(signers))
			for _, s := range signers {
				f := signerServing(ctx, s.Health)
				if f == nil {
					return nil
				}
				why = append(why, s.Name+": "+f.short())
			}
			return fmt.Errorf("none of the %d signers serving: %s", len(signers), strings.Join(why, "; "))
		}},
	}
}

// notServing is why one signer cannot sign now: its health check failed
// (err), or it answered a status other than SERVING.
type notServing struct {
	err    *status.Status
	answer healthpb.HealthCheckResponse_ServingStatus
}

// signerServing asks one signer's health service about the Signer
// service: nil when it is SERVING.
func signerServing(ctx context.Context, signer HealthClient) *notServing {
	resp, err := signer.Check(ctx, &healthpb.HealthCheckRequest{Service: pb.Signer_ServiceDesc.ServiceName})
	if err != nil {
		return &notServing{err: status.Convert(err)}
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return &notServing{answer: s}
	}
	return nil
}

// detailed is the reason with the check's whole error; nil when serving.
func (n *notServing) detailed() error {
	switch {
	case n == nil:
		return nil
	case n.err != nil:
		return fmt.Errorf("unreachable (%s): %s", n.err.Code(), n.err.Message())
	}
	return fmt.Errorf("not serving (its health service says %s: see the signer's /readyz and log)", n.answer)
}

// short is the reason in a few words.
func (n *notServing) short() string {
	if n.err != nil {
		return fmt.Sprintf("unreachable (%s)", n.err.Code())
	}
	return fmt.Sprintf("not serving (%s)", n.answer)
}
