package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/internal/grpcserve"
	"github.com/nanokms/nanokms/internal/killtest"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
)

// The batch kill tests run a gateway in a subprocess (this test binary,
// as the helper below: the gateway with a file bridge and the Custody
// service on a Unix socket, as `nanokms gateway` runs it), stop it at one
// of its crash points (crashHook: it says so and waits to be SIGKILLed),
// SIGKILL it there, and check that what a caller was told before the kill
// is durable: every request acknowledged is there after the restart, no
// status seen is ahead of the state file, a request recorded SENT_TO_COLD
// has its frame on the medium; and that after the restart every request
// is signed, exactly once, with nothing quarantined.

// The helper's environment: the directory it works in, and the crash point
// at which it stops.
const (
	helperDirEnv   = "NANOKMS_GATEWAY_HELPER_DIR"
	helperCrashEnv = "NANOKMS_GATEWAY_HELPER_CRASH"
)

// The helper's files in its directory.
func helperPaths(dir string) (state, sock, manifest, toCold, toHot string) {
	return filepath.Join(dir, "gateway.db"), filepath.Join(dir, "gw.sock"), filepath.Join(dir, "custody.json"),
		filepath.Join(dir, "bridge", "to-cold"), filepath.Join(dir, "bridge", "to-hot")
}

// runHelper runs the helper gateway until SIGTERM and returns the exit
// status. At the crash point named in its environment it prints
// "crash point POINT: IDS" and blocks where it is, once.
func runHelper() int {
	dir := os.Getenv(helperDirEnv)
	state, sock, manifest, toCold, toHot := helperPaths(dir)
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	fail := func(err error) int {
		log.Error("helper", "error", err.Error())
		return 1
	}
	if point := os.Getenv(helperCrashEnv); point != "" {
		var once sync.Once
		crashHook = func(p string, ids []string) error {
			if p == point {
				once.Do(func() {
					fmt.Printf("crash point %s: %s\n", p, strings.Join(ids, " "))
					select {} // as good as dead: the test SIGKILLs it here
				})
			}
			return nil
		}
	}
	man, err := LoadManifests(manifest)
	if err != nil {
		return fail(err)
	}
	out, err := filemedium.OpenFileWriter(toCold, filemedium.FileWriterOptions{})
	if err != nil {
		return fail(err)
	}
	in, err := filemedium.NewFileReader(toHot, filemedium.FileReaderOptions{PollInterval: 20 * time.Millisecond,
		Types: []frame.FrameType{frame.TypeResponse, frame.TypeRefusal, frame.TypeHeartbeat},
		OnReject: func(name string, err error) {
			log.Warn("frame refused", "file", name, "error", err.Error())
		}})
	if err != nil {
		return fail(err)
	}
	defer in.Close()
	g, err := openHelperGateway(state, Options{Out: out, Reader: in, Manifest: man, ResendInterval: 500 * time.Millisecond, Log: log})
	if err != nil {
		return fail(err)
	}
	defer g.Close()
	l, err := grpcserve.Listen("unix://" + sock)
	if err != nil {
		return fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- ServeCustody(ctx, l, NewCustodyServer(g), nil, time.Second) }()
	err = g.Run(ctx)
	stop()
	if serr := <-served; err == nil {
		err = serr
	}
	if err != nil {
		return fail(err)
	}
	return 0
}

// seenRank orders the statuses a request passes through (0: none).
func seenRank(s pb.RequestStatus) int {
	switch s {
	case pb.RequestStatus_REQUEST_STATUS_UNSPECIFIED:
		return 0
	case pb.RequestStatus_REQUEST_STATUS_QUEUED:
		return 1
	case pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD:
		return 2
	case pb.RequestStatus_REQUEST_STATUS_SIGNED:
		return 3
	}
	return 4
}

// killWorld is a signer (in the test process), the helper gateway and,
// when started, a relay (in the test process) on one file bridge.
type killWorld struct {
	t       *testing.T
	env     *signertest.Env
	dir     string
	toCold  string
	toHot   string
	state   *testStore
	gw      *killtest.Proc
	custody pb.CustodyClient
	health  healthpb.HealthClient
	reqs    []*pb.SubmitIntentRequest
	seen    map[string]pb.RequestStatus // the latest status a caller was told, per request
}

