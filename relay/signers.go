package relay

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// DefaultHealthInterval is how often Signers checks each signer's health
// when SignersOptions.HealthInterval is 0.
const DefaultHealthInterval = time.Second

// SignerEndpoint is one of several signers: its client, the client of its
// gRPC health service, and its address for the logs.
type SignerEndpoint struct {
	Name   string // the address, as configured ("unix:///run/nanokms/signer.sock")
	Signer SignerClient
	Health healthpb.HealthClient
}

// SignersOptions tune Signers. The zero value is usable.
type SignersOptions struct {
	// Log receives a line when a signer's health changes and when a
	// request is sent again to the next signer; nil discards.
	Log *slog.Logger
	// HealthInterval is how often Watch checks each signer's health, and
	// how long one check may take (default DefaultHealthInterval).
	HealthInterval time.Duration
}

// Signers is a SignerClient over several signers that share one
// PostgreSQL database (their [signer.postgres]). Each Sign goes to a
// healthy signer, taken in turn, and is sent again, unchanged, to the
// next one when that signer cannot answer: its call failed with
// Unavailable, because the signer is down or restarting, the connection
// to it is broken, or its database or its token is unavailable (the
// signer then says so: signerapi.IsStoreUnavailable, IsTokenUnavailable).
// Every other outcome is returned as it is: a signed block; a refusal (a
// refusal is the signers' answer, never a reason to ask another one); or
// another error, for the relay to handle. When every signer is
// unavailable, the last Unavailable error is returned, and the relay
// waits and asks again.
//
// Sending a request again to another signer is safe because the
// database records one answer per request id and one signed block per
// account and previous: a signer given a request that another has
// answered, or is committing, returns the recorded answer, byte for byte.
// For the same reason Signers must never be used over signers that keep
// their own state (signer.state, bbolt): each would sign on the same head.
//
// Health: Watch asks each signer's gRPC health service (for the Signer
// service) every HealthInterval. A signer that is not SERVING, or whose
// check fails, is tried only after the healthy ones; a call that fails
// with Unavailable marks its signer unhealthy at once, and any answer
// marks it healthy. Until its first check a signer counts as healthy.
type Signers struct {
	eps      []*endpoint
	log      *slog.Logger
	interval time.Duration
	next     atomic.Uint64 // the turn: where the next call starts
}

// endpoint is one signer and what is known of its health.
type endpoint struct {
	SignerEndpoint
	mu      sync.Mutex
	healthy bool
}

var _ SignerClient = (*Signers)(nil)

// NewSigners returns the client over eps, which must not be empty, in
// their order: the first call goes to the first.
func NewSigners(eps []SignerEndpoint, opts SignersOptions) *Signers {
	s := &Signers{log: opts.Log, interval: opts.HealthInterval}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.interval <= 0 {
		s.interval = DefaultHealthInterval
	}
	for _, e := range eps {
		s.eps = append(s.eps, &endpoint{SignerEndpoint: e, healthy: true})
	}
	return s
}

// Sign sends req to the signers in turn, healthy ones first, until one
// answers (see Signers).
func (s *Signers) Sign(ctx context.Context, req *pb.SignRequest, opts ...grpc.CallOption) (*pb.SignResponse, error) {
	order := s.order()
	var last error
	for i, ep := range order {
		resp, err := ep.Signer.Sign(ctx, req, opts...)
		if err == nil {
			s.mark(ep, true, "")
			return resp, nil
		}
		st := status.Convert(err)
		if _, refused := signerapi.RefusalFromStatus(st); refused || st.Code() != codes.Unavailable || ctx.Err() != nil {
			if st.Code() != codes.DeadlineExceeded && st.Code() != codes.Canceled {
				s.mark(ep, true, "") // it answered
			}
			return nil, err
		}
		s.mark(ep, false, st.Message())
		last = err
		if i+1 < len(order) {
			s.log.Warn("signer unavailable, asking the next", "request_id", req.GetIntent().GetRequestId(),
				"signer", ep.Name, "next", order[i+1].Name, "error", st.Message())
		}
	}
	return nil, last
}

// order returns the signers for one call: the healthy ones from the
// turn's, then the others.
func (s *Signers) order() []*endpoint {
	n := len(s.eps)
	start := int(s.next.Add(1)-1) % n
	healthy, sick := make([]*endpoint, 0, n), make([]*endpoint, 0, n)
	for i := range n {
		ep := s.eps[(start+i)%n]
		if ep.isHealthy() {
			healthy = append(healthy, ep)
		} else {
			sick = append(sick, ep)
		}
	}
	return append(healthy, sick...)
}

func (e *endpoint) isHealthy() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.healthy
}

// mark records ep's health, and logs a change (why: what a check or a
// call said, for an unhealthy signer).
func (s *Signers) mark(ep *endpoint, healthy bool, why string) {
	ep.mu.Lock()
	changed := ep.healthy != healthy
	ep.healthy = healthy
	ep.mu.Unlock()
	switch {
	case !changed:
	case healthy:
		s.log.Info("signer healthy", "signer", ep.Name)
	default:
		s.log.Warn("signer unhealthy", "signer", ep.Name, "error", why)
	}
}

// Healthy reports which signers are healthy, in the order they were given.
func (s *Signers) Healthy() []bool {
	out := make([]bool, len(s.eps))
	for i, ep := range s.eps {
		out[i] = ep.isHealthy()
	}
	return out
}

// Watch checks each signer's health every HealthInterval until ctx ends.
func (s *Signers) Watch(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ep := range s.eps {
		wg.Go(func() { s.watch(ctx, ep) })
	}
	wg.Wait()
}

// watch checks ep's health every interval until ctx ends.
func (s *Signers) watch(ctx context.Context, ep *endpoint) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, s.interval)
		resp, err := ep.Health.Check(cctx, &healthpb.HealthCheckRequest{Service: pb.Signer_ServiceDesc.ServiceName})
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.mark(ep, false, status.Convert(err).Message())
		case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
			s.mark(ep, false, "health: "+resp.GetStatus().String())
		default:
			s.mark(ep, true, "")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
