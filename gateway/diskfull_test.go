package gateway

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/filemedium/mediumtest"
	"github.com/nanokms/nanokms/bridge/frame"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
)

// The disk-full tests put the gateway's state file, or the outbound
// medium, on a small tmpfs, fill it, and check that the gateway says so
// (ResourceExhausted, NOT_SERVING), keeps nothing half-written, and goes
// on by itself once space returns.

// fillFS fills the file system holding dir with one file, until not one
// more page fits, and returns the file's path.
func fillFS(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, os.Getpagesize())
	for {
		if _, err := f.Write(page); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			break
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Bavail != 0 {
		t.Fatalf("%s has %d blocks free after filling it", dir, st.Bavail)
	}
	return path
}

// fullWorld is a gateway (no node) serving its Custody API and health on
// a Unix socket, and a relay and signer started on demand.
type fullWorld struct {
	t       *testing.T
	env     *signertest.Env
	g       *Gateway
	custody pb.CustodyClient
	health  healthpb.HealthClient
	toCold  string
	toHot   string
	relay   func() // starts the relay
}

func newFullWorld(t *testing.T, state, toCold, toHot string) *fullWorld {
	t.Helper()
	for _, d := range []string{toCold, toHot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	w := &fullWorld{t: t, env: signertest.MustEnv(t, 1), toCold: toCold, toHot: toHot}
	pub := w.env.Account(0)
	out, err := filemedium.NewFileWriter(toCold)
	if err != nil {
		t.Fatal(err)
	}
	in, err := filemedium.NewFileReader(toHot, filemedium.FileReaderOptions{PollInterval: 5 * time.Millisecond, Types: []frame.FrameType{frame.TypeResponse, frame.TypeRefusal, frame.TypeHeartbeat},
		OnReject: func(name string, err error) { t.Errorf("the gateway quarantined %s: %v", name, err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	w.g, err = Open(state, Options{Out: out, Reader: in, ResendInterval: time.Hour,
		Manifest: NewManifest(&pb.CustodyAccount{Wallet: custodytest.Wallet, Index: 0, PublicKey: pub[:], Address: pub.Address()})})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "gw.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var closers []*filemedium.FileReader // closed once the loops have stopped
	runs := make(chan error, 3)
	loops := 2
	go func() { runs <- w.g.Run(ctx) }()
	go func() { runs <- ServeCustody(ctx, l, NewCustodyServer(w.g), nil, time.Second) }()
	w.relay = func() {
		relayIn, err := filemedium.NewFileReader(toCold, filemedium.FileReaderOptions{PollInterval: 5 * time.Millisecond, Types: []frame.FrameType{frame.TypeRequest, frame.TypeHeartbeat},
			OnReject: func(name string, err error) { t.Errorf("the relay quarantined %s: %v", name, err) }})
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, relayIn)
		relayOut, err := filemedium.NewFileWriter(toHot)
		if err != nil {
			t.Fatal(err)
		}
		loops++
		r := &relay.Relay{In: relayIn, Out: relayOut, Signer: w.env.Client, RetryMin: 10 * time.Millisecond}
		go func() { runs <- r.Run(ctx) }()
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		for range loops {
			if err := <-runs; err != nil {
				t.Errorf("run: %v", err)
			}
		}
		for _, r := range closers {
			r.Close()
		}
		w.g.Close()
	})
	w.custody, w.health = pb.NewCustodyClient(conn), healthpb.NewHealthClient(conn)
	return w
}

func (w *fullWorld) submit(req *pb.SubmitIntentRequest) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := w.custody.SubmitIntent(ctx, req, grpc.WaitForReady(true))
	return err
}

func (w *fullWorld) mustSubmit(req *pb.SubmitIntentRequest) {
	w.t.Helper()
	if err := w.submit(req); err != nil {
		w.t.Fatalf("SubmitIntent %s: %v", req.GetIntent().GetRequestId(), err)
	}
}

func (w *fullWorld) get(id string) (*pb.Request, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.custody.GetRequest(ctx, &pb.GetRequestRequest{RequestId: id}, grpc.WaitForReady(true))
}

func (w *fullWorld) mustGet(id string) *pb.Request {
	w.t.Helper()
	r, err := w.get(id)
	if err != nil {
		w.t.Fatalf("GetRequest %s: %v", id, err)
	}
	return r
}

// awaitHealth waits until the gateway's health is want.
func (w *fullWorld) awaitHealth(want healthpb.HealthCheckResponse_ServingStatus) {
	w.t.Helper()
	poll(w.t, 60*time.Second, "the gateway's health is "+want.String(), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := w.health.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		return err == nil && resp.GetStatus() == want
	})
}

// awaitSigned waits until step's request is signed with the block planned.
func (w *fullWorld) awaitSigned(st ktStep) {
	w.t.Helper()
	id := st.req.GetIntent().GetRequestId()
	var r *pb.Request
	poll(w.t, 60*time.Second, "request "+id+" is signed", func() bool {
		r = w.mustGet(id)
		return r.GetStatus() == pb.RequestStatus_REQUEST_STATUS_SIGNED
	})
	if b := mustSigned(w.t, r, st.subtype); b != st.want {
		w.t.Fatalf("request %s signed %s, want %s", id, b.Hash(), st.want.Hash())
	}
}

// TestGatewayStoreFull: when the gateway's state file cannot grow, a
// submission is refused with ResourceExhausted naming the full store and
// is not recorded, the gateway reports NOT_SERVING, and once space
// returns it serves again and takes every request to its end, without a
// restart.
func TestGatewayStoreFull(t *testing.T) {
	fs := mediumtest.MustTmpfs(t, "size=4m,mode=0700")
	dir := t.TempDir()
	w := newFullWorld(t, filepath.Join(fs, "gateway.db"), filepath.Join(dir, "to-cold"), filepath.Join(dir, "to-hot"))
	steps := ktChain(t, w.env, 0, 300)
	// The first request goes to the bridge; with no relay yet it holds the
	// account's line, so the requests after it wait in the queue and
	// nothing but the submissions writes to the state file.
	w.mustSubmit(steps[0].req)
	poll(t, 30*time.Second, "the first request is sent", func() bool {
		return w.mustGet(steps[0].req.GetIntent().GetRequestId()).GetStatus() == pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD
	})
	filler := fillFS(t, fs)

	// Submissions are recorded until the file cannot grow.
	refused := -1
	for i := 1; i < len(steps); i++ {
		err := w.submit(steps[i].req)
		if err == nil {
			continue
		}
		if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "state store is full") {
			t.Fatalf("submission %d on a full file system: %v; want ResourceExhausted saying the state store is full", i, err)
		}
		refused = i
		break
	}
	if refused < 0 {
		t.Fatalf("%d submissions were all recorded on a full file system", len(steps)-1)
	}
	t.Logf("submission %d refused: the state store is full", refused)
	w.awaitHealth(healthpb.HealthCheckResponse_NOT_SERVING)

	// Nothing half-written: the refused request is unknown, the others
	// are there as they were, and the file checks out.
	refusedID := steps[refused].req.GetIntent().GetRequestId()
	if _, err := w.get(refusedID); status.Code(err) != codes.NotFound {
		t.Fatalf("the refused request: %v; want NotFound", err)
	}
	for i := range refused {
		r := w.mustGet(steps[i].req.GetIntent().GetRequestId())
		want := pb.RequestStatus_REQUEST_STATUS_QUEUED
		if i == 0 {
			want = pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD
		}
		if r.GetStatus() != want {
			t.Fatalf("request %d is %s on a full file system, want %s", i, r.GetStatus(), want)
		}
	}
	if err := w.g.store.(*gatewayStore).db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}); err != nil {
		t.Fatalf("the state file after the failed writes: %v", err)
	}
	if _, err := w.g.WriteHealth(); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("WriteHealth on a full file system: %v; want ErrStoreFull", err)
	}

	// The answer to the first request arrives: recording it may fail too,
	// and is retried.
	w.relay()

	// Space returns: the gateway serves again and everything goes on.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	w.awaitHealth(healthpb.HealthCheckResponse_SERVING)
	w.mustSubmit(steps[refused].req)
	var ids []string
	for i := 0; i <= refused; i++ {
		w.awaitSigned(steps[i])
		ids = append(ids, steps[i].req.GetIntent().GetRequestId())
	}
	checkSignedExactly(t, w.env, ids...)
	if _, err := w.g.WriteHealth(); err != nil {
		t.Fatalf("WriteHealth once space returned: %v", err)
	}
}

