package signer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// mustTmpfs mounts a tmpfs of size bytes on a new directory and returns
// it; it is unmounted when the test ends. It fails (never skips) when the
// test cannot mount, for instance when it does not run as root.
func mustTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test mounts a small tmpfs to fill the state file's file system and must run as root (CI does); running as uid %d", os.Geteuid())
	}
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mounting a tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes path until the file system has no space left, and returns
// how many bytes it wrote.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	var n int64
	for {
		m, err := f.Write(buf)
		n += int64(m)
		if errors.Is(err, syscall.ENOSPC) {
			return n
		}
		if err != nil {
			t.Fatalf("filling %s: %v", path, err)
		}
	}
}

// healthWatch follows the signer's health status over gRPC.
type healthWatch struct {
	t      *testing.T
	stream healthpb.Health_WatchClient
}

func (w *world) watchHealth(service string) *healthWatch {
	w.t.Helper()
	// A bound, so that a status that never comes fails the test clearly
	// instead of hanging it; nothing waits on it to synchronise.
	ctx, cancel := context.WithTimeout(w.ctx, 2*time.Minute)
	w.t.Cleanup(cancel)
	stream, err := healthpb.NewHealthClient(w.conn).Watch(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		w.t.Fatal(err)
	}
	return &healthWatch{t: w.t, stream: stream}
}

// until reads status updates until want arrives.
func (h *healthWatch) until(want healthpb.HealthCheckResponse_ServingStatus) {
	h.t.Helper()
	for {
		resp, err := h.stream.Recv()
		if err != nil {
			h.t.Fatalf("waiting for health %v: %v", want, err)
		}
		if resp.GetStatus() == want {
			return
		}
	}
}

// TestStoreFull fills the file system that holds the state file (a small
// tmpfs) and signs until a decision cannot be recorded: the caller gets
// ResourceExhausted saying the state store is full (not a refusal: the
// relay resends), the health service reports NOT_SERVING, nothing is
// signed and nothing half-recorded (the audit chain verifies, the request
// has no answer). Once space is freed the health service reports SERVING
// again without a restart, and the same request signs.
func TestStoreFull(t *testing.T) {
	mnt := mustTmpfs(t, 8<<20)
	w := newWorldWith(t, worldOptions{stateDir: mnt, serve: ServeOptions{SpaceProbe: 10 * time.Millisecond}})
	health := w.watchHealth(pb.Signer_ServiceDesc.ServiceName)
	overall := w.watchHealth("")
	health.until(healthpb.HealthCheckResponse_SERVING)

	w.adopt("custody", 0, nil)
	src, srcPrev := w.Fund(w.custody, custodytest.XNO(100))
	head := w.mustSign(&pb.SignRequest{Intent: w.ReceiveIntent(w.custody, custodytest.XNO(100), src.Hash(), &w.Rep),
		Source: pbBlock(src), SourcePrevious: pbBlock(srcPrev)}, "open")

	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	var failed *pb.SignRequest
	for i := 0; i < 5000 && failed == nil; i++ {
		in := w.SendIntent(w.custody, nano.AmountFromUint64(1), w.dest)
		req := &pb.SignRequest{Intent: in, Head: pbBlock(head), Approvals: w.Approve(in, "service")}
		before, _ := w.auditTail()
		resp, err := w.client.Sign(w.ctx, req)
		if err == nil {
			if head, err = resp.GetBlock().ToNano("block"); err != nil {
				t.Fatal(err)
			}
			continue
		}
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted {
			t.Fatalf("signing on a full file system after %d decisions: %v; want ResourceExhausted", i, err)
		}
		if !strings.Contains(st.Message(), "state store is full") {
			t.Errorf("the message does not say the state store is full: %q", st.Message())
		}
		if ei := errorInfo(err); ei.GetReason() != "STATE_STORE_FULL" || !signerapi.IsStoreFull(st) {
			t.Errorf("ErrorInfo reason %q, want STATE_STORE_FULL", ei.GetReason())
		}
		if _, ok := signerapi.RefusalFromStatus(st); ok {
			t.Errorf("the full store reads as a refusal: the relay would answer it instead of resending")
		}
		// Nothing signed, nothing half-recorded.
		if after, _ := w.auditTail(); after != before {
			t.Errorf("the audit chain went from %d to %d records on a failed decision", before, after)
		}
		if _, answered, err := w.store.Request(in.GetRequestId()); err != nil || answered {
			t.Errorf("the failed request has a recorded answer (%v)", err)
		}
		if _, signed, err := w.store.SignedOn(w.custody, head.Hash()); err != nil || signed {
			t.Errorf("a block is recorded on the head (%v)", err)
		}
		acct, err := w.client.GetAccount(w.ctx, &pb.GetAccountRequest{Account: w.custody[:]})
		if err != nil {
			t.Fatal(err)
		}
		if h := head.Hash(); string(acct.GetFrontier()) != string(h[:]) {
			t.Errorf("the frontier moved to %X on a failed decision", acct.GetFrontier())
		}
		failed = req
	}
	if failed == nil {
		t.Fatal("5000 decisions fitted on a full file system")
	}
	health.until(healthpb.HealthCheckResponse_NOT_SERVING)
	overall.until(healthpb.HealthCheckResponse_NOT_SERVING)

	// The probes so far found no space.
	if strings.Contains(w.logs.String(), "state store writable again") {
		t.Fatal("the store was reported writable before space was freed")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	health.until(healthpb.HealthCheckResponse_SERVING)
	overall.until(healthpb.HealthCheckResponse_SERVING)
	if _, err := os.Lstat(w.stateFile + ".space-probe"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the space probe's file was left behind (%v)", err)
	}
	b := w.mustSign(failed, "send")
	if b.Previous != head.Hash() {
		t.Fatalf("the resent request signed on %s, want the head %s", b.Previous, head.Hash())
	}
	if n, last := w.auditTail(); last.GetDecision() != DecisionSigned || last.GetRequestId() != failed.GetIntent().GetRequestId() {
		t.Fatalf("the last of %d audit records is %s %q, want the resent request signed", n, last.GetDecision(), last.GetRequestId())
	}
	w.omu.Lock()
	full := slices.Contains(w.observed, DecisionFailed+"/"+ReasonStoreFull)
	w.omu.Unlock()
	if !full {
		t.Errorf("Observe was not told of a failure for a full store (%s/%s)", DecisionFailed, ReasonStoreFull)
	}
	logs := w.logs.String()
	if !strings.Contains(logs, "state store full") || !strings.Contains(logs, "state store writable again") {
		t.Errorf("the log does not tell the store was full and then writable:\n%s", logs)
	}
}
