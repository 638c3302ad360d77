package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperDirEnv) != "" {
		os.Exit(runHelper()) // a subprocess of the batch kill tests
	}
	code := softhsmtest.Run(m)
	killtest.Cleanup() // the binaries the kill tests built
	if err := closeSharedPG(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	os.Exit(code)
}

// bridgeWorld is a signer, a relay and a gateway joined by some medium.
type bridgeWorld struct {
	t   *testing.T
	ctx context.Context
	env *signertest.Env
	gw  *Gateway
}

// mediumFunc returns the gateway's writer and reader and the relay's.
type mediumFunc func(t *testing.T) (gwOut frame.FrameWriter, gwIn frame.FrameReader, relayIn frame.FrameReader, relayOut frame.FrameWriter)

func fileMedium(t *testing.T) (frame.FrameWriter, frame.FrameReader, frame.FrameReader, frame.FrameWriter) {
	t.Helper()
	m := newSharedFileMedium(t)
	gwOut, gwIn := m.gatewayEnds(t)
	relayIn, relayOut := m.relayEnds(t)
	return gwOut, gwIn, relayIn, relayOut
}

// sharedFileMedium is a file medium's two directories, whose ends may be
// opened by several gateways (one of which drives it at a time).
type sharedFileMedium struct{ toCold, toHot string }

