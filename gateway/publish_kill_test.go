package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
)

// killProxy is the node RPC as the gateway sees it: the dev node's, with
// the gateway process SIGKILLed around one process call when armed.
type killProxy struct {
	next http.Handler
	gw   *killtest.Proc

	mu     sync.Mutex
	armed  string     // crashBeforeProcess or crashAfterProcess; "" passes
	killed chan error // receives the kill's outcome
}

func (p *killProxy) arm(point string) <-chan error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = point
	p.killed = make(chan error, 1)
	return p.killed
}

func (p *killProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req struct {
		Action string `json:"action"`
	}
	_ = json.Unmarshal(body, &req)
	p.mu.Lock()
	point, killed := "", p.killed
	if req.Action == "process" {
		point, p.armed = p.armed, ""
	}
	p.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	switch point {
	case crashBeforeProcess:
		// The gateway dies waiting for the answer; the node never sees
		// the block.
		killed <- p.gw.Kill()
		http.Error(w, "the gateway is gone", http.StatusServiceUnavailable)
	case crashAfterProcess:
		// The node takes the block; the gateway dies before the answer
		// reaches it.
		rec := httptest.NewRecorder()
		p.next.ServeHTTP(rec, r)
		if !bytes.Contains(rec.Body.Bytes(), []byte(`"hash"`)) {
			killed <- fmt.Errorf("the node refused the block: %s", rec.Body.Bytes())
			return
		}
		killed <- p.gw.Kill()
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	default:
		p.next.ServeHTTP(w, r)
	}
}

const pkGatewayConfig = `[gateway]
state = %q
listen = "unix://%s"
manifests = [%q]
resend_interval = "500ms"
log_level = "info"

[bridge]
kind = "file"
inbound = %q
outbound = %q
poll_interval = "20ms"

[node]
rpc = %q
websocket = %q
timeout = "5s"
work = "cpu"
work_threshold = "%016x"
`

