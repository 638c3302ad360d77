package signer

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/nanokms/nanokms/grpcserve"
	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/mtls"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of the signer's errors.
const ErrorDomain = "nanokms"

// codeFor maps a refusal reason to its gRPC status code.
func codeFor(r pb.RefusalReason) codes.Code {
	switch r {
	case rNotFrontier, rPending, rExpired, rReleaseMismatch, rReleased:
		return codes.FailedPrecondition
	case rApprovalsMissing, rApproverUnknown, rApprovalDup, rApprovalInvalid, rPolicy,
		pb.RefusalReason_REFUSAL_REASON_DESTINATION_NOT_ALLOWED,
		pb.RefusalReason_REFUSAL_REASON_REPRESENTATIVE_NOT_ALLOWED:
		return codes.PermissionDenied
	case pb.RefusalReason_REFUSAL_REASON_LIMIT_EXCEEDED, pb.RefusalReason_REFUSAL_REASON_VELOCITY_EXCEEDED:
		return codes.ResourceExhausted
	case rReused, pb.RefusalReason_REFUSAL_REASON_ALREADY_TRACKED:
		return codes.AlreadyExists
	case rUnknownAccount:
		return codes.NotFound
	}
	return codes.InvalidArgument
}

// StatusOf converts err to a gRPC status: a *Refusal becomes its code with
// an ErrorInfo (and, for a pending block, the block as a second detail);
// ErrStoreFull becomes ResourceExhausted with an ErrorInfo whose reason is
// ErrorInfoStoreFull, and a token that is unavailable (hsm.ErrTokenUnavailable,
// or hsm.ErrSessionLost) Unavailable with an ErrorInfo whose reason is
// ErrorInfoTokenUnavailable (neither is a refusal: nothing was decided, the
// caller resends later); anything else is Internal, with a generic message
// (internal errors are logged, not sent).
func StatusOf(err error) *status.Status {
	var r *Refusal
	if !errors.As(err, &r) {
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			return status.FromContextError(err)
		case errors.Is(err, ErrStoreFull):
			st := status.New(codes.ResourceExhausted, "signer: the state store is full: nothing was signed or recorded; "+
				"resend once space is freed on the file system of the signer's state file")
			if withDetails, derr := st.WithDetails(protoadapt.MessageV1Of(&errdetails.ErrorInfo{Reason: ErrorInfoStoreFull, Domain: ErrorDomain})); derr == nil {
				return withDetails
			}
			return st
		case errors.Is(err, hsm.ErrTokenUnavailable) || errors.Is(err, hsm.ErrSessionLost):
			return tokenUnavailableStatus(err)
		case errors.Is(err, ErrStoreUnavailable):
			st := status.New(codes.Unavailable, "signer: the state database is unavailable: nothing signed was released; resend (to this or another signer)")
			if withDetails, derr := st.WithDetails(protoadapt.MessageV1Of(&errdetails.ErrorInfo{Reason: ErrorInfoStoreUnavailable, Domain: ErrorDomain})); derr == nil {
				return withDetails
			}
			return st
		}
		return status.New(codes.Internal, "signer: internal error (see the signer's log)")
	}
	detail := boundedText(r.Detail, maxDetailLen)
	rr := *r
	rr.Detail = detail
	st := status.New(codeFor(r.Reason), rr.Error())
	md := map[string]string{"detail": detail}
	if r.Field != "" {
		md["field"] = boundedText(r.Field, maxQuoted)
	}
	details := []protoadapt.MessageV1{protoadapt.MessageV1Of(&errdetails.ErrorInfo{
		Reason:   ReasonName(r.Reason),
		Domain:   ErrorDomain,
		Metadata: md,
	})}
	if r.Pending != nil {
		details = append(details, protoadapt.MessageV1Of(pb.BlockFromNano(r.Pending)))
	}
	if withDetails, derr := st.WithDetails(details...); derr == nil {
		return withDetails
	}
	return st
}

