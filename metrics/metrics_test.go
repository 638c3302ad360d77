package metrics

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nanokms/nanokms/coldbridge"
	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/node"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
)

// The methods fit the hooks they are meant for.
var (
	_ = func(g *Gateway) coldbridge.GatewayOptions {
		return coldbridge.GatewayOptions{Observe: g.ObserveRequest, ObserveAlert: g.ObserveAlert}
	}
	_ = func(g *Gateway) coldbridge.NodeSideOptions {
		return coldbridge.NodeSideOptions{WrapWork: g.WorkProvider}
	}
	_ = func(g *Gateway) coldbridge.RejectFunc { return g.FrameRejected }
	_ = func(r *Relay) coldbridge.Relay { return coldbridge.Relay{Observe: r.Observe} }
	_ = func(r *Relay) coldbridge.RejectFunc { return r.FrameRejected }
	_ = func(s *Signer) signer.Options { return signer.Options{Observe: s.Observe} }
	_ = func(g *Gateway) node.WorkProvider { return g.WorkProvider(nil) }
)

// histCount returns a histogram's sample count and sum.
func histCount(t *testing.T, h prometheus.Observer) (uint64, float64) {
	t.Helper()
	c, ok := h.(prometheus.Metric)
	if !ok {
		t.Fatalf("%T is not a metric", h)
	}
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// toFloat returns a counter's or a gauge's value.
func toFloat(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// countSeries returns how many series c has.
func countSeries(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()

func observe(g *Gateway, id string, s pb.RequestStatus, at time.Duration, attempts uint32) {
	g.ObserveRequest(s, &pb.Request{RequestId: id, Status: s, SubmittedUnixNano: t0, UpdatedUnixNano: t0 + int64(at), Attempts: attempts})
}

const (
	queued    = pb.RequestStatus_REQUEST_STATUS_QUEUED
	sent      = pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD
	signed    = pb.RequestStatus_REQUEST_STATUS_SIGNED
	refused   = pb.RequestStatus_REQUEST_STATUS_REFUSED
	published = pb.RequestStatus_REQUEST_STATUS_PUBLISHED
	confirmed = pb.RequestStatus_REQUEST_STATUS_CONFIRMED
	failed    = pb.RequestStatus_REQUEST_STATUS_FAILED
)

func inStatus(g *Gateway, s pb.RequestStatus) float64 {
	return toFloat(g.InStatus.WithLabelValues(StatusLabel(s)))
}

func entered(g *Gateway, s pb.RequestStatus) float64 {
	return toFloat(g.Requests.WithLabelValues(StatusLabel(s)))
}

func TestGatewayLifecycle(t *testing.T) {
	g := NewGateway(GatewayOptions{})
	observe(g, "a", queued, 0, 0)
	observe(g, "a", sent, 2*time.Second, 1)
	observe(g, "a", sent, 32*time.Second, 2) // a resend
	if inStatus(g, sent) != 1 || inStatus(g, queued) != 0 || entered(g, sent) != 1 {
		t.Fatalf("after a resend: in sent %v, in queued %v, entered sent %v", inStatus(g, sent), inStatus(g, queued), entered(g, sent))
	}
	if got := toFloat(g.Resends); got != 1 {
		t.Errorf("resends = %v", got)
	}
	observe(g, "a", signed, 52*time.Second, 2)
	observe(g, "a", published, 55*time.Second, 2)
	observe(g, "a", confirmed, 60*time.Second, 2)

	for _, c := range []struct {
		name string
		h    prometheus.Observer
		want float64
	}{
		{"round trip (first write to signed)", g.RoundTrip, 50},
		{"publish", g.Publish, 3},
		{"confirmation", g.Confirmation, 5},
		{"request", g.RequestDuration.WithLabelValues("confirmed"), 60},
	} {
		n, sum := histCount(t, c.h)
		if n != 1 || sum != c.want {
			t.Errorf("%s: %d samples, sum %v; want 1, %v", c.name, n, sum, c.want)
		}
	}
	for _, s := range []pb.RequestStatus{queued, sent, signed, published} {
		if inStatus(g, s) != 0 {
			t.Errorf("in %s: %v after confirmation", s, inStatus(g, s))
		}
	}
	if inStatus(g, confirmed) != 1 || entered(g, confirmed) != 1 {
		t.Errorf("confirmed: in %v, entered %v", inStatus(g, confirmed), entered(g, confirmed))
	}
	// A late notification of a finished request changes nothing.
	observe(g, "a", sent, 40*time.Second, 2)
	if inStatus(g, sent) != 0 || entered(g, sent) != 1 || len(g.open) != 0 {
		t.Errorf("a late notification brought the request back: in sent %v, entered %v, open %d", inStatus(g, sent), entered(g, sent), len(g.open))
	}
}

func TestGatewayReorderedNotifications(t *testing.T) {
	g := NewGateway(GatewayOptions{})
	observe(g, "a", queued, 0, 0)
	observe(g, "a", signed, 5*time.Second, 1) // the answer's change is told first
	observe(g, "a", sent, 4*time.Second, 1)   // then the send's, made earlier
	if inStatus(g, signed) != 1 || inStatus(g, sent) != 0 || entered(g, sent) != 0 {
		t.Errorf("in signed %v, in sent %v, entered sent %v", inStatus(g, signed), inStatus(g, sent), entered(g, sent))
	}
	// Same timestamp: the higher status wins.
	observe(g, "b", queued, 0, 0)
	observe(g, "b", refused, time.Second, 1)
	observe(g, "b", sent, time.Second, 1)
	if inStatus(g, refused) != 1 || inStatus(g, sent) != 0 {
		t.Errorf("in refused %v, in sent %v", inStatus(g, refused), inStatus(g, sent))
	}
}

func TestGatewayRefusalOverridden(t *testing.T) {
	g := NewGateway(GatewayOptions{})
	observe(g, "a", queued, 0, 0)
	observe(g, "a", sent, time.Second, 1)
	observe(g, "a", refused, 2*time.Second, 1) // forged
	observe(g, "a", refused, 2*time.Second, 1) // told again: nothing changes
	if inStatus(g, refused) != 1 || entered(g, refused) != 1 || len(g.open) != 0 {
		t.Fatalf("refused: in %v, entered %v, open %d", inStatus(g, refused), entered(g, refused), len(g.open))
	}
	observe(g, "a", signed, 9*time.Second, 1) // the real answer
	if inStatus(g, refused) != 0 || inStatus(g, signed) != 1 || entered(g, signed) != 1 {
		t.Errorf("after the override: in refused %v, in signed %v, entered signed %v", inStatus(g, refused), inStatus(g, signed), entered(g, signed))
	}
	if n, sum := histCount(t, g.RoundTrip); n != 1 || sum != 8 {
		t.Errorf("round trip: %d samples, sum %v", n, sum)
	}
	observe(g, "a", published, 10*time.Second, 1)
	observe(g, "a", confirmed, 12*time.Second, 1)
	if inStatus(g, confirmed) != 1 || inStatus(g, signed) != 0 || inStatus(g, published) != 0 {
		t.Errorf("after confirmation: confirmed %v signed %v published %v", inStatus(g, confirmed), inStatus(g, signed), inStatus(g, published))
	}
}

func TestGatewayRequeue(t *testing.T) {
	g := NewGateway(GatewayOptions{})
	observe(g, "a", queued, 0, 0)
	observe(g, "a", sent, time.Second, 1)
	observe(g, "a", queued, 10*time.Second, 1) // PENDING_BLOCK recovery
	if inStatus(g, queued) != 1 || inStatus(g, sent) != 0 || entered(g, queued) != 2 {
		t.Errorf("in queued %v, in sent %v, entered queued %v", inStatus(g, queued), inStatus(g, sent), entered(g, queued))
	}
	observe(g, "a", sent, 11*time.Second, 2)
	observe(g, "a", signed, 21*time.Second, 2)
	if n, sum := histCount(t, g.RoundTrip); n != 1 || sum != 20 {
		t.Errorf("round trip: %d samples, sum %v; want it from the first write", n, sum)
	}
}

func TestGatewayWithoutNode(t *testing.T) {
	g := NewGateway(GatewayOptions{NoNode: true})
	observe(g, "a", queued, 0, 0)
	observe(g, "a", sent, time.Second, 1)
	observe(g, "a", signed, 3*time.Second, 1)
	if len(g.open) != 0 {
		t.Errorf("a signed request is still tracked without a node")
	}
	if n, sum := histCount(t, g.RequestDuration.WithLabelValues("signed")); n != 1 || sum != 3 {
		t.Errorf("request seconds (signed): %d, %v", n, sum)
	}
}

func TestGatewaySeed(t *testing.T) {
	g := NewGateway(GatewayOptions{})
	seed := func(id string, s pb.RequestStatus, at time.Duration) {
		g.Seed(&pb.Request{RequestId: id, Status: s, SubmittedUnixNano: t0, UpdatedUnixNano: t0 + int64(at)})
	}
	seed("done", confirmed, time.Minute)
	seed("waiting", sent, time.Second)
	seed("signed", signed, 10*time.Second)
	seed("published", published, 20*time.Second)
	seed("signed", signed, 10*time.Second) // twice: counted once
	if inStatus(g, confirmed) != 1 || inStatus(g, sent) != 1 || inStatus(g, signed) != 1 || inStatus(g, published) != 1 {
		t.Fatalf("seeded gauges: confirmed %v sent %v signed %v published %v", inStatus(g, confirmed), inStatus(g, sent), inStatus(g, signed), inStatus(g, published))
	}
	for _, s := range gatewayStatuses {
		if entered(g, s) != 0 {
			t.Errorf("seeding counted %s as entered", s)
		}
	}
	observe(g, "waiting", signed, 30*time.Second, 3)
	observe(g, "signed", published, 15*time.Second, 1)
	observe(g, "published", confirmed, 26*time.Second, 1)
	if n, _ := histCount(t, g.RoundTrip); n != 0 {
		t.Errorf("a round trip was measured from an unknown first write")
	}
	if n, sum := histCount(t, g.Publish); n != 1 || sum != 5 {
		t.Errorf("publish: %d, %v", n, sum)
	}
	if n, sum := histCount(t, g.Confirmation); n != 1 || sum != 6 {
		t.Errorf("confirmation: %d, %v", n, sum)
	}
	if inStatus(g, sent) != 0 || inStatus(g, signed) != 1 || inStatus(g, confirmed) != 2 {
		t.Errorf("gauges after changes: sent %v signed %v confirmed %v", inStatus(g, sent), inStatus(g, signed), inStatus(g, confirmed))
	}
}

func TestGatewayForgetsOldFinished(t *testing.T) {
	g := NewGateway(GatewayOptions{})
	for i := range doneMemory + 10 {
		id := fmt.Sprintf("r%d", i)
		observe(g, id, queued, 0, 0)
		observe(g, id, failed, time.Second, 0)
	}
	if len(g.done) != doneMemory || len(g.open) != 0 {
		t.Errorf("done %d (want %d), open %d", len(g.done), doneMemory, len(g.open))
	}
}

func TestWorkOutcomes(t *testing.T) {
	g := NewGateway(GatewayOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _ = g.WorkProvider(fakeWork{context.Canceled}).Generate(ctx, [32]byte{}, 0)
	_, _ = g.WorkProvider(fakeWork{errors.New("x")}).Generate(context.Background(), [32]byte{}, 0)
	_, _ = g.WorkProvider(fakeWork{}).Generate(context.Background(), [32]byte{}, 0)
	for _, o := range []string{WorkOK, WorkError, WorkCanceled} {
		if n, _ := histCount(t, g.Work.WithLabelValues(o)); n != 1 {
			t.Errorf("work %s: %d samples", o, n)
		}
	}
}

func TestRejectReason(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&coldbridge.FrameError{Code: coldbridge.ErrCodeChecksum, Detail: "secret-looking detail"}, "checksum_mismatch"},
		{&coldbridge.FrameError{Code: coldbridge.ErrCodeFuture}, "from_the_future"},
		{&coldbridge.FrameError{Code: 200}, RejectReasonOther},
		{&coldbridge.RejectedError{Reason: "anything"}, RejectReasonConsumer},
		{errors.New("x"), RejectReasonOther},
	} {
		if got := RejectReason(c.err); got != c.want {
			t.Errorf("RejectReason(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	for _, w := range wireErrors {
		if r := wireReason(w); strings.ContainsAny(r, " ABCDEFGHIJKLMNOPQRSTUVWXYZ") || strings.HasPrefix(r, "wire_error") {
			t.Errorf("wire error %d has label %q", w, r)
		}
	}
}

func TestMediumKind(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&coldbridge.EntryError{Path: "/m/to-cold/done", Found: "symbolic link", Want: "a directory"}, MediumBadEntry},
		{fmt.Errorf("coldbridge: writing x: %w: %w", coldbridge.ErrMediumFull, syscall.ENOSPC), MediumFull},
		{fmt.Errorf("settling: %w", fs.ErrNotExist), MediumIO},
	} {
		if got := MediumKind(c.err); got != c.want {
			t.Errorf("MediumKind(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	r := NewRelay()
	r.MediumError(&coldbridge.EntryError{Path: "p", Found: "regular file", Want: "a directory"})
	var m dto.Metric
	if err := r.MediumErrors.WithLabelValues(MediumBadEntry).Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Errorf("bad_entry = %v (%v) after one bad entry", m.GetCounter().GetValue(), err)
	}
}

func TestClosedLabelSets(t *testing.T) {
	s := NewSigner()
	s.Observe("made-up", "nano_1secretlookingaccount", time.Millisecond)
	s.Observe(signer.DecisionRefused, "not a reason", time.Millisecond)
	if got := toFloat(s.Decisions.WithLabelValues("other", "other")); got != 1 {
		t.Errorf("unknown decision: %v", got)
	}
	if got := toFloat(s.Decisions.WithLabelValues(signer.DecisionRefused, "other")); got != 1 {
		t.Errorf("unknown reason: %v", got)
	}
	r := NewRelay()
	r.Observe("made-up", time.Second)
	if n := countSeries(r.Requests); n != 3 {
		t.Errorf("relay requests have %d series after an unknown outcome", n)
	}
}

func TestSignerTokenAvailable(t *testing.T) {
	s := NewSigner()
	if got := toFloat(s.TokenAvailable); got != 1 {
		t.Fatalf("token available at start = %v, want 1", got)
	}
	s.ObserveToken(hsm.TokenStatus{Available: false, Cause: hsm.ErrTokenUnavailable})
	if got := toFloat(s.TokenAvailable); got != 0 {
		t.Fatalf("token available while it is gone = %v, want 0", got)
	}
	s.Observe(signer.DecisionFailed, signer.ReasonTokenUnavailable, time.Millisecond)
	if got := toFloat(s.Decisions.WithLabelValues(signer.DecisionFailed, signer.ReasonTokenUnavailable)); got != 1 {
		t.Fatalf("failed/token_unavailable = %v, want 1", got)
	}
	s.ObserveToken(hsm.TokenStatus{Available: true})
	if got := toFloat(s.TokenAvailable); got != 1 {
		t.Fatalf("token available once back = %v, want 1", got)
	}
}

func TestWriteTextfile(t *testing.T) {
	dir := t.TempDir()
	r := NewRelay()
	r.Observe(RelaySigned, time.Millisecond)
	path := filepath.Join(dir, "relay.prom")
	for range 3 {
		if err := WriteTextfile(r.Registry, path); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "relay.prom" {
		t.Errorf("directory holds %v, want only relay.prom", entries)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `nanokms_relay_requests_total{outcome="signed"} 1`) {
		t.Errorf("the file lacks the signed count:\n%s", data)
	}
	if err := WriteTextfile(r.Registry, filepath.Join(dir, "relay.txt")); err == nil {
		t.Error("a name without .prom was accepted")
	}
	if err := WriteTextfile(r.Registry, filepath.Join(dir, "missing", "relay.prom")); err == nil {
		t.Error("a missing directory was not reported")
	}
}

func TestRunTextfileWritesOnShutdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signer.prom")
	s := NewSigner()
	ctx, cancel := context.WithCancel(context.Background())
	wait := StartTextfile(ctx, s.Registry, path, time.Hour, func(err error) { t.Errorf("write: %v", err) })
	deadline := time.Now().Add(20 * time.Second) // a hang bound
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first write did not happen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Observe(signer.DecisionSigned, "", time.Millisecond)
	cancel()
	wait()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `nanokms_signer_decisions_total{decision="signed",reason=""} 1`) {
		t.Errorf("the last write is missing the last decision:\n%s", data)
	}
	StartTextfile(context.Background(), s.Registry, "", 0, nil)() // no file: returns at once
}

func TestHandlerServesOnlyMetrics(t *testing.T) {
	g := NewGateway(GatewayOptions{})
	srv := httptest.NewServer(Handler(g.Registry, nil))
	defer srv.Close()
	for path, want := range map[string]int{"/metrics": 200, "/": 404, "/debug/pprof/": 404} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestServeStops(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := NewGateway(GatewayOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, Handler(g.Registry, nil)) }()
	resp, err := http.Get("http://" + l.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(20 * time.Second): // a hang bound
		t.Fatal("Serve did not stop")
	}
}
