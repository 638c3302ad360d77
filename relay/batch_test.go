package relay_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/bridge/filemedium/mediumtest"
	"github.com/nanokms/nanokms/bridge/frame"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
)

// batchLog records the batches a relay writes and settles, passing them
// on to the file medium.
type batchLog struct {
	frame.BatchWriter
	in frame.BatchReader

	mu      sync.Mutex
	writes  []int // frames per WriteFrames
	singles int   // WriteFrame calls
	settled chan []string
}

func (l *batchLog) WriteFrames(ctx context.Context, fs []*frame.Frame) (int, error) {
	l.mu.Lock()
	l.writes = append(l.writes, len(fs))
	l.mu.Unlock()
	return l.BatchWriter.WriteFrames(ctx, fs)
}

func (l *batchLog) WriteFrame(ctx context.Context, f *frame.Frame) error {
	l.mu.Lock()
	l.singles++
	l.mu.Unlock()
	return l.BatchWriter.WriteFrame(ctx, f)
}

// batchIn is the reading half of a batchLog.
type batchIn struct{ l *batchLog }

func (b batchIn) ReadFrame(ctx context.Context) (*frame.Received, error) {
	return b.l.in.ReadFrame(ctx)
}

func (b batchIn) ReadFrames(ctx context.Context, max int) ([]*frame.Received, error) {
	return b.l.in.ReadFrames(ctx, max)
}

func (b batchIn) DoneAll(recs []*frame.Received) error {
	err := b.l.in.DoneAll(recs)
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	b.l.settled <- names
	return err
}

// TestRelayAnswersABatchAtOnce: requests waiting together on the medium
// are asked of the signer together, their answers written in one batch
// (one sync of the outbound directory) and the requests settled in one.
func TestRelayAnswersABatchAtOnce(t *testing.T) {
	const n = 5
	env := signertest.MustEnv(t, n)
	dir := t.TempDir()
	toCold, toHot := filepath.Join(dir, "to-cold"), filepath.Join(dir, "to-hot")
	medium, err := bridge.Open(bridge.Config{Kind: "file", Inbound: toCold, Outbound: toHot, PollInterval: 5 * time.Millisecond}, bridge.Cold, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer medium.Close()
	var ids []string
	for i := range uint32(n) {
		acct := env.Account(i)
		src, prev := env.Fund(acct, custodytest.XNO(5))
		in := env.ReceiveIntent(acct, custodytest.XNO(5), src.Hash(), &env.Rep)
		f, err := frame.NewRequestFrame(&pb.BridgeRequest{Sign: &pb.SignRequest{Intent: in,
			Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		mediumtest.PutFrame(t, toCold, f)
		ids = append(ids, in.GetRequestId())
	}
	log := &batchLog{BatchWriter: medium.Writer.(frame.BatchWriter), in: medium.Reader.(frame.BatchReader), settled: make(chan []string, 4)}
	rl := &relay.Relay{In: batchIn{log}, Out: log, Signer: env.Client, RetryMin: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	runs := make(chan error, 1)
	go func() { runs <- rl.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runs; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case names := <-log.settled:
		if len(names) != n {
			t.Fatalf("settled %q in one batch, want all %d", names, n)
		}
	case err := <-runs:
		t.Fatalf("the relay stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the relay settled nothing")
	}
	for _, id := range ids {
		if f := mediumtest.AnswerOf(t, toHot, id); f.Type != frame.TypeResponse {
			t.Fatalf("request %s answered with a %s", id, f.Type)
		}
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.writes) != 1 || log.writes[0] != n || log.singles != 0 {
		t.Fatalf("answers written in batches of %v and %d single writes, want one batch of %d", log.writes, log.singles, n)
	}
}