func newSharedFileMedium(t *testing.T) sharedFileMedium {
	t.Helper()
	dir := t.TempDir()
	m := sharedFileMedium{toCold: filepath.Join(dir, "to-cold"), toHot: filepath.Join(dir, "to-hot")}
	for _, d := range []string{m.toCold, m.toHot} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func mustFileWriter(t *testing.T, dir string) *filemedium.FileWriter {
	t.Helper()
	w, err := filemedium.NewFileWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustFileReader(t *testing.T, dir string, types ...frame.FrameType) *filemedium.FileReader {
	t.Helper()
	r, err := filemedium.NewFileReader(dir, filemedium.FileReaderOptions{PollInterval: 5 * time.Millisecond, Types: types,
		OnReject: func(name string, err error) { t.Logf("quarantined %s: %v", name, err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// runRelay runs a relay over env's signer between a file medium's
// directories toCold and toHot until t's cleanup; a frame it quarantines
// fails t.
func runRelay(t *testing.T, env *signertest.Env, toCold, toHot string) *relay.Relay {
	t.Helper()
	relayOut := mustFileWriter(t, toHot)
	relayIn, err := filemedium.NewFileReader(toCold, filemedium.FileReaderOptions{PollInterval: 5 * time.Millisecond,
		Types:    []frame.FrameType{frame.TypeRequest, frame.TypeHeartbeat},
		OnReject: func(name string, err error) { t.Errorf("the relay quarantined %s: %v", name, err) }})
	if err != nil {
		t.Fatal(err)
	}
	// The relay's log is kept, and printed when the test fails.
	var logs lockedBuffer
	rl := &relay.Relay{In: relayIn, Out: relayOut, Signer: env.Client, RetryMin: 10 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
		relayIn.Close()
		if t.Failed() {
			t.Logf("the relay's log:\n%s", logs.String())
		}
	})
	return rl
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// gatewayEnds returns a gateway's writer and reader.
func (m sharedFileMedium) gatewayEnds(t *testing.T) (frame.FrameWriter, frame.FrameReader) {
	t.Helper()
	return mustFileWriter(t, m.toCold), mustFileReader(t, m.toHot, frame.TypeResponse, frame.TypeRefusal, frame.TypeHeartbeat)
}

// relayEnds returns the relay's reader and writer.
func (m sharedFileMedium) relayEnds(t *testing.T) (frame.FrameReader, frame.FrameWriter) {
	t.Helper()
	return mustFileReader(t, m.toCold, frame.TypeRequest, frame.TypeHeartbeat), mustFileWriter(t, m.toHot)
}

// newBridgeWorld starts a signer, a relay and a gateway on a fresh store
// of kind, joined by medium.
func newBridgeWorld(t *testing.T, kind storeKind, medium mediumFunc, accounts int) *bridgeWorld {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	env := signertest.MustEnv(t, accounts)
	gwOut, gwIn, relayIn, relayOut := medium(t)
	var custody []*pb.CustodyAccount
	for i := 0; i < accounts; i++ {
		pub := env.Account(uint32(i))
		custody = append(custody, &pb.CustodyAccount{Wallet: custodytest.Wallet, Index: uint32(i), PublicKey: pub[:], Address: pub.Address()})
	}
	gw, err := newTestStore(t, kind, "").open(Options{
		Out: gwOut, Reader: gwIn, Manifest: NewManifest(custody...), ResendInterval: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	rl := &relay.Relay{In: relayIn, Out: relayOut, Signer: env.Client, RetryMin: 10 * time.Millisecond}
	done := make(chan error, 2)
	go func() { done <- rl.Run(ctx) }()
	go func() { done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for i := 0; i < 2; i++ {
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
		gw.Close()
	})
	return &bridgeWorld{t: t, ctx: ctx, env: env, gw: gw}
}

// await waits (bounded) until request id reaches a final status and returns it.
func (w *bridgeWorld) await(id string) *pb.Request {
	w.t.Helper()
	cur, ch, cancel, err := w.gw.Watch(id)
	if err != nil {
		w.t.Fatal(err)
	}
	defer cancel()
	deadline := time.After(30 * time.Second)
	for !w.gw.isFinal(cur.GetStatus()) {
		select {
		case r := <-ch:
			cur = r
		case <-deadline:
			w.t.Fatalf("request %s still %s after 30s", id, cur.GetStatus())
		}
	}
	return cur
}

// submit queues an intent and waits for its final state.
func (w *bridgeWorld) submit(req *pb.SubmitIntentRequest) *pb.Request {
	w.t.Helper()
	if _, err := w.gw.Submit(w.ctx, req); err != nil {
		w.t.Fatalf("Submit: %v", err)
	}
	return w.await(req.GetIntent().GetRequestId())
}

// mustSigned checks a final request: signed, and its block verifies and
// matches the intent.
func mustSigned(t *testing.T, r *pb.Request, subtype string) nano.StateBlock {
	t.Helper()
	if r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_SIGNED {
		t.Fatalf("request %s: %s (%s %s)", r.GetRequestId(), r.GetStatus(), r.GetRefusalReason(), r.GetError())
	}
	b, err := r.GetBlock().ToNano("block")
	if err != nil {
		t.Fatal(err)
	}
	h := b.Hash()
	if !nano.Verify(b.Account, h[:], b.Signature) {
		t.Fatalf("block %s does not verify", h)
	}
	if string(r.GetBlockHash()) != string(h[:]) || r.GetSubtype() != subtype {
		t.Fatalf("request %s: hash %X subtype %s; want %s %s", r.GetRequestId(), r.GetBlockHash(), r.GetSubtype(), h, subtype)
	}
	if nano.PublicKey(r.GetIntent().GetAccount()) != b.Account {
		t.Fatalf("block for another account")
	}
	return b
}

// runLifecycle opens an account (receive), sends, changes the
// representative and receives again, across the bridge.
func runLifecycle(t *testing.T, w *bridgeWorld) {
	env := w.env
	acct := env.Account(0)
	src, prev := env.Fund(acct, custodytest.XNO(50))
	in := env.ReceiveIntent(acct, custodytest.XNO(50), src.Hash(), &env.Rep)
	open := mustSigned(t, w.submit(&pb.SubmitIntentRequest{Intent: in, Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)}), "open")
	if open.Balance != custodytest.XNO(50) || open.Link != src.Hash() {
		t.Fatalf("open: %+v", open)
	}

	dest := custodytest.NewExtAccount(40).Pub
	send := env.SendIntent(acct, custodytest.XNO(7), dest)
	sent := mustSigned(t, w.submit(&pb.SubmitIntentRequest{Intent: send, Approvals: env.Approve(send, "service"), Head: pb.BlockFromNano(&open)}), "send")
	if sent.Previous != open.Hash() || sent.Balance != custodytest.XNO(43) || sent.Link != nano.Hash(dest) {
		t.Fatalf("send: %+v", sent)
	}

	newRep := custodytest.NewExtAccount(90).Pub
	ch := env.ChangeIntent(acct, newRep)
	changed := mustSigned(t, w.submit(&pb.SubmitIntentRequest{Intent: ch, Approvals: env.Approve(ch, "service"), Head: pb.BlockFromNano(&sent)}), "change")
	if changed.Representative != newRep || changed.Balance != sent.Balance {
		t.Fatalf("change: %+v", changed)
	}

	src2, prev2 := env.Fund(acct, custodytest.XNO(5))
	rin := env.ReceiveIntent(acct, custodytest.XNO(5), src2.Hash(), nil)
	recv := mustSigned(t, w.submit(&pb.SubmitIntentRequest{Intent: rin, Head: pb.BlockFromNano(&changed),
		Source: pb.BlockFromNano(&src2), SourcePrevious: pb.BlockFromNano(&prev2)}), "receive")
	if recv.Balance != custodytest.XNO(48) || recv.Representative != newRep {
		t.Fatalf("receive: %+v", recv)
	}

	// A refusal travels back too: a send without its approval.
	bad := env.SendIntent(acct, custodytest.XNO(1), dest)
	r := w.submit(&pb.SubmitIntentRequest{Intent: bad, Head: pb.BlockFromNano(&recv)})
	if r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_REFUSED || r.GetRefusalReason() != "APPROVALS_MISSING" {
		t.Fatalf("unapproved send: %s %s", r.GetStatus(), r.GetRefusalReason())
	}
	// Submitting again is idempotent.
	again, err := w.gw.Submit(w.ctx, &pb.SubmitIntentRequest{Intent: send, Approvals: env.Approve(send, "service"), Head: pb.BlockFromNano(&open)})
	if err != nil || again.GetStatus() != pb.RequestStatus_REQUEST_STATUS_SIGNED {
		t.Fatalf("repeat submission: %v %v", again.GetStatus(), err)
	}
}

func TestEndToEndFileBridge(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) { runLifecycle(t, newBridgeWorld(t, kind, fileMedium, 1)) })
}
