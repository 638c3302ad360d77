package relay_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/filemedium/mediumtest"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer/signertest"
)

// logTap is a slog handler that sends the records with one message to a
// channel (and drops the rest).
type logTap struct {
	msg string
	ch  chan slog.Record
}

func (h *logTap) Enabled(context.Context, slog.Level) bool { return true }
func (h *logTap) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logTap) WithGroup(string) slog.Handler            { return h }
func (h *logTap) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.ch <- r:
		default:
		}
	}
	return nil
}

// TestRelayResumesWhenMediumFreed: the stick is full when the relay has
// an answer to write. The relay does not stop: it reports the full
// medium, leaves nothing half-written, keeps the request unsettled, and
// writes the answer (then settles the request) by itself once space is
// back.
func TestRelayResumesWhenMediumFreed(t *testing.T) {
	env := signertest.MustEnv(t, 1)
	mnt := mediumtest.MustTmpfs(t, "size=512k")
	toCold, toHot := filepath.Join(mnt, "to-cold"), filepath.Join(mnt, "to-hot")
	medium, err := bridge.Open(bridge.Config{Kind: "file", Inbound: toCold, Outbound: toHot, PollInterval: 5 * time.Millisecond}, bridge.Cold, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer medium.Close()
	mediumtest.PutFrame(t, toCold, frametest.RequestFrame(t, "when-full", time.Now()))
	filler := mediumtest.FillBytes(t, mnt)

	tap := &logTap{msg: "the outbound medium did not take the answer; retrying", ch: make(chan slog.Record, 1)}
	rl := &relay.Relay{In: medium.Reader, Out: medium.Writer, Signer: env.Client, Log: slog.New(tap),
		RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	runs := make(chan error, 1)
	go func() { runs <- rl.Run(ctx) }()
	stopped := false
	defer func() {
		cancel()
		if stopped {
			return
		}
		if err := <-runs; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case rec := <-tap.ch:
		full := false
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "medium_full" {
				full = a.Value.Bool()
			}
			return true
		})
		if !full {
			t.Fatalf("the failed write was not reported as a full medium")
		}
	case err := <-runs:
		stopped = true
		t.Fatalf("the relay stopped on a full medium: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the relay never reported the full medium")
	}
	if tmp := mediumtest.TempFiles(t, mnt); len(tmp) != 0 {
		t.Fatalf("half-written files on the full medium: %q", tmp)
	}
	mediumtest.WantNames(t, mediumtest.Ls(t, toHot, ""))
	if _, err := os.Lstat(filepath.Join(toCold, "when-full.request.nkb")); err != nil {
		t.Fatalf("the request was settled before its answer was written: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	mediumtest.AnswerOf(t, toHot, "when-full")
	// Settled after the answer: a second request shows the relay has
	// gone past the first.
	mediumtest.PutFrame(t, toCold, frametest.RequestFrame(t, "after-full", time.Now()))
	mediumtest.AnswerOf(t, toHot, "after-full")
	if _, err := os.Lstat(filepath.Join(toCold, filemedium.DoneDir, "when-full.request.nkb")); err != nil {
		t.Fatalf("the request was not settled once its answer was written: %v", err)
	}
}
