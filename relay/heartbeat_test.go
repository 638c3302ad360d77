package relay_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/relay"
)

// TestRelayHeartbeats: with Heartbeat set, the relay writes heartbeat
// frames ("relay", a growing sequence) to its outbound medium while it runs.
func TestRelayHeartbeats(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "to-cold"), filepath.Join(dir, "to-hot")
	for _, d := range []string{in, out} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	w, err := filemedium.NewFileWriter(out)
	if err != nil {
		t.Fatal(err)
	}
	r, err := filemedium.NewFileReader(in, filemedium.FileReaderOptions{PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	watch, err := filemedium.NewFileReader(out, filemedium.FileReaderOptions{PollInterval: 5 * time.Millisecond, Types: []frame.FrameType{frame.TypeHeartbeat}})
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	rl := &relay.Relay{In: r, Out: w, Signer: nil, Heartbeat: 10 * time.Millisecond}
	go func() { done <- rl.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var last uint64
	for i := 0; i < 3; i++ {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		rec, err := watch.ReadFrame(rctx)
		rcancel()
		if err != nil {
			t.Fatalf("no heartbeat: %v", err)
		}
		var hb pb.Heartbeat
		if err := proto.Unmarshal(rec.Frame.Payload, &hb); err != nil || hb.GetSender() != "relay" || rec.Frame.RequestID != "relay" {
			t.Fatalf("heartbeat %+v: %v", &hb, err)
		}
		if hb.GetSeq() <= last {
			t.Fatalf("heartbeat sequence %d after %d", hb.GetSeq(), last)
		}
		last = hb.GetSeq()
		if err := rec.Done(); err != nil {
			t.Fatal(err)
		}
	}
}