// ErrorInfoStoreFull is the ErrorInfo reason of ErrStoreFull's status. It is
// not a RefusalReason: RefusalFromStatus does not take it for a refusal.
const ErrorInfoStoreFull = "STATE_STORE_FULL"

// ErrorInfoStoreUnavailable is the ErrorInfo reason of ErrStoreUnavailable's
// status (Unavailable). It is not a RefusalReason.
const ErrorInfoStoreUnavailable = "STATE_STORE_UNAVAILABLE"

// ErrorInfoTokenUnavailable is the ErrorInfo reason of the status of a
// request that found the token unavailable. It is not a RefusalReason.
const ErrorInfoTokenUnavailable = "TOKEN_UNAVAILABLE"

// tokenUnavailableStatus is the status of err, a token that is
// unavailable: Unavailable, and an ErrorInfo saying whether the signer is
// reconnecting (metadata "final" "false") or the token refused its PIN and
// an operator must act ("true"). The cause is logged, not sent.
func tokenUnavailableStatus(err error) *status.Status {
	final := errors.Is(err, hsm.ErrWrongPIN) || errors.Is(err, hsm.ErrPINLocked)
	msg := "signer: the token is unavailable (the signer is reconnecting to it): nothing was signed or recorded; resend once it is back"
	if final {
		msg = "signer: the token is unavailable: it refused the PIN when the signer logged in again, which is not retried; an operator must act. Nothing was signed or recorded"
	}
	st := status.New(codes.Unavailable, msg)
	info := &errdetails.ErrorInfo{Reason: ErrorInfoTokenUnavailable, Domain: ErrorDomain, Metadata: map[string]string{"final": fmt.Sprint(final)}}
	if withDetails, derr := st.WithDetails(protoadapt.MessageV1Of(info)); derr == nil {
		return withDetails
	}
	return st
}

// IsTokenUnavailable reports whether st is the status StatusOf makes of a
// token that is unavailable: nothing was decided, and the same request may
// be resent.
func IsTokenUnavailable(st *status.Status) bool {
	for _, d := range st.Details() {
		if v, ok := d.(*errdetails.ErrorInfo); ok && v.GetDomain() == ErrorDomain && v.GetReason() == ErrorInfoTokenUnavailable {
			return st.Code() == codes.Unavailable
		}
	}
	return false
}

// IsStoreFull reports whether st is the status StatusOf makes of
// ErrStoreFull: nothing was decided, and the same request may be resent.
func IsStoreFull(st *status.Status) bool {
	for _, d := range st.Details() {
		if v, ok := d.(*errdetails.ErrorInfo); ok && v.GetDomain() == ErrorDomain && v.GetReason() == ErrorInfoStoreFull {
			return st.Code() == codes.ResourceExhausted
		}
	}
	return false
}

// RefusalFromStatus recovers a refusal from a status made by StatusOf:
// the reason, the detail, the field and the pending block, if any. ok is
// false for a status that is not a refusal.
func RefusalFromStatus(st *status.Status) (r *Refusal, ok bool) {
	for _, d := range st.Details() {
		switch v := d.(type) {
		case *errdetails.ErrorInfo:
			if v.GetDomain() != ErrorDomain {
				continue
			}
			reason, known := pb.RefusalReason_value["REFUSAL_REASON_"+v.GetReason()]
			if !known {
				continue
			}
			if r == nil {
				r = &Refusal{}
			}
			r.Reason, r.Detail, r.Field, ok = pb.RefusalReason(reason), v.GetMetadata()["detail"], v.GetMetadata()["field"], true
		case *pb.Block:
			b, err := v.ToNano("pending")
			if err == nil {
				if r == nil {
					r = &Refusal{}
				}
				r.Pending = &b
			}
		}
	}
	return r, ok
}

// Server is the Signer gRPC service.
type Server struct {
	pb.UnimplementedSignerServer
	s   *Signer
	log *slog.Logger
}

// NewServer returns the gRPC service for s.
func NewServer(s *Signer) *Server { return &Server{s: s, log: s.log} }

