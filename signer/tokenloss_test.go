package signer

// The token goes away under a running signer, and comes back: the real
// nanokms binary as a subprocess (the crash harness) on a real SoftHSM
// token of its own, over gRPC on a real Unix socket.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// tokenLossCase takes a running signer's SoftHSM token away (lose) and
// returns what gives it back as it was.
type tokenLossCase struct {
	name string
	lose func(t *testing.T, cs *crashSigner) (restore func(t *testing.T))
	// watchdog: wait for NOT_SERVING before any request, so that the
	// signer must notice the loss by itself (ServeOptions.TokenCheck).
	watchdog bool
}

var tokenLossCases = []tokenLossCase{
	{
		// SoftHSM's directories.tokendir renamed (and renamed back).
		name: "directory renamed",
		lose: func(t *testing.T, cs *crashSigner) func(*testing.T) {
			root := filepath.Dir(cs.tokenDir)
			if err := os.Rename(root, root+".away"); err != nil {
				t.Fatal(err)
			}
			return func(t *testing.T) {
				if err := os.Rename(root+".away", root); err != nil {
					t.Fatal(err)
				}
			}
		},
		watchdog: true,
	},
	{
		// An empty tmpfs mounted over the token's own directory (and
		// unmounted). Needs root: CI runs as root, and a test that cannot
		// mount fails.
		name: "hidden by a mount",
		lose: func(t *testing.T, cs *crashSigner) func(*testing.T) {
			if os.Geteuid() != 0 {
				t.Fatalf("hiding the token directory under a tmpfs needs root (uid %d): run the tests as root, as CI does", os.Geteuid())
			}
			dir := cs.tokenDir
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "nanokms-token-loss", dir).CombinedOutput(); err != nil {
				t.Fatalf("mount: %v\n%s", err, out)
			}
			mounted := true
			t.Cleanup(func() { // if the test failed before the restore
				if mounted {
					_ = exec.Command("umount", dir).Run()
				}
			})
			return func(t *testing.T) {
				if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
					t.Fatalf("umount: %v\n%s", err, out)
				}
				mounted = false
			}
		},
	},
	{
		// Every object file of the token (token.object included) emptied,
		// then written back as it was.
		name: "object files emptied",
		lose: func(t *testing.T, cs *crashSigner) func(*testing.T) {
			entries, err := os.ReadDir(cs.tokenDir)
			if err != nil {
				t.Fatal(err)
			}
			saved := map[string][]byte{}
			for _, e := range entries {
				if !strings.HasSuffix(e.Name(), ".object") {
					continue
				}
				p := filepath.Join(cs.tokenDir, e.Name())
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				saved[p] = b
				if err := os.Truncate(p, 0); err != nil {
					t.Fatal(err)
				}
			}
			if len(saved) < 3 { // token.object, the master key, the wallet
				t.Fatalf("only %d object files in %s", len(saved), cs.tokenDir)
			}
			return func(t *testing.T) {
				for p, b := range saved {
					if err := os.WriteFile(p, b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
		},
	},
}

// For each way a SoftHSM token can go away under a running signer: a
// request during the outage is answered UNAVAILABLE with the reason
// TOKEN_UNAVAILABLE (not INTERNAL "wallet not found"), the health service
// reports NOT_SERVING; once the token is back, SERVING again and the same
// request is signed, once, without a restart; the state file's audit
// chain verifies and holds each signed block once.
func TestTokenLoss(t *testing.T) {
	tok := newCrashToken(t)
	bin := killtest.Build(t, "cmd/nanokms-cold")
	for _, tc := range tokenLossCases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) { runTokenLoss(t, bin, tok, tc) })
	}
}

