package gateway

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/devnode"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/node"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
)

// The publish crash tests stop the gateway at every point of the publish
// pipeline, start a new one on the same state file, and check that every
// request reaches CONFIRMED on a dev node. publish_kill_test.go does the
// same with a real gateway process and SIGKILL.

// pubNode is a dev node served over HTTP (RPC) and WebSocket.
type pubNode struct {
	dev    *devnode.Node
	rpcURL string // the RPC URL the gateway uses (wrap's handler when set)
	wsURL  string
	direct *node.Client
	sendTh uint64
	recvTh uint64
}

// startPubNode starts a dev node; wrap, when set, wraps the RPC handler
// the gateway talks to.
func startPubNode(t *testing.T, wrap func(http.Handler) http.Handler) *pubNode {
	t.Helper()
	dev, err := devnode.New(devnode.Options{ConfirmDelay: 20 * time.Millisecond, RandSeed: 1})
	if err != nil {
		t.Fatal(err)
	}
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	httpL, wsL := listen(), listen()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- dev.Serve(ctx, httpL, nil, wsL) }()
	n := &pubNode{dev: dev, rpcURL: "http://" + httpL.Addr().String(), wsURL: "ws://" + wsL.Addr().String()}
	var proxy *http.Server
	if wrap != nil {
		l := listen()
		proxy = &http.Server{Handler: wrap(dev.RPCHandler()), ReadHeaderTimeout: 5 * time.Second}
		go proxy.Serve(l)
		n.rpcURL = "http://" + l.Addr().String()
	}
	t.Cleanup(func() {
		if proxy != nil {
			proxy.Close()
		}
		cancel()
		if err := <-served; err != nil {
			t.Errorf("devnode: %v", err)
		}
		dev.Close()
	})
	n.direct = node.NewClient(node.NewHTTP("http://"+httpL.Addr().String(), node.HTTPOptions{}), node.ClientOptions{Timeout: 5 * time.Second})
	t.Cleanup(func() { n.direct.Close() })
	n.sendTh, n.recvTh = dev.Thresholds()
	return n
}

// nodeSide opens the gateway's link to the dev node, subscribed to accts.
func (n *pubNode) nodeSide(t *testing.T, accts []nano.PublicKey) *NodeSide {
	t.Helper()
	side, err := OpenNodeSide(context.Background(), NodeConfig{RPC: n.rpcURL, WebSocket: n.wsURL, Timeout: 5 * time.Second, Work: "cpu"},
		NodeSideOptions{
			PollInterval: 20 * time.Millisecond, ReceivableScan: time.Hour,
			Thresholds: node.WorkThresholds{Send: n.sendTh, Receive: n.recvTh},
			WS:         node.WSOptions{Accounts: accts, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond},
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(side.Close)
	return side
}

// mustConfirmedOnNode checks that the node holds r's block, confirmed.
func (n *pubNode) mustConfirmedOnNode(t *testing.T, r *pb.Request) {
	t.Helper()
	b, err := r.GetBlock().ToNano("block")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.dev.WaitConfirmed(t.Context(), b.Hash()); err != nil {
		t.Fatalf("request %s: block %s: %v", r.GetRequestId(), b.Hash(), err)
	}
	bi, err := n.direct.BlockInfo(t.Context(), b.Hash())
	if err != nil || !bi.Confirmed || bi.Block.Signature != b.Signature {
		t.Fatalf("request %s: the node's copy of %s: %+v %v", r.GetRequestId(), b.Hash(), bi, err)
	}
}

// crashLedger is a Ledger whose process dies at one point of the publish
// pipeline: from the first call that reaches the point on, every call
// blocks until the gateway's context ends, so that nothing after the
// point happens in this life.
type crashLedger struct {
	Ledger
	point string
	hit   chan struct{} // closed when the point is reached

	once sync.Once
	dead chan struct{}
}

// The crash points of the publish pipeline.
const (
	crashBeforeProcess  = "before-process"  // the node never got the block
	crashAfterProcess   = "after-process"   // the node has it; PUBLISHED not recorded
	crashAfterPublished = "after-published" // PUBLISHED recorded, confirmation not yet followed
	crashAfterConfirmed = "after-confirmed" // the node confirmed it; CONFIRMED not recorded
)

func newCrashLedger(inner Ledger, point string) *crashLedger {
	return &crashLedger{Ledger: inner, point: point, hit: make(chan struct{}), dead: make(chan struct{})}
}

// die marks the process dead and blocks until ctx ends.
func (c *crashLedger) die(ctx context.Context) error {
	c.once.Do(func() { close(c.dead); close(c.hit) })
	<-ctx.Done()
	return ctx.Err()
}

func (c *crashLedger) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

func (c *crashLedger) Publish(ctx context.Context, b nano.StateBlock, s nano.Subtype) (nano.StateBlock, error) {
	if c.isDead() || c.point == crashBeforeProcess {
		return nano.StateBlock{}, c.die(ctx)
	}
	out, err := c.Ledger.Publish(ctx, b, s)
	if err == nil && c.point == crashAfterProcess {
		return nano.StateBlock{}, c.die(ctx)
	}
	return out, err
}

func (c *crashLedger) AwaitConfirmed(ctx context.Context, h nano.Hash) error {
	if c.isDead() || c.point == crashAfterPublished {
		return c.die(ctx)
	}
	err := c.Ledger.AwaitConfirmed(ctx, h)
	if err == nil && c.point == crashAfterConfirmed {
		return c.die(ctx)
	}
	return err
}

// pubGateway is one life of a gateway on a state file.
type pubGateway struct {
	g    *Gateway
	stop func() // cancels Run, waits for it and closes the state file
}

// startPubGateway starts a gateway on the state ts with a new writer into
// toCold and a new reader of toHot, as a restarted process has.
func startPubGateway(t *testing.T, ts *testStore, ledger Ledger, toCold, toHot string, manifest *Manifest) *pubGateway {
	t.Helper()
	out, err := filemedium.NewFileWriter(toCold)
	if err != nil {
		t.Fatal(err)
	}
	in, err := filemedium.NewFileReader(toHot, filemedium.FileReaderOptions{PollInterval: 5 * time.Millisecond, Types: []frame.FrameType{frame.TypeResponse, frame.TypeRefusal, frame.TypeHeartbeat},
		OnReject: func(name string, err error) { t.Errorf("the gateway quarantined %s: %v", name, err) }})
	if err != nil {
		t.Fatal(err)
	}
	g, err := ts.open(Options{Out: out, Reader: in, Manifest: manifest, Ledger: ledger, ResendInterval: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("gateway run: %v", err)
			}
			g.Close()
			in.Close()
		})
	}
	t.Cleanup(stop)
	return &pubGateway{g: g, stop: stop}
}

