package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// low is a work threshold cheap enough for tests (about 256 hashes).
const low uint64 = 0xff00000000000000

// workServer speaks the work server JSON (work_generate, work_cancel).
type workServer struct {
	url      string
	cancels  chan string
	requests atomic.Int32
}

// newWorkServer starts a work server whose work_generate answers with
// answer(root, difficulty) after delay (or never, if answer returns "").
func newWorkServer(t *testing.T, delay time.Duration, answer func(root nano.Hash, difficulty uint64) string) *workServer {
	t.Helper()
	ws := &workServer{cancels: make(chan string, 4)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req map[string]string
		if err := json.Unmarshal(body, &req); err != nil {
			_, _ = w.Write(nodeError("Unable to parse JSON"))
			return
		}
		switch req["action"] {
		case "work_cancel":
			ws.cancels <- req["hash"]
			_, _ = w.Write([]byte(`{}`))
		case "work_generate":
			ws.requests.Add(1)
			root, err := nano.ParseHash(req["hash"])
			if err != nil {
				_, _ = w.Write(nodeError("Invalid root hash"))
				return
			}
			d, err := nano.ParseThreshold(req["difficulty"])
			if err != nil {
				_, _ = w.Write(nodeError("Bad difficulty"))
				return
			}
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
			work := answer(root, d)
			if work == "" {
				<-r.Context().Done()
				return
			}
			_, _ = w.Write([]byte(`{"work": "` + work + `", "difficulty": "` + hex16(d) + `", "multiplier": "1"}`))
		default:
			_, _ = w.Write(nodeError("Unknown command"))
		}
	}))
	t.Cleanup(srv.Close)
	ws.url = srv.URL
	return ws
}

func validWork(root nano.Hash, d uint64) string {
	r, err := nano.GenerateWork(context.Background(), root, d, nano.WorkOptions{Workers: 1})
	if err != nil {
		return ""
	}
	return r.Work.String()
}

// invalidWork returns a nonce that does not meet d.
func invalidWork(root nano.Hash, d uint64) string {
	for w := nano.Work(0); ; w++ {
		if !nano.ValidateWork(root, w, d) {
			return w.String()
		}
	}
}

func serverClient(ws *workServer) *Client {
	return NewClient(NewHTTP(ws.url, HTTPOptions{}), fastOpts())
}

func TestServerWorkRaceCancelsTheLoser(t *testing.T) {
	fast := newWorkServer(t, 0, validWork)
	slow := newWorkServer(t, time.Hour, validWork)
	p := &ServerWork{Servers: []*Client{serverClient(slow), serverClient(fast)}}
	root := nano.Hash{1, 2, 3}
	w, err := p.Generate(testCtx(t), root, low)
	if err != nil {
		t.Fatal(err)
	}
	if !nano.ValidateWork(root, w, low) {
		t.Fatal("invalid work returned")
	}
	select {
	case h := <-slow.cancels:
		if h != root.String() {
			t.Errorf("cancel for %s", h)
		}
	case <-time.After(hangLimit):
		t.Fatal("the losing server got no work_cancel")
	}
	// A negative check with a short wait: on a slow host a wrong
	// work_cancel may come later and the test pass without seeing it; it
	// can never fail a correct client.
	select {
	case <-fast.cancels:
		t.Error("the winner got a work_cancel")
	case <-time.After(20 * time.Millisecond):
	}
}

func TestServerWorkRejectsInvalidAnswers(t *testing.T) {
	// The honest server answers only once the liar has answered (and
	// 50 ms later, so that the client has usually checked the lie first):
	// however slow the host, the liar is asked before the race is won.
	liarAnswered := make(chan struct{})
	var once sync.Once
	liar := newWorkServer(t, 0, func(root nano.Hash, d uint64) string {
		defer once.Do(func() { close(liarAnswered) })
		return invalidWork(root, d)
	})
	honest := newWorkServer(t, 50*time.Millisecond, func(root nano.Hash, d uint64) string {
		select {
		case <-liarAnswered:
		case <-time.After(hangLimit):
		}
		return validWork(root, d)
	})
	root := nano.Hash{4}
	p := &ServerWork{Servers: []*Client{serverClient(liar), serverClient(honest)}}
	w, err := p.Generate(testCtx(t), root, low)
	if err != nil || !nano.ValidateWork(root, w, low) {
		t.Fatalf("%s %v", w, err)
	}
	if liar.requests.Load() != 1 {
		t.Errorf("liar asked %d times", liar.requests.Load())
	}
	p = &ServerWork{Servers: []*Client{serverClient(liar)}}
	if _, err := p.Generate(testCtx(t), root, low); !errors.Is(err, ErrNoWork) || !errors.Is(err, ErrInvalidWork) {
		t.Errorf("only a liar: %v", err)
	}
}

