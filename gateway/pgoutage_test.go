package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/internal/grpcserve"
	"github.com/nanokms/nanokms/internal/health/healthtest"
	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/internal/pgtest"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
)

// TestPGRestartUnderLoad: the gateway's database stops while requests
// are in flight and more are submitted over the Custody API. While it is
// down every call fails cleanly with Unavailable (nothing acknowledged),
// /readyz fails its "store" check and the gateway keeps running; once the
// database is back, /readyz passes again, the submissions retried go
// through, and every request is signed, once, with its block recorded
// once: nothing lost, nothing duplicated. (The server is the test's own:
// the package's other tests keep theirs.)
func TestPGRestartUnderLoad(t *testing.T) {
	const n = 8
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	env := signertest.MustEnv(t, n)
	gwOut, gwIn, relayIn, relayOut := fileMedium(t)
	var custody []*pb.CustodyAccount
	var reqs []*pb.SubmitIntentRequest
	var ids []string
	for i := range uint32(n) {
		pub := env.Account(i)
		custody = append(custody, &pb.CustodyAccount{Wallet: custodytest.Wallet, Index: i, PublicKey: pub[:], Address: pub.Address()})
		src, prev := env.Fund(pub, custodytest.XNO(3))
		in := env.ReceiveIntent(pub, custodytest.XNO(3), src.Hash(), &env.Rep)
		reqs = append(reqs, &pb.SubmitIntentRequest{Intent: in, Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)})
		ids = append(ids, in.GetRequestId())
	}
	gw, err := OpenPG(t.Context(), dsn, PGOptions{OpTimeout: 3 * time.Second}, Options{
		Out: gwOut, Reader: gwIn, Manifest: NewManifest(custody...), ResendInterval: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sock := filepath.Join(t.TempDir(), "gw.sock")
	l, err := grpcserve.Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: gw.Health().Handler()}
	rl := &relay.Relay{In: relayIn, Out: relayOut, Signer: env.Client, RetryMin: 10 * time.Millisecond}
	done := make(chan error, 3)
	go func() { done <- rl.Run(ctx) }()
	go func() { done <- gw.Run(ctx) }()
	go func() { done <- ServeCustody(ctx, l, NewCustodyServer(gw), nil, time.Second) }()
	go hs.Serve(hl)
	t.Cleanup(func() {
		cancel()
		for range 3 {
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
		hs.Close()
		gw.Close()
	})
	client := pb.NewCustodyClient(killtest.Dial(t, sock))
	addr := hl.Addr().String()
	healthtest.WaitFor(t, time.Minute, addr, "/readyz", 200, "ok store\n")

	// Half submitted before the outage: in flight when it starts.
	for _, r := range reqs[:n/2] {
		if _, err := client.SubmitIntent(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	// Clean errors while it is down: Unavailable, and nothing else.
	if _, err := client.GetRequest(ctx, &pb.GetRequestRequest{RequestId: ids[0]}); status.Code(err) != codes.Unavailable {
		t.Fatalf("GetRequest with the database down: %v, want Unavailable", err)
	}
	var (
		failedOnce sync.WaitGroup
		submitted  sync.WaitGroup
		mu         sync.Mutex
		wrong      []error
		refusals   int
	)
	for _, r := range reqs[n/2:] {
		failedOnce.Add(1)
		submitted.Add(1)
		go func() {
			defer submitted.Done()
			first := true
			for {
				_, err := client.SubmitIntent(ctx, r)
				if err == nil {
					if first { // the database was down: it cannot have succeeded first
						mu.Lock()
						wrong = append(wrong, errors.New("a submission succeeded with the database down"))
						mu.Unlock()
						failedOnce.Done()
					}
					return
				}
				mu.Lock()
				refusals++
				if status.Code(err) != codes.Unavailable {
					wrong = append(wrong, err)
				}
				mu.Unlock()
				if first {
					first = false
					failedOnce.Done()
				}
				if ctx.Err() != nil {
					return
				}
				select { // the caller's retry pace
				case <-time.After(20 * time.Millisecond):
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	failedOnce.Wait()
	body := healthtest.WaitFor(t, time.Minute, addr, "/readyz", 503, "fail store: ")
	t.Logf("database down: %q", body)

	srv.Start(t)
	submitted.Wait()
	healthtest.WaitFor(t, time.Minute, addr, "/readyz", 200, "ok store\n")
	mu.Lock()
	if len(wrong) != 0 {
		t.Fatalf("errors other than Unavailable while the database was down: %v", wrong)
	}
	t.Logf("%d submissions refused Unavailable while the database was down", refusals)
	mu.Unlock()

	w := &bridgeWorld{t: t, ctx: ctx, env: env, gw: gw}
	for _, id := range ids {
		mustSigned(t, w.await(id), "open")
	}
	checkSignedExactly(t, env, ids...)
	if got := pgCount(t, dsn, "SELECT count(*) FROM gateway_requests"); got != n {
		t.Errorf("%d requests stored, want %d", got, n)
	}
	if got := pgCount(t, dsn, "SELECT count(*) FROM gateway_signed"); got != n {
		t.Errorf("%d signed blocks recorded, want %d", got, n)
	}
}