func newKillWorld(t *testing.T, kind storeKind, accounts int) *killWorld {
	t.Helper()
	w := &killWorld{t: t, env: signertest.MustEnv(t, accounts), dir: t.TempDir(), seen: map[string]pb.RequestStatus{}}
	var sock, manifest, state string
	state, sock, manifest, w.toCold, w.toHot = helperPaths(w.dir)
	w.state = newTestStore(t, kind, filepath.Dir(state))
	type mAccount struct {
		Index     uint32 `json:"index"`
		PublicKey string `json:"public_key"`
		Account   string `json:"account"`
	}
	man := struct {
		Wallet   string     `json:"wallet"`
		Accounts []mAccount `json:"accounts"`
	}{Wallet: custodytest.Wallet}
	for i := range uint32(accounts) {
		pub := w.env.Account(i)
		man.Accounts = append(man.Accounts, mAccount{Index: i, PublicKey: pub.String(), Account: pub.Address()})
		src, prev := w.env.Fund(pub, custodytest.XNO(5))
		in := w.env.ReceiveIntent(pub, custodytest.XNO(5), src.Hash(), &w.env.Rep)
		w.reqs = append(w.reqs, &pb.SubmitIntentRequest{Intent: in, Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)})
	}
	data, _ := json.Marshal(man)
	if err := os.WriteFile(manifest, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{w.toCold, w.toHot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	w.gw = killtest.New(t, "gateway", filepath.Join(w.dir, "gateway.log"), bin)
	conn := killtest.Dial(t, sock)
	w.custody, w.health = pb.NewCustodyClient(conn), healthpb.NewHealthClient(conn)
	return w
}

func (w *killWorld) ids() []string {
	var ids []string
	for _, r := range w.reqs {
		ids = append(ids, r.GetIntent().GetRequestId())
	}
	return ids
}

// start starts the helper, stopping at crash ("" for none), and waits
// until it serves.
func (w *killWorld) start(crash string) {
	w.t.Helper()
	w.gw.SetEnv(append(append(os.Environ(), helperDirEnv+"="+w.dir, helperCrashEnv+"="+crash), w.state.helperEnv()...))
	w.gw.MustStart()
	if err := w.gw.WaitServing(30*time.Second, w.health); err != nil {
		w.t.Fatal(err)
	}
}

// crashed waits until the helper has stopped at point, and returns the
// request ids it named.
func (w *killWorld) crashed(point string) []string {
	w.t.Helper()
	marker := "crash point " + point + ": "
	if err := w.gw.WaitLogged(60*time.Second, marker, 1); err != nil {
		w.t.Fatal(err)
	}
	data, err := os.ReadFile(w.gw.LogPath())
	if err != nil {
		w.t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, marker); ok {
			return strings.Fields(rest)
		}
	}
	w.t.Fatalf("no %q line in the helper's log", marker)
	return nil
}

// tell records that a caller was told r.
func (w *killWorld) tell(r *pb.Request) {
	if r != nil && seenRank(r.GetStatus()) > seenRank(w.seen[r.GetRequestId()]) {
		w.seen[r.GetRequestId()] = r.GetStatus()
	}
}

func (w *killWorld) get(id string) (*pb.Request, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.custody.GetRequest(ctx, &pb.GetRequestRequest{RequestId: id}, grpc.WaitForReady(true))
}

