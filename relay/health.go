package relay

import (
	"context"
	"fmt"

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
// as bridge.Medium.Present), and "signer", the signer reachable and
// serving (its gRPC health service answers SERVING for the Signer
// service: a signer whose token is away or whose state file is full
// cannot sign, so neither can the relay).
func Readiness(present func(context.Context) error, signer HealthClient) []health.Check {
	return []health.Check{
		{Name: "medium", Probe: present},
		{Name: "signer", Probe: func(ctx context.Context) error {
			resp, err := signer.Check(ctx, &healthpb.HealthCheckRequest{Service: pb.Signer_ServiceDesc.ServiceName})
			if err != nil {
				st := status.Convert(err)
				return fmt.Errorf("unreachable (%s): %s", st.Code(), st.Message())
			}
			if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
				return fmt.Errorf("not serving (its health service says %s: see the signer's /readyz and log)", s)
			}
			return nil
		}},
	}
}
