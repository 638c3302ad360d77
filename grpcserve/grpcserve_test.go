package grpcserve

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
