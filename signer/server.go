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

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/internal/grpcserve"
	"github.com/nanokms/nanokms/internal/health"
	"github.com/nanokms/nanokms/internal/keystore"
	"github.com/nanokms/nanokms/internal/mtls"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// StatusOf converts err to a gRPC status: a *Refusal becomes its code with
// an ErrorInfo (and, for a pending block, the block as a second detail);
// ErrStoreFull becomes ResourceExhausted with an ErrorInfo whose reason is
// signerapi.ErrorInfoStoreFull, and a token that is unavailable
// (keystore.ErrTokenUnavailable) Unavailable with an ErrorInfo whose reason is
// signerapi.ErrorInfoTokenUnavailable, final when the token refused the PIN
// (keystore.ErrPINRefused), and a state database that is unavailable
// (ErrStoreUnavailable, and so a retired one: ErrStoreRetired)
// Unavailable with an ErrorInfo whose reason is
// signerapi.ErrorInfoStoreUnavailable (none is a refusal: nothing signed
// was released, the caller resends later, to this or another signer);
// anything else is Internal, with a generic message (internal errors are
// logged, not sent).
func StatusOf(err error) *status.Status {
	var r *Refusal
	if !errors.As(err, &r) {
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			return status.FromContextError(err)
		case errors.Is(err, ErrStoreFull):
			return signerapi.StoreFullStatus()
		case errors.Is(err, keystore.ErrTokenUnavailable):
			// The cause is logged, not sent.
			return signerapi.TokenUnavailableStatus(errors.Is(err, keystore.ErrPINRefused))
		case errors.Is(err, ErrStoreUnavailable):
			// The cause is logged, not sent.
			return signerapi.StoreUnavailableStatus()
		}
		return status.New(codes.Internal, "signer: internal error (see the signer's log)")
	}
	rr := *r
	rr.Detail = boundedText(r.Detail, maxDetailLen)
	if rr.Field != "" {
		rr.Field = boundedText(r.Field, maxQuoted)
	}
	return signerapi.RefusalStatus(&rr)
}

// Server is the Signer gRPC service.
type Server struct {
	pb.UnimplementedSignerServer
	s       *Signer
	log     *slog.Logger
	backups chan struct{} // one element while a backup runs (backup.go)
}

// NewServer returns the gRPC service for s.
func NewServer(s *Signer) *Server { return &Server{s: s, log: s.log, backups: make(chan struct{}, 1)} }

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
	case errors.Is(err, keystore.ErrTokenUnavailable):
		srv.log.Warn("not decided: the token is unavailable", "request_id", quoteInput(requestID), "error", err.Error())
	case errors.Is(err, ErrStoreRetired):
		srv.log.Error("not decided: the state store was retired", "request_id", quoteInput(requestID), "error", err.Error())
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

		FrontierUnconfirmed: rec.Unconfirmed,
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
	var chain []nano.StateBlock
	for i, c := range req.GetChain() {
		b, err := c.ToNano(fmt.Sprintf("chain[%d]", i))
		if err != nil {
			return nil, StatusOf(parseRefusal(err)).Err()
		}
		chain = append(chain, b)
	}
	rec, err := srv.s.AdoptChain(ctx, req.GetWallet(), req.GetIndex(), head, chain, req.GetHeight())
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
	ObserveToken func(keystore.TokenStatus)
	// HealthListener, when set, is where /healthz and /readyz are served
	// over HTTP (package health), from the same checks as the gRPC health
	// service (the checks "token" and "state"); Serve closes it. nil: no
	// HTTP.
	HealthListener net.Listener
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
// (keystore.ErrTokenUnavailable): the checks "token" and "state" (see
// readiness), which /readyz on opts.HealthListener reports too. While full,
// the store is probed for space every opts.SpaceProbe; the token
// reconnects by itself (package hsm) and is looked at every
// opts.TokenCheck while available (watchToken); so health and signing
// resume without a restart once space is freed or the token is back.
// Strings that are not UTF-8 in a request reach the signer as U+FFFD
// (lenientCodec), to be refused and recorded like any bad input.
func Serve(ctx context.Context, l net.Listener, srv *Server, opts ServeOptions) error {
	var creds *tls.Config
	if grpcserve.IsTCP(opts.Listen) {
		cfg, err := serverTLS(opts)
		if err != nil {
			l.Close()
			if opts.HealthListener != nil {
				opts.HealthListener.Close()
			}
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
	// the token is unavailable; /readyz says the same.
	mon := health.NewMonitor(health.Options{}, readiness(store, tm)...)
	if _, err := mon.Evaluate(ctx); err != nil {
		stopWatching()
		<-watched
		<-tokenWatched
		l.Close()
		if opts.HealthListener != nil {
			opts.HealthListener.Close()
		}
		return nil
	}
	monitored := make(chan struct{})
	go func() { defer close(monitored); mon.Run(wctx) }()
	gh := grpcserve.NewHealth(pb.Signer_ServiceDesc.ServiceName)
	followed := gh.Follow(wctx, mon.Ready)
	httpDone := make(chan error, 1)
	if opts.HealthListener != nil {
		go func() { httpDone <- health.Serve(wctx, opts.HealthListener, mon.Handler()) }()
	} else {
		httpDone <- nil
	}
	err := grpcserve.ServeWith(ctx, l, creds, grace, func(g *grpc.Server) { pb.RegisterSignerServer(g, srv) },
		grpcserve.Options{Health: gh, ServerOptions: []grpc.ServerOption{grpc.ForceServerCodecV2(newLenientCodec())}})
	stopWatching()
	<-watched
	<-tokenWatched
	<-followed
	<-monitored
	if herr := <-httpDone; err == nil && herr != nil {
		err = fmt.Errorf("signer: serving health: %w", herr)
	}
	return err
}

// readiness is what the signer needs to do its job, as its health
// services report it: "token", the token available (keystore's status,
// kept by the token monitor: a token that went away, or refused the PIN
// on a new login), when the key store is one that can go away; "state",
// the state file writable (not full: ErrStoreFull). Both are states the
// signer keeps, with their change channels; neither touches the token.
func readiness(store State, tm TokenMonitor) []health.Check {
	var checks []health.Check
	if tm != nil {
		checks = append(checks, health.Check{
			Name: "token",
			Probe: func(context.Context) error {
				if ok, _ := tm.Available(); ok {
					return nil
				}
				st := tm.Status()
				if st.Final {
					return errors.New("the token refused the PIN when the signer logged in to it again: nothing is signed until an operator fixes the PIN and restarts the signer")
				}
				if st.Attempts > 0 {
					return fmt.Errorf("unavailable, reconnecting (%d attempts): %s", st.Attempts, errText(st.Cause))
				}
				return fmt.Errorf("unavailable, reconnecting: %s", errText(st.Cause))
			},
			Changed: func() <-chan struct{} { _, c := tm.Available(); return c },
		})
	}
	checks = append(checks, health.Check{
		Name: "state",
		Probe: func(context.Context) error {
			if ok, _ := store.writable(); ok {
				return nil
			}
			if _, isBolt := store.(boltState); isBolt {
				return errors.New("the state store is full: nothing is decided until space is freed")
			}
			if pg, ok := store.(*PGStore); ok && pg.reach.isRetired() {
				return errors.New("the state database was retired (signer state export --retire): nothing is decided on it; start the signers on the store it was imported into")
			}
			return errors.New("the state database is unreachable: nothing is decided until it answers again")
		},
		Changed: func() <-chan struct{} { _, c := store.writable(); return c },
	})
	return checks
}