// awaitStatus waits (bounded) until request id is in a status ok accepts.
func awaitStatus(t *testing.T, g *Gateway, id string, what string, ok func(pb.RequestStatus) bool) *pb.Request {
	t.Helper()
	cur, ch, cancel, err := g.Watch(id)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for !ok(cur.GetStatus()) {
		select {
		case r := <-ch:
			cur = r
		case <-deadline.C:
			t.Fatalf("request %s is still %s after 30s, want %s", id, cur.GetStatus(), what)
		}
	}
	return cur
}

func isConfirmed(s pb.RequestStatus) bool { return s == pb.RequestStatus_REQUEST_STATUS_CONFIRMED }

// TestPublishCrashPoints: a gateway that dies anywhere in the publish
// pipeline — before the node's process call, after it and before
// PUBLISHED is recorded, after PUBLISHED is recorded (and the send loop
// has moved on to the account's next request), after confirmation and
// before CONFIRMED is recorded — is replaced by a new gateway on the same
// state file, which takes every request to CONFIRMED.
func TestPublishCrashPoints(t *testing.T) { forEachStore(t, testPublishCrashPoints) }

func testPublishCrashPoints(t *testing.T, kind storeKind) {
	points := []string{crashBeforeProcess, crashAfterProcess, crashAfterPublished, crashAfterConfirmed}
	env := signertest.MustEnv(t, len(points))
	n := startPubNode(t, nil)
	var custody []*pb.CustodyAccount
	var accts []nano.PublicKey
	for i := range points {
		pub := env.Account(uint32(i))
		custody = append(custody, &pb.CustodyAccount{Wallet: custodytest.Wallet, Index: uint32(i), PublicKey: pub[:], Address: pub.Address()})
		accts = append(accts, pub)
	}
	manifest := NewManifest(custody...)
	side := n.nodeSide(t, accts)
	dir := t.TempDir()
	toCold, toHot := filepath.Join(dir, "to-cold"), filepath.Join(dir, "to-hot")
	for _, d := range []string{toCold, toHot} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	runRelay(t, env, toCold, toHot)

	for i, point := range points {
		t.Run(point, func(t *testing.T) {
			acct := accts[i]
			ts := newTestStore(t, kind, "")
			crash := newCrashLedger(side.Ledger(), point)
			life1 := startPubGateway(t, ts, crash, toCold, toHot, manifest)

			fund, err := n.dev.Fund(t.Context(), acct, custodytest.XNO(20))
			if err != nil {
				t.Fatal(err)
			}
			open := env.ReceiveIntent(acct, custodytest.XNO(20), fund, &env.Rep)
			if _, err := life1.g.Submit(t.Context(), &pb.SubmitIntentRequest{Intent: open}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-crash.hit:
			case <-time.After(30 * time.Second):
				t.Fatalf("the pipeline never reached %s", point)
			}
			ids := []string{open.GetRequestId()}
			if point == crashAfterPublished || point == crashAfterConfirmed {
				// The account's next request goes once the first is
				// published: the send loop has seen it PUBLISHED.
				send := env.SendIntent(acct, custodytest.XNO(3), custodytest.NewExtAccount(40).Pub)
				if _, err := life1.g.Submit(t.Context(), &pb.SubmitIntentRequest{Intent: send, Approvals: env.Approve(send, "service")}); err != nil {
					t.Fatal(err)
				}
				awaitStatus(t, life1.g, send.GetRequestId(), "sent", func(s pb.RequestStatus) bool {
					return s != pb.RequestStatus_REQUEST_STATUS_QUEUED
				})
				ids = append(ids, send.GetRequestId())
			}
			life1.stop() // the crash: nothing after the point ran

			life2 := startPubGateway(t, ts, side.Ledger(), toCold, toHot, manifest)
			for _, id := range ids {
				r := awaitStatus(t, life2.g, id, "CONFIRMED", isConfirmed)
				n.mustConfirmedOnNode(t, r)
			}
			signed, _ := auditCounts(t, env)
			for _, id := range ids {
				if signed[id] != 1 {
					t.Errorf("request %s was signed %d times, want once", id, signed[id])
				}
			}
			life2.stop()
		})
	}
}