// Sign implements nanokms.v1.Signer.
func (srv *Server) Sign(ctx context.Context, req *pb.SignRequest) (*pb.SignResponse, error) {
	resp, err := srv.s.Sign(ctx, req)
	if err != nil {
		return nil, srv.status(err, req.GetIntent().GetRequestId())
	}
	return resp, nil
}

// status logs an internal error (requestID is the caller's, quoted and
// capped) and returns err's status.
func (srv *Server) status(err error, requestID string) error {
	var r *Refusal
	switch {
	case errors.As(err, &r):
	case errors.Is(err, ErrStoreFull):
		srv.log.Warn("not decided: the state store is full", "request_id", quoteInput(requestID), "error", err.Error())
	case errors.Is(err, hsm.ErrTokenUnavailable) || errors.Is(err, hsm.ErrSessionLost):
		srv.log.Warn("not decided: the token is unavailable", "request_id", quoteInput(requestID), "error", err.Error())
	default:
		srv.log.Error("internal error", "request_id", quoteInput(requestID), "error", err.Error())
	}
	return StatusOf(err).Err()
}

// GetAccount implements nanokms.v1.Signer.
func (srv *Server) GetAccount(_ context.Context, req *pb.GetAccountRequest) (*pb.AccountState, error) {
	if len(req.GetAccount()) != nano.PublicKeySize {
		return nil, StatusOf(refuseField(rMalformed, "account", "want %d bytes", nano.PublicKeySize)).Err()
	}
	rec, ok, err := srv.s.Account(nano.PublicKey(req.GetAccount()))
	if err != nil {
		return nil, srv.status(err, "")
	}
	if !ok {
		return nil, StatusOf(refuse(rUnknownAccount, "account %s is not tracked", nano.PublicKey(req.GetAccount()).Address())).Err()
	}
	return srv.accountState(rec)
}

func (srv *Server) accountState(rec AccountRecord) (*pb.AccountState, error) {
	sent, err := srv.s.Sent(rec.Account)
	if err != nil {
		return nil, srv.status(err, "")
	}
	st := &pb.AccountState{
		Account:     rec.Account[:],
		Address:     rec.Account.Address(),
		Wallet:      rec.Wallet,
		Index:       rec.Index,
		Frontier:    rec.FrontierHash[:],
		BalanceRaw:  rec.Balance().String(),
		Height:      rec.Height,
		Sent_24HRaw: sent.String(),
	}
	if rec.Frontier != nil {
		st.Representative = rec.Frontier.Representative[:]
	}
	return st, nil
}

// AdoptAccount implements nanokms.v1.Signer.
func (srv *Server) AdoptAccount(ctx context.Context, req *pb.AdoptAccountRequest) (*pb.AccountState, error) {
	var head *nano.StateBlock
	if req.GetHead() != nil {
		b, err := req.GetHead().ToNano("head")
		if err != nil {
			return nil, StatusOf(parseRefusal(err)).Err()
		}
		head = &b
	}
	rec, err := srv.s.Adopt(ctx, req.GetWallet(), req.GetIndex(), head, req.GetHeight())
	if err != nil {
		return nil, srv.status(err, "")
	}
	return srv.accountState(rec)
}

// Audit implements nanokms.v1.Signer.
func (srv *Server) Audit(req *pb.AuditRequest, stream grpc.ServerStreamingServer[pb.AuditRecord]) error {
	next := req.GetFromSeq()
	ctx := stream.Context()
	for {
		appended := srv.s.state.auditAppended()
		var err error
		next, err = srv.s.state.auditFrom(ctx, next, stream.Send)
		if err != nil {
			return srv.status(err, "")
		}
		if !req.GetFollow() {
			return nil
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-appended:
		}
	}
}

