package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/devnode"
	"github.com/nanokms/nanokms/gateway"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/node"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

func TestMain(m *testing.M) { os.Exit(softhsmtest.Run(m)) }

// waitLimit bounds every wait of these tests.
const waitLimit = 30 * time.Second

// eventually polls cond until it holds, failing the test after waitLimit:
// for what must follow an event the test cannot wait on directly.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// worldOptions shape a world.
type worldOptions struct {
	accounts int
	// pollInterval and scan are the NodeSide's confirmation polling and
	// receivable scan periods (0: one minute, so that within a test only
	// the WebSocket can deliver).
	pollInterval, scan time.Duration
	// resend is the gateway's resend interval (0: 10 s).
	resend time.Duration
	// rpc, if set, wraps the devnode's RPC handler (a lying proxy); the
	// gateway's node side talks to the result.
	rpc func(w *world, honest http.Handler) http.Handler
	// noWebSocket leaves [node] websocket out: confirmations come from
	// polling and, with callback, the HTTP callback.
	noWebSocket bool
	// callback enables [node.callback] (path /callback) on a listener of
	// the world's, and the devnode posts its callbacks there; or, with
	// callbackVia, to the URL callbackVia returns for the gateway's.
	callback    bool
	callbackVia func(gatewayURL string) string
}

// world is a devnode, a signer, the file bridge, a relay, a gateway with
// its Custody API, and the gateway's node side, all running.
type world struct {
	t   *testing.T
	ctx context.Context

	dev     *devnode.Node
	rpcURL  string // the devnode's own HTTP RPC
	gwRPC   string // the RPC URL the gateway uses (the devnode's, or a proxy's)
	wsURL   string
	ipcPath string
	direct  *node.Client // an honest client of the devnode, for the test's own reads

	env     *signertest.Env
	gw      *gateway.Gateway
	side    *gateway.NodeSide
	custody pb.CustodyClient

	cbURL string // the gateway's callback listener, with callback

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced at every notify
	statuses  []statusEvent
	callbacks map[node.CallbackResult]int // requests to the callback listener, by result
	alerts    []*pb.Alert                 // as raised
}

type statusEvent struct {
	id     string
	status pb.RequestStatus
}

// notify wakes every waitUntil.
func (w *world) notify() {
	w.mu.Lock()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

// waitUntil waits until cond holds, re-checking it at every notify, for at
// most waitLimit.
func (w *world) waitUntil(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ch := w.changed
		w.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			w.t.Fatalf("still waiting after %v for %s", waitLimit, what)
		}
	}
}

// listen opens a TCP listener on 127.0.0.1.
func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// serveHTTP serves h on l until the test ends.
func serveHTTP(t *testing.T, l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("http server: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}

// newDevnode starts a devnode on HTTP, IPC (a Unix socket) and WebSocket
// listeners; it stops when the test ends.
func newDevnode(t *testing.T, opts devnode.Options) (dev *devnode.Node, rpcURL, wsURL, ipcPath string) {
	t.Helper()
	if opts.ConfirmDelay == 0 {
		opts.ConfirmDelay = 50 * time.Millisecond
	}
	if opts.RandSeed == 0 {
		opts.RandSeed = 1
	}
	dev, err := devnode.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	httpL, wsL := listen(t), listen(t)
	ipcPath = filepath.Join(t.TempDir(), "node.ipc")
	ipcL, err := devnode.ListenIPC("unix://" + ipcPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- dev.Serve(ctx, httpL, ipcL, wsL) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("devnode: %v", err)
		}
		dev.Close()
	})
	return dev, "http://" + httpL.Addr().String(), "ws://" + wsL.Addr().String(), ipcPath
}