func runTokenLoss(t *testing.T, bin string, tok *crashToken, tc tokenLossCase) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cs := newCrashSigner(t, bin, tok)
	funder, rep, dest := custodytest.NewExtAccount(1), custodytest.NewExtAccount(70).Pub, custodytest.NewExtAccount(50).Pub
	acct := tok.account(0)
	funder.Add(custodytest.XNO(1_000_000), nano.Hash{0xAA}, rep)
	prev := funder.Blocks[0]
	src := funder.Add(custodytest.XNO(999_000), nano.Hash(acct), rep)
	expiry := time.Now().Add(time.Hour).Unix()

	if err := cs.start(); err != nil {
		t.Fatal(err)
	}
	if err := cs.waitHealthy(time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.client.AdoptAccount(ctx, &pb.AdoptAccountRequest{Wallet: "custody", Index: 0}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	srcHash := src.Hash()
	openIn := &pb.Intent{RequestId: "loss-open", Kind: pb.IntentKind_INTENT_KIND_RECEIVE, Account: acct[:],
		AmountRaw: custodytest.XNO(1000).String(), SourceHash: srcHash[:], Representative: rep[:], ExpiresAtUnix: expiry}
	opened, err := cs.client.Sign(ctx, &pb.SignRequest{Intent: openIn, Source: pbBlock(src), SourcePrevious: pbBlock(prev),
		Approvals: []*pb.Approval{mustApprove(t, cs, openIn)}})
	if err != nil {
		t.Fatalf("open before the outage: %v", err)
	}
	head, err := opened.GetBlock().ToNano("block")
	if err != nil {
		t.Fatal(err)
	}

	health := watchSignerHealth(t, ctx, cs)
	health.until(healthpb.HealthCheckResponse_SERVING)

	restore := tc.lose(t, cs)
	if tc.watchdog {
		// No request: the signer's own look at the token notices.
		health.until(healthpb.HealthCheckResponse_NOT_SERVING)
	}

	sendIn := &pb.Intent{RequestId: "loss-send", Kind: pb.IntentKind_INTENT_KIND_SEND, Account: acct[:],
		AmountRaw: "1000", Destination: dest[:], ExpiresAtUnix: expiry}
	send := &pb.SignRequest{Intent: sendIn, Head: pbBlock(head), Approvals: []*pb.Approval{mustApprove(t, cs, sendIn)}}
	for attempt := 1; attempt <= 2; attempt++ {
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := cs.client.Sign(cctx, send)
		ccancel()
		st := status.Convert(err)
		if err == nil || st.Code() != codes.Unavailable || !signerapi.IsTokenUnavailable(st) || !strings.Contains(st.Message(), "token is unavailable") {
			t.Fatalf("Sign during the outage (attempt %d) = %v, %v; want UNAVAILABLE with the reason %s", attempt, resp, err, signerapi.ErrorInfoTokenUnavailable)
		}
	}
	if !tc.watchdog {
		health.until(healthpb.HealthCheckResponse_NOT_SERVING)
	}

	restore(t)
	health.until(healthpb.HealthCheckResponse_SERVING)
	signed, err := cs.client.Sign(ctx, send)
	if err != nil {
		t.Fatalf("the same request once the token is back: %v", err)
	}
	b, err := signed.GetBlock().ToNano("block")
	if err != nil {
		t.Fatal(err)
	}
	if h := b.Hash(); b.Previous != head.Hash() || !nano.Verify(acct, h[:], b.Signature) {
		t.Fatalf("signed after recovery: %+v does not follow the head or does not verify", b)
	}
	again, err := cs.client.Sign(ctx, send)
	if err != nil || !proto.Equal(again, signed) {
		t.Fatalf("the request resent: %v, %v; want the recorded answer", again, err)
	}
	// The signer was never restarted, and says what happened.
	if cs.Starts() != 1 {
		t.Fatalf("%d starts", cs.Starts())
	}
	logText, _ := os.ReadFile(cs.LogPath())
	for _, want := range []string{"token unavailable", "token available again"} {
		if !bytes.Contains(logText, []byte(want)) {
			t.Errorf("the signer's log does not say %q", want)
		}
	}
	if err := cs.terminate(10 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	s, err := openStateReadOnly(cs.state)
	if err != nil {
		t.Fatal(err)
	}
	defer s.db.Close()
	state, err := checkCrashState(s, &crashCheckCache{})
	if err != nil {
		t.Fatalf("state after the outage: %v", err)
	}
	if state.nSigned != 2 {
		t.Fatalf("%d blocks signed, want 2 (the open and the send, once each)", state.nSigned)
	}
	if _, ok := state.requests["loss-send"]; !ok {
		t.Fatal("no stored answer for the request signed after the outage")
	}
}

func mustApprove(t *testing.T, cs *crashSigner, in *pb.Intent) *pb.Approval {
	t.Helper()
	a, err := intent.Approve(cs.service, in)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// watchSignerHealth follows the subprocess signer's overall health status
// (see healthWatch).
func watchSignerHealth(t *testing.T, ctx context.Context, cs *crashSigner) *healthWatch {
	t.Helper()
	// A bound, so that a status that never comes fails the test clearly
	// instead of hanging it; nothing waits on it to synchronise.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	stream, err := cs.health.Watch(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	return &healthWatch{t: t, stream: stream}
}
