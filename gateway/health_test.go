package gateway

// The gateway's health endpoints, on its metrics listener, on the real
// `nanokms gateway` process with a dev node over HTTP and a file bridge
// in a temporary directory: ready, then the node stopped, then the
// medium's directory removed, each for real, and back; the gRPC health
// service of the Custody API says the same each time.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nanokms/nanokms/devnode"
	"github.com/nanokms/nanokms/internal/health/healthtest"
	"github.com/nanokms/nanokms/internal/killtest"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

const healthGatewayConfig = `[gateway]
state = %q
listen = "unix://%s"
manifests = [%q]
resend_interval = "500ms"
metrics_listen = %q
log_level = "info"

[bridge]
kind = "file"
inbound = %q
outbound = %q
poll_interval = "20ms"

[node]
rpc = "http://%s"
timeout = "2s"
work = "cpu"
`

// restartableNode is a dev node whose RPC listener the test stops and
// starts again on the same address.
type restartableNode struct {
	t      *testing.T
	dev    *devnode.Node
	addr   string
	stop   context.CancelFunc
	served chan error
}

func startRestartableNode(t *testing.T) *restartableNode {
	t.Helper()
	dev, err := devnode.New(devnode.Options{RandSeed: 1})
	if err != nil {
		t.Fatal(err)
	}
	n := &restartableNode{t: t, dev: dev, addr: "127.0.0.1:0"}
	n.start()
	t.Cleanup(func() { n.halt(); dev.Close() })
	return n
}

func (n *restartableNode) start() {
	n.t.Helper()
	l, err := net.Listen("tcp", n.addr)
	if err != nil {
		n.t.Fatal(err)
	}
	n.addr = l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	n.stop, n.served = cancel, make(chan error, 1)
	go func() { n.served <- n.dev.Serve(ctx, l, nil, nil) }()
}

// halt stops the node's listener and waits until it is closed.
func (n *restartableNode) halt() {
	n.t.Helper()
	if n.stop == nil {
		return
	}
	n.stop()
	if err := <-n.served; err != nil {
		n.t.Errorf("devnode: %v", err)
	}
	n.stop = nil
}

// freeTCPAddr returns an address on 127.0.0.1 that was free a moment ago
// (the gateway takes metrics_listen from its file).
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestGatewayHealthEndpoints(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bin := killtest.Build(t, "cmd/nanokms")
	n := startRestartableNode(t)

	acct := custodytest.NewExtAccount(3).Pub
	manifest := filepath.Join(dir, "custody.json")
	data, _ := json.Marshal(map[string]any{"wallet": custodytest.Wallet, "accounts": []map[string]any{
		{"index": 0, "public_key": acct.String(), "account": acct.Address()}}})
	if err := os.WriteFile(manifest, data, 0o600); err != nil {
		t.Fatal(err)
	}
	toCold, toHot := filepath.Join(dir, "bridge", "to-cold"), filepath.Join(dir, "bridge", "to-hot")
	sock := filepath.Join(dir, "gw.sock")
	addr := freeTCPAddr(t)
	cfg := filepath.Join(dir, "gateway.toml")
	text := fmt.Sprintf(healthGatewayConfig, filepath.Join(dir, "gateway.db"), sock, manifest, addr, toHot, toCold, n.addr)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := killtest.New(t, "gateway", filepath.Join(dir, "gateway.log"), bin, "gateway", "--config", cfg)
	conn := killtest.Dial(t, sock)
	hc := healthpb.NewHealthClient(conn)
	gw.MustStart()

	grpcHealth := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		status := func(service string) healthpb.HealthCheckResponse_ServingStatus {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: service}, grpc.WaitForReady(true))
			if err != nil {
				return healthpb.HealthCheckResponse_UNKNOWN
			}
			return resp.GetStatus()
		}
		if err := gw.WaitReady(time.Minute, "gRPC health "+want.String(), func() bool {
			return status("") == want && status(pb.Custody_ServiceDesc.ServiceName) == want
		}); err != nil {
			t.Fatal(err)
		}
	}
	alive := func() {
		t.Helper()
		if code, body, err := healthtest.Get(ctx, addr, "/healthz"); err != nil || code != 200 || body != "alive\n" {
			t.Errorf("/healthz = %d %q %v, want 200 alive", code, body, err)
		}
	}

	// Ready, on the metrics listener, which still serves /metrics.
	if body := healthtest.WaitFor(t, time.Minute, addr, "/readyz", 200); body != "ready\nok store\nok medium\nok node\n" {
		t.Errorf("/readyz = %q", body)
	}
	grpcHealth(healthpb.HealthCheckResponse_SERVING)
	alive()
	if code, body, err := healthtest.Get(ctx, addr, "/metrics"); err != nil || code != 200 || len(body) == 0 {
		t.Errorf("/metrics = %d (%d bytes), %v", code, len(body), err)
	}

	// --- The node stopped: 503 naming the node, NOT_SERVING.
	n.halt()
	body := healthtest.WaitFor(t, time.Minute, addr, "/readyz", 503, "not ready: node\n", "\nok store\n", "\nok medium\n", "\nfail node: ")
	t.Logf("node stopped: %q", body)
	grpcHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	alive()
	if code, _, err := healthtest.Do(ctx, "HEAD", addr, "/readyz"); err != nil || code != 503 {
		t.Errorf("HEAD /readyz = %d, %v; want 503", code, err)
	}
	n.start()
	healthtest.WaitFor(t, time.Minute, addr, "/readyz", 200, "ready\n")
	grpcHealth(healthpb.HealthCheckResponse_SERVING)

	// --- The medium's inbound directory removed: 503 naming the medium,
	// NOT_SERVING; back once it is there again.
	if err := os.RemoveAll(toHot); err != nil {
		t.Fatal(err)
	}
	body = healthtest.WaitFor(t, time.Minute, addr, "/readyz", 503, "not ready: medium\n", "\nfail medium: ", toHot, "\nok node\n")
	t.Logf("medium removed: %q", body)
	grpcHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	alive()
	if err := os.Mkdir(toHot, 0o700); err != nil {
		t.Fatal(err)
	}
	healthtest.WaitFor(t, time.Minute, addr, "/readyz", 200, "ready\nok store\nok medium\nok node\n")
	grpcHealth(healthpb.HealthCheckResponse_SERVING)

	if err := gw.Terminate(10 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	for _, want := range []string{`"msg":"not ready: node"`, `"msg":"not ready: medium"`, `"msg":"ready"`} {
		if gw.LogCount(want) == 0 {
			t.Errorf("the gateway's log has no %s", want)
		}
	}
}