// fileMedium is the file bridge: two directories, each with a writer on
// one side and a reader on the other.
func fileMedium(t *testing.T) (gwOut frame.FrameWriter, gwIn frame.FrameReader, relayIn frame.FrameReader, relayOut frame.FrameWriter) {
	t.Helper()
	dir := t.TempDir()
	toCold, toHot := filepath.Join(dir, "to-cold"), filepath.Join(dir, "to-hot")
	for _, d := range []string{toCold, toHot} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	mustW := func(d string) *filemedium.FileWriter {
		w, err := filemedium.NewFileWriter(d)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	mustR := func(d string, types ...frame.FrameType) *filemedium.FileReader {
		r, err := filemedium.NewFileReader(d, filemedium.FileReaderOptions{PollInterval: 5 * time.Millisecond, Types: types,
			OnReject: func(name string, err error) { t.Logf("quarantined %s: %v", name, err) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	return mustW(toCold), mustR(toHot, frame.TypeResponse, frame.TypeRefusal, frame.TypeHeartbeat),
		mustR(toCold, frame.TypeRequest, frame.TypeHeartbeat), mustW(toHot)
}

func newWorld(t *testing.T, dev devnode.Options, o worldOptions) *world {
	t.Helper()
	if o.accounts == 0 {
		o.accounts = 1
	}
	if o.pollInterval == 0 {
		o.pollInterval = time.Minute
	}
	if o.scan == 0 {
		o.scan = time.Minute
	}
	if o.resend == 0 {
		o.resend = 10 * time.Second
	}
	w := &world{t: t, changed: make(chan struct{}), callbacks: map[node.CallbackResult]int{}}
	var cbL net.Listener
	if o.callback {
		cbL = listen(t)
		w.cbURL = "http://" + cbL.Addr().String() + "/callback"
		dev.CallbackURL = w.cbURL
		if o.callbackVia != nil {
			dev.CallbackURL = o.callbackVia(w.cbURL)
		}
	}
	w.dev, w.rpcURL, w.wsURL, w.ipcPath = newDevnode(t, dev)
	w.direct = node.NewClient(node.NewHTTP(w.rpcURL, node.HTTPOptions{}), node.ClientOptions{Timeout: waitLimit})
	t.Cleanup(func() { w.direct.Close() })
	w.gwRPC = w.rpcURL
	if o.rpc != nil {
		l := listen(t)
		serveHTTP(t, l, o.rpc(w, w.dev.RPCHandler()))
		w.gwRPC = "http://" + l.Addr().String()
	}

	w.env = signertest.MustEnv(t, o.accounts)
	var (
		custody []*pb.CustodyAccount
		pubs    []nano.PublicKey
	)
	for i := 0; i < o.accounts; i++ {
		pub := w.env.Account(uint32(i))
		custody = append(custody, &pb.CustodyAccount{Wallet: custodytest.Wallet, Index: uint32(i), PublicKey: pub[:], Address: pub.Address()})
		pubs = append(pubs, pub)
	}

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w.ctx = ctx
	send, receive := w.dev.Thresholds()
	cfg := gateway.NodeConfig{
		RPC: w.gwRPC, WebSocket: w.wsURL, Timeout: 5 * time.Second, Work: "cpu",
		AutoReceive: true, Representative: w.env.Rep,
	}
	if o.noWebSocket {
		cfg.WebSocket = ""
	}
	if o.callback {
		cfg.Callback = &gateway.CallbackConfig{Listen: cbL.Addr().String(), Path: "/callback"}
	}
	side, err := gateway.OpenNodeSide(ctx, cfg, gateway.NodeSideOptions{
		CallbackListener: cbL,
		ObserveCallback: func(r node.CallbackResult) {
			w.mu.Lock()
			w.callbacks[r]++
			w.mu.Unlock()
			w.notify()
		},
		PollInterval: o.pollInterval, ReceivableScan: o.scan,
		Thresholds: node.WorkThresholds{Send: send, Receive: receive},
		// Subscribed from the dial on, so that a block the test processes
		// right after newWorld cannot beat NodeSide.Run's own subscription.
		WS: node.WSOptions{Accounts: pubs, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(side.Close) // after the loops below have stopped
	w.side = side

	gwOut, gwIn, relayIn, relayOut := fileMedium(t)
	gw, err := gateway.Open(filepath.Join(t.TempDir(), "gateway.db"), gateway.Options{
		Out: gwOut, Reader: gwIn, Manifest: gateway.NewManifest(custody...), Ledger: side.Ledger(),
		ResendInterval: o.resend, AutoReceive: true, Representative: w.env.Rep,
		Observe: func(s pb.RequestStatus, r *pb.Request) {
			w.mu.Lock()
			w.statuses = append(w.statuses, statusEvent{r.GetRequestId(), s})
			w.mu.Unlock()
			w.notify()
		},
		ObserveAlert: func(a *pb.Alert) {
			w.mu.Lock()
			w.alerts = append(w.alerts, a)
			w.mu.Unlock()
			w.notify()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	w.gw = gw

	sock := filepath.Join(t.TempDir(), "custody.sock")
	cl, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		cl.Close()
		t.Fatal(err)
	}
	w.custody = pb.NewCustodyClient(conn)

	relay := &relay.Relay{In: relayIn, Out: relayOut, Signer: w.env.Client, RetryMin: 10 * time.Millisecond}
	const loops = 4
	done := make(chan error, loops)
	go func() { done <- relay.Run(ctx) }()
	go func() { done <- gw.Run(ctx) }()
	go func() { done <- side.Run(ctx, gw) }()
	go func() { done <- gateway.ServeCustody(ctx, cl, gateway.NewCustodyServer(gw), nil, time.Second) }()
	t.Cleanup(func() {
		conn.Close()
		cancel()
		for i := 0; i < loops; i++ {
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	})
	return w
}

// genesisKey returns the devnode genesis account's signing key.
func (w *world) genesisKey() *nano.SigningKey {
	k := w.dev.GenesisKey()
	defer k.Wipe()
	return nano.NewSigningKey(&k)
}

// work returns work for b at the devnode's threshold for subtype.
func (w *world) work(b *nano.StateBlock, subtype nano.Subtype) {
	w.t.Helper()
	send, receive := w.dev.Thresholds()
	th := send
	if subtype == nano.SubtypeReceive || subtype == nano.SubtypeOpen {
		th = receive
	}
	res, err := nano.GenerateWork(context.Background(), b.Root(), th, nano.WorkOptions{Workers: 1})
	if err != nil {
		w.t.Fatal(err)
	}
	b.Work = res.Work
}

// signWith signs b with sk and attaches work.
func (w *world) signWith(sk *nano.SigningKey, b nano.StateBlock, subtype nano.Subtype) nano.StateBlock {
	w.t.Helper()
	h := b.Hash()
	b.Signature = sk.Sign(h[:])
	w.work(&b, subtype)
	return b
}

// genesisSend signs a send of amount from the genesis account to dest
// with the genesis key and processes it on the devnode.
func (w *world) genesisSend(dest nano.PublicKey, amount nano.Amount) nano.StateBlock {
	w.t.Helper()
	gen := w.dev.Genesis()
	ai, err := w.direct.AccountInfo(context.Background(), gen)
	if err != nil {
		w.t.Fatal(err)
	}
	bal, err := ai.Balance.Sub(amount)
	if err != nil {
		w.t.Fatal(err)
	}
	b := w.signWith(w.genesisKey(), nano.StateBlock{Account: gen, Previous: ai.Frontier, Representative: gen, Balance: bal, Link: nano.Hash(dest)}, nano.SubtypeSend)
	h, err := w.dev.Process(b, nano.SubtypeSend)
	if err != nil {
		w.t.Fatalf("processing the genesis send: %v", err)
	}
	if h != b.Hash() {
		w.t.Fatalf("process answered %s for %s", h, b.Hash())
	}
	return b
}

// isFinal reports whether a request in status s (with a node) is settled for good.
func isFinal(s pb.RequestStatus) bool {
	switch s {
	case pb.RequestStatus_REQUEST_STATUS_CONFIRMED, pb.RequestStatus_REQUEST_STATUS_REFUSED, pb.RequestStatus_REQUEST_STATUS_FAILED:
		return true
	}
	return false
}

// awaitFinal waits until request id exists and is final, and returns it.
func (w *world) awaitFinal(id string) *pb.Request {
	w.t.Helper()
	var r *pb.Request
	w.waitUntil("request "+id+" to be final", func() bool {
		var err error
		r, err = w.gw.Get(id)
		return err == nil && isFinal(r.GetStatus())
	})
	return r
}

// awaitAllFinal waits until every request of the gateway is final.
func (w *world) awaitAllFinal() []*pb.Request {
	w.t.Helper()
	var list []*pb.Request
	w.waitUntil("every request to be final", func() bool {
		var err error
		if list, err = w.gw.List(nil); err != nil {
			w.t.Fatal(err)
		}
		for _, r := range list {
			if !isFinal(r.GetStatus()) {
				return false
			}
		}
		return true
	})
	return list
}

// autoReceiveID is the request id AutoReceive gives its n-th attempt at
// receiving source.
func autoReceiveID(source nano.Hash, n int) string {
	return fmt.Sprintf("ar-%s-%d", source.String()[:56], n)
}

// submit sends an intent with approvals through the Custody API and
// follows it with WatchRequest to its final state.
func (w *world) submit(in *pb.Intent, approvals ...*pb.Approval) *pb.Request {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, waitLimit)
	defer cancel()
	if _, err := w.custody.SubmitIntent(ctx, &pb.SubmitIntentRequest{Intent: in, Approvals: approvals}); err != nil {
		w.t.Fatalf("SubmitIntent: %v", err)
	}
	stream, err := w.custody.WatchRequest(ctx, &pb.GetRequestRequest{RequestId: in.GetRequestId()})
	if err != nil {
		w.t.Fatal(err)
	}
	var last *pb.Request
	for {
		r, err := stream.Recv()
		if err != nil {
			if last != nil && isFinal(last.GetStatus()) {
				return last
			}
			w.t.Fatalf("watching %s: %v (last %s)", in.GetRequestId(), err, last.GetStatus())
		}
		last = r
	}
}

// withdraw submits an approved send of amount from account to dest.
func (w *world) withdraw(account nano.PublicKey, amount nano.Amount, dest nano.PublicKey) *pb.Request {
	w.t.Helper()
	in := w.env.SendIntent(account, amount, dest)
	return w.submit(in, w.env.Approve(in, "service")...)
}

// mustStatus checks a request's final status (and refusal reason).
func mustStatus(t *testing.T, r *pb.Request, want pb.RequestStatus, reason string) {
	t.Helper()
	if r.GetStatus() != want || (reason != "" && r.GetRefusalReason() != reason) {
		t.Fatalf("request %s: %s %s (%s); want %s %s", r.GetRequestId(), r.GetStatus(), r.GetRefusalReason(), r.GetError(), want, reason)
	}
}

// blockOf decodes a request's block.
func blockOf(t *testing.T, r *pb.Request) nano.StateBlock {
	t.Helper()
	b, err := r.GetBlock().ToNano("block")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// chain returns the account's blocks on the devnode, oldest first, read
// with the honest client.
func (w *world) chain(account nano.PublicKey) []nano.StateBlock {
	w.t.Helper()
	ctx := context.Background()
	ai, err := w.direct.AccountInfo(ctx, account)
	if errors.Is(err, node.ErrAccountNotFound) {
		return nil
	}
	if err != nil {
		w.t.Fatal(err)
	}
	var out []nano.StateBlock
	for h := ai.Frontier; !h.IsZero(); {
		bi, err := w.direct.BlockInfo(ctx, h)
		if err != nil {
			w.t.Fatal(err)
		}
		out = append([]nano.StateBlock{bi.Block}, out...)
		h = bi.Block.Previous
	}
	if uint64(len(out)) != ai.BlockCount {
		w.t.Fatalf("%s: walked %d blocks, account_info says %d", account.Address(), len(out), ai.BlockCount)
	}
	return out
}

// assertOnlySignerBlocks checks that every block the devnode holds for the
// custody accounts is the block the signer signed on its previous: nothing
// was published that the signer did not sign. It returns the chains.
func (w *world) assertOnlySignerBlocks(accounts ...nano.PublicKey) map[nano.PublicKey][]nano.StateBlock {
	w.t.Helper()
	out := map[nano.PublicKey][]nano.StateBlock{}
	for _, a := range accounts {
		chain := w.chain(a)
		for _, b := range chain {
			sb, ok, err := w.env.Store.SignedOn(a, b.Previous)
			if err != nil {
				w.t.Fatal(err)
			}
			if !ok || sb.Hash != b.Hash() || sb.Block.Signature != b.Signature {
				w.t.Fatalf("the devnode holds block %s on %s that the signer did not sign", b.Hash(), a.Address())
			}
		}
		out[a] = chain
	}
	return out
}

// statusCount counts the recorded status changes of request id to s.
func (w *world) statusCount(id string, s pb.RequestStatus) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, e := range w.statuses {
		if e.id == id && e.status == s {
			n++
		}
	}
	return n
}

// callbackCounts returns the requests to the callback listener so far,
// by result.
func (w *world) callbackCounts() map[node.CallbackResult]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[node.CallbackResult]int, len(w.callbacks))
	for k, v := range w.callbacks {
		out[k] = v
	}
	return out
}

// alertsRaised returns the alerts raised so far, in order.
func (w *world) alertsRaised() []*pb.Alert {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*pb.Alert(nil), w.alerts...)
}