func TestNodeWorkAndCPUWork(t *testing.T) {
	root := nano.Hash{6}
	w, err := CPUWork{}.Generate(testCtx(t), root, low)
	if err != nil || !nano.ValidateWork(root, w, low) {
		t.Fatalf("cpu: %s %v", w, err)
	}
	_, err = CPUWork{Options: nano.WorkOptions{MaxAttempts: 1}}.Generate(testCtx(t), root, ^uint64(0))
	if !errors.Is(err, ErrNoWork) {
		t.Errorf("cpu budget: %v", err)
	}
	n := newFakeNode(t)
	n.handle("work_generate", func(req map[string]any) []byte {
		d, _ := nano.ParseThreshold(str(req["difficulty"]))
		h, _ := nano.ParseHash(str(req["hash"]))
		return []byte(`{"work": "` + validWork(h, d) + `", "difficulty": "` + hex16(d) + `", "multiplier": "1", "hash": "` + h.String() + `"}`)
	})
	c, _ := newClients(t, n)
	w, err = NodeWork{Client: c}.Generate(testCtx(t), root, low)
	if err != nil || !nano.ValidateWork(root, w, low) {
		t.Fatalf("node: %s %v", w, err)
	}
}

// countingWork is a provider that counts its calls and can be held.
type countingWork struct {
	calls atomic.Int32
	hold  chan struct{} // if non-nil, Generate waits for it
}

func (p *countingWork) Generate(ctx context.Context, root nano.Hash, threshold uint64) (nano.Work, error) {
	p.calls.Add(1)
	if p.hold != nil {
		select {
		case <-p.hold:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return CPUWork{Options: nano.WorkOptions{Workers: 1}}.Generate(ctx, root, threshold)
}

func TestPrecomputer(t *testing.T) {
	prov := &countingWork{}
	p := NewPrecomputer(prov, PrecomputerOptions{Max: 2})
	defer p.Close()
	root := nano.Hash{7}
	if _, ok := p.Take(root, low); ok {
		t.Fatal("work before any precompute")
	}
	p.Precompute(root, low)
	p.Precompute(root, low) // already in hand: no second generation
	var w nano.Work
	eventually(t, "precomputed work", func() bool { var ok bool; w, ok = p.Take(root, low); return ok })
	if !nano.ValidateWork(root, w, low) || prov.calls.Load() != 1 {
		t.Errorf("work %s, %d calls", w, prov.calls.Load())
	}
	if _, ok := p.Take(root, low); ok {
		t.Error("work handed out twice")
	}
	// Work below the threshold asked for is not handed out.
	p.Precompute(root, low)
	eventually(t, "generation", func() bool { return failedOrDone(p, root) })
	if w, ok := p.Take(root, ^uint64(0)); ok {
		t.Errorf("work %s handed out above its threshold", w)
	}
	// Bounded: the oldest root is dropped.
	p.Precompute(nano.Hash{8}, low)
	p.Precompute(nano.Hash{9}, low)
	if p.Len() != 2 {
		t.Errorf("%d roots held", p.Len())
	}
	// Get waits for a generation in progress instead of starting another:
	// while the generation is held, a Get whose context has ended returns
	// the context's error without a second call to the provider; once it
	// is released, Get returns its work.
	held := &countingWork{hold: make(chan struct{})}
	p2 := NewPrecomputer(held, PrecomputerOptions{})
	defer p2.Close()
	p2.Precompute(root, low)
	eventually(t, "the held generation", func() bool { return held.calls.Load() == 1 })
	ended, cancel := context.WithCancel(testCtx(t))
	cancel()
	if _, err := p2.Get(ended, root, low); !errors.Is(err, context.Canceled) || held.calls.Load() != 1 {
		t.Errorf("get during the generation: %v, %d calls", err, held.calls.Load())
	}
	close(held.hold)
	w, err := p2.Get(testCtx(t), root, low)
	if err != nil || !nano.ValidateWork(root, w, low) || held.calls.Load() != 1 {
		t.Errorf("get: %s %v, %d calls", w, err, held.calls.Load())
	}
	// Get without a precompute generates directly.
	w, err = p2.Get(testCtx(t), nano.Hash{10}, low)
	if err != nil || !nano.ValidateWork(nano.Hash{10}, w, low) {
		t.Errorf("get: %s %v", w, err)
	}
}

func failedOrDone(p *Precomputer, root nano.Hash) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entries[root]
	if e == nil {
		return false
	}
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

func TestThreshold(t *testing.T) {
	if Threshold(nano.SubtypeSend, WorkThresholds{}, nil) != nano.ThresholdSend ||
		Threshold(nano.SubtypeOpen, WorkThresholds{}, nil) != nano.ThresholdReceive {
		t.Error("base thresholds")
	}
	dev := WorkThresholds{Send: 0xfe00000000000000, Receive: 0xf000000000000000}
	if Threshold(nano.SubtypeChange, dev, nil) != dev.Send || Threshold(nano.SubtypeReceive, dev, nil) != dev.Receive {
		t.Error("dev thresholds")
	}
	// A node reporting an absurd difficulty is capped.
	d := ActiveDifficulty{NetworkMinimum: nano.ThresholdSend, NetworkCurrent: ^uint64(0) - 1}
	got := d.Raise(nano.ThresholdSend, nano.SubtypeSend)
	ts := nano.ThresholdSend
	if want := -uint64(float64(-ts) / MaxMultiplier); got < want-1024 || got > want+1024 {
		t.Errorf("capped at %016x, want about %016x", got, want)
	}
	// A current below the minimum never lowers a threshold.
	d = ActiveDifficulty{NetworkMinimum: nano.ThresholdSend, NetworkCurrent: 1}
	if d.Raise(nano.ThresholdSend, nano.SubtypeSend) != nano.ThresholdSend {
		t.Error("lowered")
	}
	if d.Current(nano.SubtypeSend) != 1 {
		t.Error("Current")
	}
}