// TestGatewayMediumFull: when the outbound medium is full, the gateway
// keeps running and reports NOT_SERVING, the request waits in its queue
// with nothing of it on the medium, and once space returns it is written
// and answered, without a restart.
func TestGatewayMediumFull(t *testing.T) {
	fs := mediumtest.MustTmpfs(t, "size=1m,mode=0700")
	dir := t.TempDir()
	w := newFullWorld(t, filepath.Join(dir, "gateway.db"), filepath.Join(fs, "to-cold"), filepath.Join(dir, "to-hot"))
	w.relay()
	steps := ktChain(t, w.env, 0, 3)
	w.mustSubmit(steps[0].req)
	w.awaitSigned(steps[0])
	filler := fillFS(t, fs)

	id := steps[1].req.GetIntent().GetRequestId()
	w.mustSubmit(steps[1].req) // the state file has room: recorded
	w.awaitHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	if _, err := w.g.WriteHealth(); !errors.Is(err, filemedium.ErrMediumFull) {
		t.Fatalf("WriteHealth with the medium full: %v; want ErrMediumFull", err)
	}
	if r := w.mustGet(id); r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_QUEUED || r.GetAttempts() != 0 {
		t.Fatalf("request %s is %s after %d attempts with the medium full; want QUEUED, none", id, r.GetStatus(), r.GetAttempts())
	}
	// Nothing half-written: no frame of the request, every frame whole.
	checkFramesWhole(t, w.toCold)
	if _, err := os.Lstat(filepath.Join(w.toCold, id+".request"+filemedium.FileSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a frame of the request is on the full medium (%v)", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	w.awaitSigned(steps[1])
	w.awaitHealth(healthpb.HealthCheckResponse_SERVING)
	w.mustSubmit(steps[2].req)
	w.awaitSigned(steps[2])
	checkSignedExactly(t, w.env, steps[0].req.GetIntent().GetRequestId(), id, steps[2].req.GetIntent().GetRequestId())
	checkFramesWhole(t, w.toCold)
	entries, err := os.ReadDir(w.toCold)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), filemedium.TempPrefix) {
			t.Fatalf("a temporary file is left on the medium: %s", e.Name())
		}
	}
	if q := allQuarantined(w.toCold); len(q) != 0 {
		t.Fatalf("quarantined on the medium: %q", q)
	}
}

// checkFramesWhole checks that every frame file in dir (and its done/)
// decodes: a failed write left no partial frame under a frame's name.
func checkFramesWhole(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{dir, filepath.Join(dir, filemedium.DoneDir)} {
		entries, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), filemedium.FileSuffix) {
				continue
			}
			data, err := os.ReadFile(filepath.Join(d, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := frame.DecodeFrame(data); err != nil {
				t.Fatalf("%s on the medium is not a whole frame: %v", e.Name(), err)
			}
		}
	}
}
