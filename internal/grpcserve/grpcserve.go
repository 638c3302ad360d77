// Package grpcserve runs nanokms's gRPC services the same way everywhere:
// a listener on a Unix socket (mode 0600, never stealing a live socket) or
// on TCP, the gRPC health service, and a graceful shutdown bounded in time.
//
// It never chooses transport security itself: a TCP caller passes the
// mutual TLS configuration (package mtls); Unix sockets rely on file
// permissions.
package grpcserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// ErrAddress is returned by Listen for an address that is neither
// unix:///path nor tcp://host:port.
var ErrAddress = errors.New("grpcserve: want unix:///path or tcp://host:port")

// IsTCP reports whether addr names a TCP listener.
func IsTCP(addr string) bool { return strings.HasPrefix(addr, "tcp://") }

// Listen opens addr: "unix:///path" (the directory is created with mode
// 0700, the socket has mode 0600, a stale socket file is replaced and a
// live one is refused) or "tcp://host:port".
func Listen(addr string) (net.Listener, error) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		path := strings.TrimPrefix(addr, "unix://")
		if path == "" {
			return nil, fmt.Errorf("%w: empty unix socket path", ErrAddress)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("grpcserve: %w", err)
		}
		if _, err := os.Stat(path); err == nil {
			if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
				c.Close()
				return nil, fmt.Errorf("grpcserve: %s is in use by another process", path)
			}
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("grpcserve: removing a stale socket: %w", err)
			}
		}
		old := syscall.Umask(0o177)
		l, err := net.Listen("unix", path)
		syscall.Umask(old)
		if err != nil {
			return nil, fmt.Errorf("grpcserve: %w", err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			l.Close()
			return nil, fmt.Errorf("grpcserve: %w", err)
		}
		return l, nil
	case IsTCP(addr):
		l, err := net.Listen("tcp", strings.TrimPrefix(addr, "tcp://"))
		if err != nil {
			return nil, fmt.Errorf("grpcserve: %w", err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("%w (got %q)", ErrAddress, addr)
}

// Serve serves on l the services register adds, with creds when not nil,
// and the health service reporting SERVING for "" and every name in
// services, until ctx is done. Then it reports NOT_SERVING and stops
// gracefully: in-flight calls get grace to finish, the rest are cut.
func Serve(ctx context.Context, l net.Listener, creds *tls.Config, grace time.Duration, register func(*grpc.Server), services ...string) error {
	return ServeWith(ctx, l, creds, grace, register, Options{Health: NewHealth(services...)})
}

// Health is the gRPC health service of one server: the overall status ("")
// and that of each named service move together.
type Health struct {
	hs       *health.Server
	services []string
}

// NewHealth returns a health service reporting SERVING for "" and every
// name in services.
func NewHealth(services ...string) *Health {
	h := &Health{hs: health.NewServer(), services: services}
	h.SetServing(true)
	return h
}

// SetServing reports SERVING (true) or NOT_SERVING (false) for "" and
// every service, to Check and to every Watch. Once the server has stopped,
// it stays NOT_SERVING.
func (h *Health) SetServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	h.hs.SetServingStatus("", st)
	for _, name := range h.services {
		h.hs.SetServingStatus(name, st)
	}
}

// Follow sets h from ready until ctx is done: ready returns whether the
// server can do its work now and a channel closed when that may have
// changed (nil: it never changes); it is called again each time. The
// first status is set before Follow returns; the returned channel is
// closed once h is no longer followed.
func (h *Health) Follow(ctx context.Context, ready func() (ok bool, changed <-chan struct{})) <-chan struct{} {
	done := make(chan struct{})
	ok, changed := ready()
	h.SetServing(ok)
	go func() {
		defer close(done)
		for changed != nil {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			ok, changed = ready()
			h.SetServing(ok)
		}
	}()
	return done
}

// Options are the optional settings of ServeWith.
type Options struct {
	// Health is the health service to serve, which the caller may turn to
	// NOT_SERVING and back while it serves (a server that cannot do its
	// work, such as one whose state file is full). Serve a Health only
	// once. Nil: a Health reporting SERVING for "" alone.
	Health *Health
	// ServerOptions are added to the gRPC server's options.
	ServerOptions []grpc.ServerOption
}

// ServeWith is Serve with options.
func ServeWith(ctx context.Context, l net.Listener, creds *tls.Config, grace time.Duration, register func(*grpc.Server), o Options) error {
	h := o.Health
	if h == nil {
		h = NewHealth()
	}
	opts := append([]grpc.ServerOption(nil), o.ServerOptions...)
	if creds != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(creds)))
	}
	g := grpc.NewServer(opts...)
	register(g)
	healthpb.RegisterHealthServer(g, h.hs)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(l) }()
	select {
	case err := <-errc:
		h.hs.Shutdown()
		return err
	case <-ctx.Done():
	}
	h.hs.Shutdown()
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		g.Stop()
		<-done
	}
	return nil
}
