package relay_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/bridge/filemedium/mediumtest"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/metrics/metricstest"
	"github.com/nanokms/nanokms/metrics/relaymetrics"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
)

// epochWorld is a real signer and a file medium between a test (the hot
// side) and relays it starts.
type epochWorld struct {
	env           *signertest.Env
	toCold, toHot string
	metrics       *relaymetrics.Relay
	next          uint32 // the next unused account
}

func newEpochWorld(t *testing.T, accounts int) *epochWorld {
	t.Helper()
	dir := t.TempDir()
	w := &epochWorld{env: signertest.MustEnv(t, accounts), toCold: filepath.Join(dir, "to-cold"), toHot: filepath.Join(dir, "to-hot"),
		metrics: relaymetrics.NewRelay()}
	for _, d := range []string{w.toCold, w.toHot} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// put writes a request frame (a receive on a new account) with the leader
// epoch to the inbound medium and returns its request id.
func (w *epochWorld) put(t *testing.T, epoch uint64) string {
	t.Helper()
	acct := w.env.Account(w.next)
	w.next++
	src, prev := w.env.Fund(acct, custodytest.XNO(5))
	in := w.env.ReceiveIntent(acct, custodytest.XNO(5), src.Hash(), &w.env.Rep)
	f, err := frame.NewRequestFrame(&pb.BridgeRequest{Sign: &pb.SignRequest{Intent: in,
		Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)}, Attempt: 1, LeaderEpoch: epoch}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mediumtest.PutFrame(t, w.toCold, f)
	return in.GetRequestId()
}

// start runs a relay (a new one: its highest epoch starts at 0) until
// the returned stop is called; settled receives the names of each batch
// it settles.
func (w *epochWorld) start(t *testing.T) (rl *relay.Relay, settled <-chan []string, stop func()) {
	t.Helper()
	medium, err := bridge.Open(bridge.Config{Kind: "file", Inbound: w.toCold, Outbound: w.toHot, PollInterval: 5 * time.Millisecond}, bridge.Cold, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := &batchLog{BatchWriter: medium.Writer.(frame.BatchWriter), in: medium.Reader.(frame.BatchReader), settled: make(chan []string, 16)}
	rl = &relay.Relay{In: batchIn{log}, Out: log, Signer: w.env.Client, RetryMin: 5 * time.Millisecond, Observe: w.metrics.Observe}
	ctx, cancel := context.WithCancel(context.Background())
	runs := make(chan error, 1)
	go func() { runs <- rl.Run(ctx) }()
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		cancel()
		if err := <-runs; err != nil {
			t.Errorf("Run: %v", err)
		}
		medium.Close()
	}
	t.Cleanup(stop)
	return rl, log.settled, stop
}

// waitSettled waits until the relay has settled every id of ids.
func waitSettled(t *testing.T, settled <-chan []string, ids ...string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	left := slices.Clone(ids)
	for len(left) > 0 {
		select {
		case names := <-settled:
			left = slices.DeleteFunc(left, func(id string) bool {
				return slices.ContainsFunc(names, func(n string) bool {
					return n == mediumtest.FileName(&frame.Frame{RequestID: id, Type: frame.TypeRequest})
				})
			})
		case <-deadline:
			t.Fatalf("requests %q not settled", left)
		}
	}
}

// wantUnanswered checks that the signer never saw id and that no answer
// to it is on the outbound medium.
func (w *epochWorld) wantUnanswered(t *testing.T, id string) {
	t.Helper()
	if _, ok, err := w.env.Store.Request(id); err != nil || ok {
		t.Errorf("the signer recorded %s (%v): it was asked", id, err)
	}
	for _, typ := range []frame.FrameType{frame.TypeResponse, frame.TypeRefusal} {
		if _, err := os.Lstat(filepath.Join(w.toHot, mediumtest.FileName(&frame.Frame{RequestID: id, Type: typ}))); err == nil {
			t.Errorf("%s was answered with a %s", id, typ)
		}
	}
}

// auditRecords counts the signer's audit records.
func (w *epochWorld) auditRecords(t *testing.T) int {
	t.Helper()
	n := 0
	if _, err := w.env.Store.AuditFrom(0, func(*pb.AuditRecord) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLeaderEpochFence: requests of epoch 5 are answered; then a new
// request of epoch 4 (a deposed gateway's) is settled unanswered, the
// signer never asked and the stale frame counted; epoch 0 (no election)
// is answered as before and leaves the highest epoch alone.
func TestLeaderEpochFence(t *testing.T) {
	w := newEpochWorld(t, 4)
	rl, settled, _ := w.start(t)
	a := w.put(t, 5)
	if f := mediumtest.AnswerOf(t, w.toHot, a); f.Type != frame.TypeResponse {
		t.Fatalf("epoch 5: answered with a %s", f.Type)
	}
	waitSettled(t, settled, a)
	if got := rl.LeaderEpoch(); got != 5 {
		t.Fatalf("LeaderEpoch %d after an epoch-5 frame, want 5", got)
	}
	audit := w.auditRecords(t)
	b := w.put(t, 4)
	waitSettled(t, settled, b)
	w.wantUnanswered(t, b)
	if n := w.auditRecords(t); n != audit {
		t.Errorf("the signer's audit grew from %d to %d records for a stale frame", audit, n)
	}
	if got := metricstest.ToFloat(w.metrics.FramesStale); got != 1 {
		t.Errorf("nanokms_relay_frames_stale_total = %v, want 1", got)
	}
	if got := metricstest.ToFloat(w.metrics.Requests.WithLabelValues(relaymetrics.RelaySigned)); got != 1 {
		t.Errorf("signed requests %v, want 1 (the stale one is not counted)", got)
	}
	if _, err := os.Lstat(filepath.Join(w.toCold, mediumtest.FileName(&frame.Frame{RequestID: b, Type: frame.TypeRequest}))); !os.IsNotExist(err) {
		t.Errorf("the stale request is still on the medium (%v): it is settled as done", err)
	}
	c := w.put(t, 0)
	if f := mediumtest.AnswerOf(t, w.toHot, c); f.Type != frame.TypeResponse {
		t.Fatalf("epoch 0: answered with a %s", f.Type)
	}
	waitSettled(t, settled, c)
	if got := rl.LeaderEpoch(); got != 5 {
		t.Errorf("LeaderEpoch %d after an epoch-0 frame, want 5", got)
	}
	d := w.put(t, 5)
	if f := mediumtest.AnswerOf(t, w.toHot, d); f.Type != frame.TypeResponse {
		t.Fatalf("epoch 5 again: answered with a %s", f.Type)
	}
}

// TestLeaderEpochInOneBatch: a lower epoch waiting beside a higher one is
// dropped whichever the medium gives first; a relay started anew begins
// from epoch 0 (the highest epoch is kept in memory only).
func TestLeaderEpochInOneBatch(t *testing.T) {
	w := newEpochWorld(t, 3)
	old := w.put(t, 6)
	cur := w.put(t, 7)
	none := w.put(t, 0)
	rl, settled, stop := w.start(t)
	waitSettled(t, settled, old, cur, none)
	for _, id := range []string{cur, none} {
		if f := mediumtest.AnswerOf(t, w.toHot, id); f.Type != frame.TypeResponse {
			t.Fatalf("%s answered with a %s", id, f.Type)
		}
	}
	w.wantUnanswered(t, old)
	if got := rl.LeaderEpoch(); got != 7 {
		t.Errorf("LeaderEpoch %d, want 7", got)
	}
	stop()
	rl, _, _ = w.start(t)
	if got := rl.LeaderEpoch(); got != 0 {
		t.Errorf("a new relay starts at epoch %d, want 0", got)
	}
}