// ServeOptions says where and how to listen.
type ServeOptions struct {
	// Listen is "unix:///path/to.sock" or "tcp://host:port".
	Listen string
	// TLS is required for tcp: the server's certificate, the CA that
	// signs clients' certificates, and the client identities (DNS SAN or
	// common name) allowed in.
	CertFile, KeyFile, ClientCAFile string
	AllowedIdentities               []string
	// Key, when set, is the private key of CertFile in place of KeyFile:
	// a key on a token (package hsm/tlskey), which the handshake signs
	// with through crypto.Signer.
	Key crypto.Signer
	// Grace bounds the graceful shutdown; in-flight requests finish
	// within it, then the rest are cut.
	Grace time.Duration
	// SpaceProbe is how often the signer checks for space while its state
	// store is full; 0 means 5 seconds.
	SpaceProbe time.Duration
	// TokenCheck is how often the signer looks at its token while it is
	// available and no request did (TokenMonitor.Check); 0 means 10
	// seconds.
	TokenCheck time.Duration
	// ObserveToken, when set, is told the token's status at start and at
	// every change (for metrics). It must not block.
	ObserveToken func(hsm.TokenStatus)
}

// Listen opens the listener ServeOptions describe: a Unix socket with mode
// 0600 (a stale socket file is replaced, a live one refused), or TCP.
func Listen(opts ServeOptions) (net.Listener, error) {
	l, err := grpcserve.Listen(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("signer: listen: %w", err)
	}
	return l, nil
}

// serverTLS is the mutual TLS configuration opts describe: the key file,
// or opts.Key.
func serverTLS(opts ServeOptions) (*tls.Config, error) {
	if opts.Key == nil {
		return mtls.Server(opts.CertFile, opts.KeyFile, opts.ClientCAFile, opts.AllowedIdentities)
	}
	cert, err := mtls.KeyPair(opts.CertFile, opts.Key)
	if err != nil {
		return nil, err
	}
	return mtls.ServerCert(cert, opts.ClientCAFile, opts.AllowedIdentities)
}

// Serve serves srv on l until ctx is done, then shuts down gracefully
// within opts.Grace. The health service reports SERVING while the state
// store is writable and the token available, and NOT_SERVING while the
// store is full (ErrStoreFull) or the token unavailable
// (hsm.ErrTokenUnavailable). While full, the store is probed for space
// every opts.SpaceProbe; the token reconnects by itself (package hsm) and
// is looked at every opts.TokenCheck while available (watchToken); so
// health and signing resume without a restart once space is freed or the
// token is back.
// Strings that are not UTF-8 in a request reach the signer as U+FFFD
// (lenientCodec), to be refused and recorded like any bad input.
func Serve(ctx context.Context, l net.Listener, srv *Server, opts ServeOptions) error {
	var creds *tls.Config
	if grpcserve.IsTCP(opts.Listen) {
		cfg, err := serverTLS(opts)
		if err != nil {
			l.Close()
			return err
		}
		creds = cfg
	}
	grace := opts.Grace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	probe := opts.SpaceProbe
	if probe <= 0 {
		probe = defaultSpaceProbe
	}
	store := srv.s.state
	wctx, stopWatching := context.WithCancel(ctx)
	watched, tokenWatched := make(chan struct{}), make(chan struct{})
	go func() { defer close(watched); store.watch(wctx, probe, srv.log) }()
	tm, _ := srv.s.keys.(TokenMonitor)
	if tm != nil {
		check := opts.TokenCheck
		if check <= 0 {
			check = defaultTokenCheck
		}
		go func() { defer close(tokenWatched); watchToken(wctx, tm, check, srv.log, opts.ObserveToken) }()
	} else {
		close(tokenWatched)
	}
	// NOT_SERVING while the state store cannot be written (Writable) or
	// the token is unavailable.
	health := grpcserve.NewHealth(pb.Signer_ServiceDesc.ServiceName)
	followed := health.Follow(wctx, serving(wctx, store, tm))
	defer func() { stopWatching(); <-watched; <-tokenWatched; <-followed }()
	return grpcserve.ServeWith(ctx, l, creds, grace, func(g *grpc.Server) { pb.RegisterSignerServer(g, srv) },
		grpcserve.Options{Health: health, ServerOptions: []grpc.ServerOption{grpc.ForceServerCodecV2(newLenientCodec())}})
}
