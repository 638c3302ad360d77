package grpcserve

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestListen(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "s.sock")
	l, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if _, err := Listen("unix://" + sock); err == nil {
		t.Fatal("a live socket was taken over")
	}
	l.Close()
	// A stale socket file (no listener) is replaced.
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l2, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
	for _, bad := range []string{"", "unix://", "http://x", "udp://1.2.3.4:5", "tcp:/x"} {
		if _, err := Listen(bad); !errors.Is(err, ErrAddress) {
			t.Errorf("Listen(%q) = %v, want ErrAddress", bad, err)
		}
	}
	tl, err := Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl.Close()
}

func TestServeHealthAndGracefulStop(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, nil, time.Second, func(*grpc.Server) {}, "test.Service") }()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a hang bound
	defer cancel()
	for _, svc := range []string{"", "test.Service"} {
		resp, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{Service: svc}, grpc.WaitForReady(true))
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q: %v %v", svc, resp.GetStatus(), err)
		}
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(20 * time.Second): // a hang bound (the grace is 1 s)
		t.Fatal("Serve did not stop")
	}
}

// TestServeWithHealth: the caller turns the health service to
// NOT_SERVING and back, for "" and every named service, as Check and Watch
// see it; after the server stops it stays NOT_SERVING.
func TestServeWithHealth(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHealth("test.Service")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeWith(ctx, l, nil, time.Second, func(*grpc.Server) {}, Options{Health: h}) }()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(conn)
	watch, err := hc.Watch(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	next := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		resp, err := watch.Recv()
		if err != nil || resp.GetStatus() != want {
			t.Fatalf("health watch: %v %v, want %v", resp.GetStatus(), err, want)
		}
	}
	check := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for _, svc := range []string{"", "test.Service"} {
			resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || resp.GetStatus() != want {
				t.Fatalf("health of %q: %v %v, want %v", svc, resp.GetStatus(), err, want)
			}
		}
	}
	next(healthpb.HealthCheckResponse_SERVING)
	check(healthpb.HealthCheckResponse_SERVING)
	h.SetServing(false)
	next(healthpb.HealthCheckResponse_NOT_SERVING)
	check(healthpb.HealthCheckResponse_NOT_SERVING)
	h.SetServing(true)
	next(healthpb.HealthCheckResponse_SERVING)
	check(healthpb.HealthCheckResponse_SERVING)
	stop()
	next(healthpb.HealthCheckResponse_NOT_SERVING)
	if err := <-done; err != nil {
		t.Fatalf("ServeWith returned %v", err)
	}
	h.SetServing(true) // after the stop: ignored
	if resp, err := h.hs.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health after the stop: %v %v", resp.GetStatus(), err)
	}
}

// readiness is a switchable ready function for Health.Follow.
type readiness struct {
	mu      sync.Mutex
	ok      bool
	changed chan struct{}
}

func (r *readiness) get() (bool, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ok, r.changed
}

func (r *readiness) set(ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ok = ok
	close(r.changed)
	r.changed = make(chan struct{})
}

// TestHealthFollow checks that Follow sets the first status before it
// returns (a server that is not ready never reports SERVING), then follows
// every change for "" and each service, as Watch sees it, without a
// restart, and stops when its context ends.
func TestHealthFollow(t *testing.T) {
	h := NewHealth("test.Service")
	r := &readiness{changed: make(chan struct{})}
	fctx, stopFollowing := context.WithCancel(context.Background())
	followed := h.Follow(fctx, r.get)
	defer func() { stopFollowing(); <-followed }()
	if resp, err := h.hs.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("status when Follow returns: %v %v, want NOT_SERVING", resp.GetStatus(), err)
	}
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeWith(ctx, l, nil, time.Second, func(*grpc.Server) {}, Options{Health: h}) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("ServeWith: %v", err)
		}
	}()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watch := func(svc string) healthpb.Health_WatchClient {
		w, err := healthpb.NewHealthClient(conn).Watch(cctx, &healthpb.HealthCheckRequest{Service: svc}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	until := func(w healthpb.Health_WatchClient, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for {
			resp, err := w.Recv()
			if err != nil {
				t.Fatalf("waiting for %v: %v", want, err)
			}
			if resp.GetStatus() == want {
				return
			}
		}
	}
	overall, svc := watch(""), watch("test.Service")
	resp, err := overall.Recv()
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("first status %v, %v; want NOT_SERVING", resp.GetStatus(), err)
	}
	r.set(true)
	until(overall, healthpb.HealthCheckResponse_SERVING)
	until(svc, healthpb.HealthCheckResponse_SERVING)
	r.set(false)
	until(overall, healthpb.HealthCheckResponse_NOT_SERVING)
	until(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	r.set(true)
	until(svc, healthpb.HealthCheckResponse_SERVING)
}
