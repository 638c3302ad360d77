package gatewaymetrics

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nanokms/nanokms/metrics/metricstest"
	"github.com/nanokms/nanokms/node"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

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
	if n, _ := metricstest.HistCount(t, g.RoundTrip); n != 0 {
		t.Errorf("a round trip was measured from an unknown first write")
	}
	if n, sum := metricstest.HistCount(t, g.Publish); n != 1 || sum != 5 {
		t.Errorf("publish: %d, %v", n, sum)
	}
	if n, sum := metricstest.HistCount(t, g.Confirmation); n != 1 || sum != 6 {
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

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()

const (
	queued    = pb.RequestStatus_REQUEST_STATUS_QUEUED
	sent      = pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD
	signed    = pb.RequestStatus_REQUEST_STATUS_SIGNED
	refused   = pb.RequestStatus_REQUEST_STATUS_REFUSED
	published = pb.RequestStatus_REQUEST_STATUS_PUBLISHED
	confirmed = pb.RequestStatus_REQUEST_STATUS_CONFIRMED
	failed    = pb.RequestStatus_REQUEST_STATUS_FAILED
)

func observe(g *Gateway, id string, s pb.RequestStatus, at time.Duration, attempts uint32) {
	g.ObserveRequest(s, &pb.Request{RequestId: id, Status: s, SubmittedUnixNano: t0, UpdatedUnixNano: t0 + int64(at), Attempts: attempts})
}

func inStatus(g *Gateway, s pb.RequestStatus) float64 {
	return metricstest.ToFloat(g.InStatus.WithLabelValues(StatusLabel(s)))
}

func entered(g *Gateway, s pb.RequestStatus) float64 {
	return metricstest.ToFloat(g.Requests.WithLabelValues(StatusLabel(s)))
}

func TestGatewayLifecycle(t *testing.T) {
	g := NewGateway(GatewayOptions{})
	observe(g, "a", queued, 0, 0)
	observe(g, "a", sent, 2*time.Second, 1)
	observe(g, "a", sent, 32*time.Second, 2) // a resend
	if inStatus(g, sent) != 1 || inStatus(g, queued) != 0 || entered(g, sent) != 1 {
		t.Fatalf("after a resend: in sent %v, in queued %v, entered sent %v", inStatus(g, sent), inStatus(g, queued), entered(g, sent))
	}
	if got := metricstest.ToFloat(g.Resends); got != 1 {
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
		n, sum := metricstest.HistCount(t, c.h)
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
	if n, sum := metricstest.HistCount(t, g.RoundTrip); n != 1 || sum != 8 {
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
	if n, sum := metricstest.HistCount(t, g.RoundTrip); n != 1 || sum != 20 {
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
	if n, sum := metricstest.HistCount(t, g.RequestDuration.WithLabelValues("signed")); n != 1 || sum != 3 {
		t.Errorf("request seconds (signed): %d, %v", n, sum)
	}
}

func TestWorkOutcomes(t *testing.T) {
	g := NewGateway(GatewayOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _ = g.WorkProvider(metricstest.Work{Err: context.Canceled}).Generate(ctx, [32]byte{}, 0)
	_, _ = g.WorkProvider(metricstest.Work{Err: errors.New("x")}).Generate(context.Background(), [32]byte{}, 0)
	_, _ = g.WorkProvider(metricstest.Work{}).Generate(context.Background(), [32]byte{}, 0)
	for _, o := range []string{WorkOK, WorkError, WorkCanceled} {
		if n, _ := metricstest.HistCount(t, g.Work.WithLabelValues(o)); n != 1 {
			t.Errorf("work %s: %d samples", o, n)
		}
	}
}

// TestCallbackResults: every result's series exists before any callback,
// and Callback counts under its result only.
func TestCallbackResults(t *testing.T) {
	g := NewGateway(GatewayOptions{})
	if n := metricstest.CountSeries(g.Callbacks); n != len(node.CallbackResults) {
		t.Fatalf("%d callback series before any callback, want %d", n, len(node.CallbackResults))
	}
	g.Callback(node.CallbackRejected)
	g.Callback(node.CallbackRejected)
	g.Callback(node.CallbackDuplicate)
	for _, r := range node.CallbackResults {
		want := map[node.CallbackResult]float64{node.CallbackRejected: 2, node.CallbackDuplicate: 1}[r]
		if got := metricstest.ToFloat(g.Callbacks.WithLabelValues(string(r))); got != want {
			t.Errorf("%s: %v, want %v", r, got, want)
		}
	}
}

// TestLeaderTerms: the leader series exist from the start for the elected
// medium, follow each term's start and end, and count the terms.
func TestLeaderTerms(t *testing.T) {
	g := NewGateway(GatewayOptions{Medium: "usb"})
	want := func(leading, epoch, terms float64) {
		t.Helper()
		if got := metricstest.ToFloat(g.Leader.WithLabelValues("usb")); got != leading {
			t.Errorf("nanokms_gateway_leader = %v; want %v", got, leading)
		}
		if got := metricstest.ToFloat(g.LeaderEpoch.WithLabelValues("usb")); got != epoch {
			t.Errorf("nanokms_gateway_leader_epoch = %v; want %v", got, epoch)
		}
		if got := metricstest.ToFloat(g.LeaderTerms.WithLabelValues("usb")); got != terms {
			t.Errorf("nanokms_gateway_leader_terms_total = %v; want %v", got, terms)
		}
	}
	if n := metricstest.CountSeries(g.Leader); n != 1 {
		t.Fatalf("%d leader series before any term; want 1", n)
	}
	want(0, 0, 0)
	g.ObserveLeader("usb", true, 3)
	want(1, 3, 1)
	g.ObserveLeader("usb", false, 3)
	want(0, 3, 1)
	g.ObserveLeader("usb", true, 5)
	want(1, 5, 2)
	if n := metricstest.CountSeries(NewGateway(GatewayOptions{}).Leader); n != 0 {
		t.Fatalf("%d leader series for a single gateway; want 0", n)
	}
}