// TestKillGatewayAroundPublish runs the real gateway command against a
// dev node and SIGKILLs it around the publication of a block: when its
// process call reaches the node (the node never sees the block), after the
// node took the block and before the gateway heard so, and after the
// gateway recorded PUBLISHED and went on to the account's next request
// (confirmations held on the node). After each restart every request
// reaches CONFIRMED and the node holds exactly the blocks the signer
// signed.
func TestKillGatewayAroundPublish(t *testing.T) {
	dir := t.TempDir()
	bin := killtest.Build(t, "cmd/nanokms")
	env := signertest.MustEnv(t, 1)
	acct := env.Account(0)
	proxy := &killProxy{}
	n := startPubNode(t, func(h http.Handler) http.Handler { proxy.next = h; return proxy })

	manifest := filepath.Join(dir, "custody.json")
	data, _ := json.Marshal(map[string]any{"wallet": custodytest.Wallet, "accounts": []map[string]any{
		{"index": 0, "public_key": acct.String(), "account": acct.Address()}}})
	if err := os.WriteFile(manifest, data, 0o600); err != nil {
		t.Fatal(err)
	}
	toCold, toHot := filepath.Join(dir, "bridge", "to-cold"), filepath.Join(dir, "bridge", "to-hot")
	for _, d := range []string{toCold, toHot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "gw.sock")
	gwCfg := filepath.Join(dir, "gateway.toml")
	cfg := fmt.Sprintf(pkGatewayConfig, filepath.Join(dir, "gateway.db"), sock, manifest, toHot, toCold, n.rpcURL, n.wsURL, max(n.sendTh, n.recvTh))
	if err := os.WriteFile(gwCfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gateway := killtest.New(t, "gateway", filepath.Join(dir, "gateway.log"), bin, "gateway", "--config", gwCfg)
	proxy.gw = gateway

	runRelay(t, env, toCold, toHot)

	conn := killtest.Dial(t, sock)
	custody, health := pb.NewCustodyClient(conn), healthpb.NewHealthClient(conn)
	start := func() {
		t.Helper()
		gateway.MustStart()
		if err := gateway.WaitServing(20*time.Second, health); err != nil {
			t.Fatal(err)
		}
	}
	submit := func(req *pb.SubmitIntentRequest) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := custody.SubmitIntent(ctx, req, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("SubmitIntent: %v", err)
		}
		return req.GetIntent().GetRequestId()
	}
	get := func(id string) *pb.Request {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := custody.GetRequest(ctx, &pb.GetRequestRequest{RequestId: id}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("GetRequest %s: %v", id, err)
		}
		return r
	}
	awaitKill := func(killed <-chan error, point string) {
		t.Helper()
		select {
		case err := <-killed:
			if err != nil {
				t.Fatalf("%s: %v", point, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the gateway never called process (%s)", point)
		}
	}
	awaitConfirmed := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			var r *pb.Request
			poll(t, 30*time.Second, "request "+id+" is CONFIRMED", func() bool {
				r = get(id)
				return r.GetStatus() == pb.RequestStatus_REQUEST_STATUS_CONFIRMED
			})
			n.mustConfirmedOnNode(t, r)
		}
	}
	send := func(amount uint64) *pb.SubmitIntentRequest {
		in := env.SendIntent(acct, custodytest.XNO(amount), custodytest.NewExtAccount(40).Pub)
		return &pb.SubmitIntentRequest{Intent: in, Approvals: env.Approve(in, "service")}
	}
	start()
	var ids []string

	// 1. Killed when its process call reaches the node.
	fund, err := n.dev.Fund(t.Context(), acct, custodytest.XNO(50))
	if err != nil {
		t.Fatal(err)
	}
	killed := proxy.arm(crashBeforeProcess)
	ids = append(ids, submit(&pb.SubmitIntentRequest{Intent: env.ReceiveIntent(acct, custodytest.XNO(50), fund, &env.Rep)}))
	awaitKill(killed, crashBeforeProcess)
	start()
	awaitConfirmed(ids...)

	// 2. Killed after the node took the block, before the answer.
	killed = proxy.arm(crashAfterProcess)
	ids = append(ids, submit(send(1)))
	awaitKill(killed, crashAfterProcess)
	start()
	awaitConfirmed(ids...)

	// 3. Killed after PUBLISHED is recorded and the send loop has gone on
	// to the account's next request, before confirmation.
	n.dev.HoldConfirmations(true)
	first := submit(send(2))
	poll(t, 30*time.Second, "request "+first+" is PUBLISHED", func() bool {
		return get(first).GetStatus() == pb.RequestStatus_REQUEST_STATUS_PUBLISHED
	})
	next := submit(send(3))
	poll(t, 30*time.Second, "request "+next+" is sent", func() bool {
		return get(next).GetStatus() != pb.RequestStatus_REQUEST_STATUS_QUEUED
	})
	if s := get(first).GetStatus(); s != pb.RequestStatus_REQUEST_STATUS_PUBLISHED {
		t.Fatalf("request %s is %s before the kill, want PUBLISHED", first, s)
	}
	gateway.MustKill()
	ids = append(ids, first, next)
	start()
	n.dev.HoldConfirmations(false)
	awaitConfirmed(ids...)

	// Everything the node holds for the account was signed by the signer,
	// each request once.
	checkSignedExactly(t, env, ids...)
	chain := nodeChain(t, n, acct)
	if len(chain) != len(ids) {
		t.Fatalf("the node holds %d blocks of the account, want %d", len(chain), len(ids))
	}
	for i, id := range ids {
		r := get(id)
		if !bytes.Equal(r.GetBlockHash(), chain[i][:]) {
			t.Fatalf("block %d on the node is %s, request %s signed %X", i, chain[i], id, r.GetBlockHash())
		}
	}
	if err := gateway.Terminate(15 * time.Second); err != nil {
		t.Errorf("the gateway's exit on SIGTERM: %v", err)
	}
	t.Logf("%d requests confirmed through %d SIGKILLs of the gateway", len(ids), gateway.Kills())
}

// nodeChain returns the hashes of the account's blocks on the node, oldest first.
func nodeChain(t *testing.T, n *pubNode, acct nano.PublicKey) []nano.Hash {
	t.Helper()
	ai, err := n.direct.AccountInfo(t.Context(), acct)
	if err != nil {
		t.Fatal(err)
	}
	var out []nano.Hash
	for h := ai.Frontier; !h.IsZero(); {
		bi, err := n.direct.BlockInfo(t.Context(), h)
		if err != nil {
			t.Fatal(err)
		}
		out = append([]nano.Hash{h}, out...)
		h = bi.Block.Previous
	}
	return out
}
