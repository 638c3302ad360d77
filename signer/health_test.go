package signer

// The signer's HTTP health endpoints (signer.health_listen), on the real
// nanokms-cold binary (the crash harness) with a SoftHSM token of its own
// and its state file on a small tmpfs: ready, then the token gone, then
// the state file's file system full, each for real, and back; the gRPC
// health service says the same each time.

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/internal/health/healthtest"
	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// waitGRPCHealth waits, with killtest's bounded backoff, until the
// signer's gRPC health service answers want for the overall status and
// for the Signer service.
func waitGRPCHealth(t *testing.T, cs *crashSigner, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	status := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := cs.health.Check(ctx, &healthpb.HealthCheckRequest{Service: service}, grpc.WaitForReady(true))
		if err != nil {
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		return resp.GetStatus()
	}
	err := cs.WaitReady(time.Minute, "gRPC health "+want.String(), func() bool {
		return status("") == want && status(pb.Signer_ServiceDesc.ServiceName) == want
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSignerHealthEndpoints(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tok := newCrashToken(t)
	bin := killtest.Build(t, "cmd/nanokms-cold")
	mnt := mustTmpfs(t, 8<<20)
	cs := newCrashSigner(t, bin, tok)
	// The state file on the tmpfs, and the health listener on a socket.
	addr := "unix://" + filepath.Join(cs.dir, "health.sock")
	cs.state = filepath.Join(mnt, "signer.db")
	text := fmt.Sprintf(crashConfig, cs.state, cs.sock, tok.module, tok.label, tok.pinFile, []byte(cs.service.Public().(ed25519.PublicKey)))
	text = strings.Replace(text, "log_level = \"info\"\n", "log_level = \"info\"\nhealth_listen = \""+addr+"\"\n", 1)
	if err := os.WriteFile(cs.cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cs.start(); err != nil {
		t.Fatal(err)
	}
	if err := cs.waitHealthy(time.Minute); err != nil {
		t.Fatal(err)
	}

	// Ready: 200 with both checks, SERVING.
	body := healthtest.WaitFor(t, time.Minute, addr, "/readyz", 200)
	if body != "ready\nok token\nok state\n" {
		t.Errorf("/readyz = %q", body)
	}
	if code, body, err := healthtest.Get(ctx, addr, "/healthz"); err != nil || code != 200 || body != "alive\n" {
		t.Errorf("/healthz = %d %q %v", code, body, err)
	}
	waitGRPCHealth(t, cs, healthpb.HealthCheckResponse_SERVING)

	// An account with an open block, for the sends that fill the state.
	if _, err := cs.client.AdoptAccount(ctx, &pb.AdoptAccountRequest{Wallet: "custody", Index: 0}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	funder, rep, dest := custodytest.NewExtAccount(1), custodytest.NewExtAccount(70).Pub, custodytest.NewExtAccount(50).Pub
	acct := tok.account(0)
	funder.Add(custodytest.XNO(1_000_000), nano.Hash{0xAA}, rep)
	prev := funder.Blocks[0]
	src := funder.Add(custodytest.XNO(999_000), nano.Hash(acct), rep)
	expiry := time.Now().Add(time.Hour).Unix()
	srcHash := src.Hash()
	openIn := &pb.Intent{RequestId: "health-open", Kind: pb.IntentKind_INTENT_KIND_RECEIVE, Account: acct[:],
		AmountRaw: custodytest.XNO(1000).String(), SourceHash: srcHash[:], Representative: rep[:], ExpiresAtUnix: expiry}
	opened, err := cs.client.Sign(ctx, &pb.SignRequest{Intent: openIn, Source: pbBlock(src), SourcePrevious: pbBlock(prev),
		Approvals: []*pb.Approval{mustApprove(t, cs, openIn)}})
	if err != nil {
		t.Fatal(err)
	}
	head, err := opened.GetBlock().ToNano("block")
	if err != nil {
		t.Fatal(err)
	}

	// --- The token gone (its directory renamed away): 503 naming the
	// token, NOT_SERVING; alive all the same.
	root := filepath.Dir(cs.tokenDir)
	if err := os.Rename(root, root+".away"); err != nil {
		t.Fatal(err)
	}
	restored := false
	t.Cleanup(func() {
		if !restored {
			_ = os.Rename(root+".away", root)
		}
	})
	// A request that needs the token, so that the signer notices before
	// its own next look at the token (either will do).
	_, _ = cs.client.AdoptAccount(ctx, &pb.AdoptAccountRequest{Wallet: "custody", Index: 7})
	body = healthtest.WaitFor(t, time.Minute, addr, "/readyz", 503, "not ready: token\n", "\nfail token: ", "\nok state\n")
	t.Logf("token gone: %q", body)
	if strings.Contains(body, tok.pinFile) || strings.Contains(strings.ToLower(body), "pin:") {
		t.Errorf("/readyz says something of the PIN: %q", body)
	}
	waitGRPCHealth(t, cs, healthpb.HealthCheckResponse_NOT_SERVING)
	if code, _, err := healthtest.Do(ctx, "HEAD", addr, "/readyz"); err != nil || code != 503 {
		t.Errorf("HEAD /readyz = %d, %v; want 503", code, err)
	}
	if code, _, err := healthtest.Get(ctx, addr, "/healthz"); err != nil || code != 200 {
		t.Errorf("/healthz with the token gone = %d, %v; want 200", code, err)
	}
	if err := os.Rename(root+".away", root); err != nil {
		t.Fatal(err)
	}
	restored = true
	healthtest.WaitFor(t, time.Minute, addr, "/readyz", 200, "ready\nok token\nok state\n")
	waitGRPCHealth(t, cs, healthpb.HealthCheckResponse_SERVING)

	// --- The state file's file system full: a decision cannot be
	// recorded; 503 naming the state, NOT_SERVING.
	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	full := false
	for i := 0; i < 5000 && !full; i++ {
		in := &pb.Intent{RequestId: fmt.Sprintf("health-send-%d", i), Kind: pb.IntentKind_INTENT_KIND_SEND, Account: acct[:],
			AmountRaw: "1", Destination: dest[:], ExpiresAtUnix: expiry}
		resp, err := cs.client.Sign(ctx, &pb.SignRequest{Intent: in, Head: pbBlock(head), Approvals: []*pb.Approval{mustApprove(t, cs, in)}})
		switch {
		case err == nil:
			if head, err = resp.GetBlock().ToNano("block"); err != nil {
				t.Fatal(err)
			}
		case status.Code(err) == codes.ResourceExhausted:
			full = true
		default:
			t.Fatalf("signing on a filling file system: %v", err)
		}
	}
	if !full {
		t.Fatal("5000 decisions fitted on a full file system")
	}
	healthtest.WaitFor(t, time.Minute, addr, "/readyz", 503, "not ready: state\n", "\nok token\n", "\nfail state: ")
	waitGRPCHealth(t, cs, healthpb.HealthCheckResponse_NOT_SERVING)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// The signer's space probe finds the room again.
	healthtest.WaitFor(t, time.Minute, addr, "/readyz", 200, "ready\nok token\nok state\n")
	waitGRPCHealth(t, cs, healthpb.HealthCheckResponse_SERVING)

	// Stopped: the socket is gone with the process.
	if err := cs.terminate(10 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if _, _, err := healthtest.Get(ctx, addr, "/healthz"); err == nil {
		t.Error("/healthz answers after the signer stopped")
	}
}