// stored opens the state file of the killed helper and returns what it
// holds of the test's requests.
func (w *killWorld) stored() map[string]*pb.Request {
	w.t.Helper()
	scratch := w.t.TempDir()
	out, err := filemedium.NewFileWriter(scratch)
	if err != nil {
		w.t.Fatal(err)
	}
	in, err := filemedium.NewFileReader(scratch, filemedium.FileReaderOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	defer in.Close()
	g, err := w.state.open(Options{Out: out, Reader: in, Manifest: NewManifest()})
	if err != nil {
		w.t.Fatal(err)
	}
	defer g.Close()
	got := map[string]*pb.Request{}
	for _, id := range w.ids() {
		if r, err := g.Get(id); err == nil {
			got[id] = r
		}
	}
	return got
}

// checkDurable checks that the state file holds every status a caller was
// told, and the frame of every request it records sent.
func (w *killWorld) checkDurable(stored map[string]*pb.Request) {
	w.t.Helper()
	for id, st := range w.seen {
		r, ok := stored[id]
		if !ok {
			w.t.Fatalf("request %s was acknowledged (%s) but is not in the state file after the kill", id, st)
		}
		if seenRank(r.GetStatus()) < seenRank(st) {
			w.t.Fatalf("request %s was shown %s before the kill, the state file says %s", id, st, r.GetStatus())
		}
	}
	for id, r := range stored {
		if r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD {
			continue
		}
		name := id + ".request" + filemedium.FileSuffix
		f, err := filemedium.LoadFrameFile(filepath.Join(w.toCold, name))
		if err != nil {
			f, err = filemedium.LoadFrameFile(filepath.Join(w.toCold, filemedium.DoneDir, name))
		}
		if err != nil {
			w.t.Fatalf("request %s is recorded SENT_TO_COLD (attempt %d) but its frame is not on the medium: %v", id, r.GetAttempts(), err)
		}
		var req pb.BridgeRequest
		if err := proto.Unmarshal(f.Payload, &req); err != nil || req.GetAttempt() < r.GetAttempts() {
			w.t.Fatalf("request %s is recorded sent at attempt %d, the medium holds attempt %d (%v)", id, r.GetAttempts(), req.GetAttempt(), err)
		}
	}
}

// runRelay runs a relay on the bridge until the test ends.
func (w *killWorld) runRelay() {
	w.t.Helper()
	in, err := filemedium.NewFileReader(w.toCold, filemedium.FileReaderOptions{PollInterval: 10 * time.Millisecond,
		Types: []frame.FrameType{frame.TypeRequest, frame.TypeHeartbeat}})
	if err != nil {
		w.t.Fatal(err)
	}
	out, err := filemedium.NewFileWriter(w.toHot)
	if err != nil {
		w.t.Fatal(err)
	}
	rl := &relay.Relay{In: in, Out: out, Signer: w.env.Client, RetryMin: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.Run(ctx) }()
	w.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			w.t.Errorf("relay: %v", err)
		}
		in.Close()
	})
}

