package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/internal/grpcserve"
	"github.com/nanokms/nanokms/internal/mtls"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// CustodyServer is the gateway's gRPC service for withdrawal services.
type CustodyServer struct {
	pb.UnimplementedCustodyServer
	g *Gateway
}

// NewCustodyServer returns the Custody service of g.
func NewCustodyServer(g *Gateway) *CustodyServer { return &CustodyServer{g: g} }

func custodyStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrNotCustody), errors.Is(err, ErrNoRequest):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrIDTaken):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, ErrStoreFull):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, ErrStoreUnavailable):
		// Before the context's errors: an operation that timed out on
		// the database wraps both.
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Unavailable, err.Error())
}

// SubmitIntent implements nanokms.v1.Custody.
func (s *CustodyServer) SubmitIntent(ctx context.Context, req *pb.SubmitIntentRequest) (*pb.SubmitIntentResponse, error) {
	r, err := s.g.Submit(ctx, req)
	if err != nil {
		id := req.GetIntent().GetRequestId()
		if len(id) > intent.MaxRequestIDLen {
			id = id[:intent.MaxRequestIDLen]
		}
		s.g.log.Warn("submission refused", "request_id", id, "error", err.Error())
		return nil, custodyStatus(err)
	}
	return &pb.SubmitIntentResponse{RequestId: r.GetRequestId(), Request: r}, nil
}

// GetRequest implements nanokms.v1.Custody.
func (s *CustodyServer) GetRequest(_ context.Context, req *pb.GetRequestRequest) (*pb.Request, error) {
	r, err := s.g.Get(req.GetRequestId())
	return r, custodyStatus(err)
}

// WatchRequest implements nanokms.v1.Custody.
func (s *CustodyServer) WatchRequest(req *pb.GetRequestRequest, stream grpc.ServerStreamingServer[pb.Request]) error {
	cur, ch, cancel, err := s.g.Watch(req.GetRequestId())
	if err != nil {
		return custodyStatus(err)
	}
	defer cancel()
	if err := stream.Send(cur); err != nil {
		return err
	}
	last := cur.GetStatus()
	for !s.g.isFinal(last) {
		select {
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		case r, ok := <-ch:
			if !ok {
				return nil
			}
			if r.GetStatus() == last && r.GetUpdatedUnixNano() == cur.GetUpdatedUnixNano() {
				continue
			}
			if err := stream.Send(r); err != nil {
				return err
			}
			last, cur = r.GetStatus(), r
		}
	}
	return nil
}

// ListAccounts implements nanokms.v1.Custody.
func (s *CustodyServer) ListAccounts(context.Context, *pb.ListCustodyAccountsRequest) (*pb.ListCustodyAccountsResponse, error) {
	return &pb.ListCustodyAccountsResponse{Accounts: s.g.manifest.Accounts()}, nil
}

// WatchAlerts implements nanokms.v1.Custody.
func (s *CustodyServer) WatchAlerts(_ *pb.WatchAlertsRequest, stream grpc.ServerStreamingServer[pb.Alert]) error {
	ch, cancel := s.g.Alerts()
	defer cancel()
	for {
		select {
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		case a := <-ch:
			if err := stream.Send(a); err != nil {
				return err
			}
		}
	}
}

// ServeCustody serves the Custody service (and gRPC health) on l until ctx
// is done. A tcp listener requires tlsCfg (mutual TLS 1.3). The gRPC
// health service is NOT_SERVING exactly while the gateway is not ready
// (Health: its writes fail, the medium is away, the node does not
// answer); ServeCustody runs that monitor while it serves.
func ServeCustody(ctx context.Context, l net.Listener, srv *CustodyServer, tlsCfg *conffile.TLSServer, grace time.Duration) error {
	var creds *tls.Config
	if _, isUnix := l.Addr().(*net.UnixAddr); !isUnix {
		if tlsCfg == nil {
			l.Close()
			return errors.New("gateway: the gateway serves TCP only with mutual TLS")
		}
		cfg, err := mtls.Server(tlsCfg.Cert, tlsCfg.Key, tlsCfg.ClientCA, tlsCfg.AllowedIdentities)
		if err != nil {
			l.Close()
			return err
		}
		creds = cfg
	}
	if grace <= 0 {
		grace = 5 * time.Second
	}
	// NOT_SERVING while the gateway is not ready (Health).
	mon := srv.g.Health()
	if _, err := mon.Evaluate(ctx); err != nil {
		l.Close()
		return nil
	}
	gh := grpcserve.NewHealth(pb.Custody_ServiceDesc.ServiceName)
	fctx, stopFollowing := context.WithCancel(ctx)
	monitored := make(chan struct{})
	go func() { defer close(monitored); mon.Run(fctx) }()
	followed := gh.Follow(fctx, mon.Ready)
	err := grpcserve.ServeWith(ctx, l, creds, grace, func(g *grpc.Server) { pb.RegisterCustodyServer(g, srv) }, grpcserve.Options{Health: gh})
	stopFollowing()
	<-followed
	<-monitored
	return err
}

// ListRequests implements nanokms.v1.Custody.
func (s *CustodyServer) ListRequests(_ context.Context, req *pb.ListRequestsRequest) (*pb.ListRequestsResponse, error) {
	if n := len(req.GetAccount()); n != 0 && n != 32 {
		return nil, status.Error(codes.InvalidArgument, "account: want 32 bytes")
	}
	list, err := s.g.List(req.GetAccount())
	if err != nil {
		return nil, custodyStatus(err)
	}
	return &pb.ListRequestsResponse{Requests: list}, nil
}