// finish restarts the helper without a crash point, submits every request
// again (answered from the queue), and checks that all end signed, each
// once, with nothing quarantined, and that the gateway stops on SIGTERM.
func (w *killWorld) finish() {
	w.t.Helper()
	w.start("")
	for _, req := range w.reqs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := w.custody.SubmitIntent(ctx, req, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			w.t.Fatalf("SubmitIntent %s after the restart: %v", req.GetIntent().GetRequestId(), err)
		}
		w.tell(resp.GetRequest())
	}
	ids := w.ids()
	poll(w.t, 60*time.Second, "every request is signed", func() bool {
		for _, id := range ids {
			r, err := w.get(id)
			if err != nil || r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_SIGNED {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		r, err := w.get(id)
		if err != nil {
			w.t.Fatal(err)
		}
		mustSigned(w.t, r, "open")
		stored, ok, err := w.env.Store.Request(id)
		if err != nil || !ok || string(stored.Response.GetHash()) != string(r.GetBlockHash()) {
			w.t.Fatalf("request %s: the signer's answer %X differs from the gateway's %X (%v)", id, stored.Response.GetHash(), r.GetBlockHash(), err)
		}
	}
	checkSignedExactly(w.t, w.env, ids...)
	// Every answer ends settled in done/, none quarantined (a repeat of an
	// answer recorded before the kill is settled as done).
	poll(w.t, 30*time.Second, "every answer is settled", func() bool {
		for _, id := range ids {
			if !settledIn(w.toHot, id+".response"+filemedium.FileSuffix)() {
				return false
			}
		}
		return true
	})
	for _, d := range []string{w.toCold, w.toHot} {
		if q := allQuarantined(d); len(q) != 0 {
			w.t.Errorf("frames quarantined in %s: %q", filepath.Base(d), q)
		}
	}
	if err := w.gw.Terminate(15 * time.Second); err != nil {
		w.t.Errorf("the gateway's exit on SIGTERM: %v", err)
	}
}

// TestKillBetweenFramesAndCommit: SIGKILLed after a pass's frames are
// durable and before their SENT_TO_COLD is recorded. Nobody was told they
// were sent; the frames are on the medium; after the restart they are
// written again and answered once.
func TestKillBetweenFramesAndCommit(t *testing.T) { forEachStore(t, testKillBetweenFramesAndCommit) }

func testKillBetweenFramesAndCommit(t *testing.T, kind storeKind) {
	w := newKillWorld(t, kind, 4)
	w.start("send:frames-written")
	for _, req := range w.reqs {
		resp, err := w.custody.SubmitIntent(context.Background(), req, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("SubmitIntent: %v", err)
		}
		w.tell(resp.GetRequest())
	}
	batch := w.crashed("send:frames-written")
	if len(batch) == 0 {
		t.Fatal("the crash point named no request")
	}
	for _, id := range w.ids() {
		r, err := w.get(id)
		if err != nil {
			t.Fatal(err)
		}
		w.tell(r)
		if r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_QUEUED {
			t.Fatalf("request %s is shown %s while its frame's status is not recorded", id, r.GetStatus())
		}
	}
	w.gw.MustKill()
	for _, id := range batch {
		if _, err := filemedium.LoadFrameFile(filepath.Join(w.toCold, id+".request"+filemedium.FileSuffix)); err != nil {
			t.Fatalf("the frame of %s, written before the kill: %v", id, err)
		}
	}
	stored := w.stored()
	w.checkDurable(stored)
	for _, id := range batch {
		if r := stored[id]; r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_QUEUED || r.GetAttempts() != 0 {
			t.Fatalf("request %s after the kill: %s attempt %d, want QUEUED attempt 0", id, r.GetStatus(), r.GetAttempts())
		}
	}
	w.runRelay()
	w.finish()
}

// TestKillBeforeInsertCommits: SIGKILLed inside the commit of the first
// submission while several are submitted at once. None was acknowledged,
// none is in the state file; submitted again after the restart, each is
// signed once.
func TestKillBeforeInsertCommits(t *testing.T) { forEachStore(t, testKillBeforeInsertCommits) }

func testKillBeforeInsertCommits(t *testing.T, kind storeKind) {
	w := newKillWorld(t, kind, 4)
	w.start("insert")
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, req := range w.reqs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			resp, err := w.custody.SubmitIntent(ctx, req, grpc.WaitForReady(true))
			if err == nil {
				mu.Lock()
				w.tell(resp.GetRequest())
				mu.Unlock()
			}
		})
	}
	w.crashed("insert")
	w.gw.MustKill()
	wg.Wait()
	if len(w.seen) != 0 {
		t.Fatalf("submissions acknowledged before their commit: %v", w.seen)
	}
	stored := w.stored()
	w.checkDurable(stored)
	if len(stored) != 0 {
		t.Fatalf("the state file holds %d requests whose commit was killed", len(stored))
	}
	w.runRelay()
	w.finish()
}

// TestKillBetweenAnswersAndSettling: SIGKILLed after the answers read
// together are recorded and before they are settled on the medium. What
// was recorded stays; after the restart the answers are read again and
// settled as repeats, nothing is signed twice or quarantined.
func TestKillBetweenAnswersAndSettling(t *testing.T) {
	forEachStore(t, testKillBetweenAnswersAndSettling)
}

func testKillBetweenAnswersAndSettling(t *testing.T, kind storeKind) {
	w := newKillWorld(t, kind, 4)
	w.runRelay()
	w.start("receive:committed")
	for _, req := range w.reqs {
		resp, err := w.custody.SubmitIntent(context.Background(), req, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("SubmitIntent: %v", err)
		}
		w.tell(resp.GetRequest())
	}
	batch := w.crashed("receive:committed")
	for _, id := range w.ids() {
		r, err := w.get(id)
		if err != nil {
			t.Fatal(err)
		}
		w.tell(r)
	}
	for _, id := range batch {
		if w.seen[id] != pb.RequestStatus_REQUEST_STATUS_SIGNED {
			t.Fatalf("request %s is %s after its answer was recorded ", id, w.seen[id])
		}
	}
	w.gw.MustKill()
	for _, id := range batch {
		if _, err := os.Lstat(filepath.Join(w.toHot, id+".response"+filemedium.FileSuffix)); err != nil {
			t.Fatalf("the answer of %s was settled before the kill: %v", id, err)
		}
	}
	w.checkDurable(w.stored())
	w.finish()
}
