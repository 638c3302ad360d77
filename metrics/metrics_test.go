package metrics_test

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

	dto "github.com/prometheus/client_model/go"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/gateway"
	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/metrics"
	"github.com/nanokms/nanokms/metrics/gatewaymetrics"
	"github.com/nanokms/nanokms/metrics/metricstest"
	"github.com/nanokms/nanokms/metrics/relaymetrics"
	"github.com/nanokms/nanokms/metrics/signermetrics"
	"github.com/nanokms/nanokms/node"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer"
)

// The methods fit the hooks they are meant for.
var (
	_ = func(g *gatewaymetrics.Gateway) gateway.Options {
		return gateway.Options{Observe: g.ObserveRequest, ObserveAlert: g.ObserveAlert}
	}
	_ = func(g *gatewaymetrics.Gateway) gateway.NodeSideOptions {
		return gateway.NodeSideOptions{WrapWork: g.WorkProvider}
	}
	_ = func(g *gatewaymetrics.Gateway) frame.RejectFunc { return g.FrameRejected }
	_ = func(r *relaymetrics.Relay) relay.Relay { return relay.Relay{Observe: r.Observe} }
	_ = func(r *relaymetrics.Relay) frame.RejectFunc { return r.FrameRejected }
	_ = func(s *signermetrics.Signer) signer.Options { return signer.Options{Observe: s.Observe} }
	_ = func(g *gatewaymetrics.Gateway) node.WorkProvider { return g.WorkProvider(nil) }
)

func TestRejectReason(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&frame.FrameError{Code: frame.ErrCodeChecksum, Detail: "secret-looking detail"}, "checksum_mismatch"},
		{&frame.FrameError{Code: frame.ErrCodeFuture}, "from_the_future"},
		{&frame.FrameError{Code: 200}, metrics.RejectReasonOther},
		{&filemedium.RejectedError{Reason: "anything"}, metrics.RejectReasonConsumer},
		{errors.New("x"), metrics.RejectReasonOther},
	} {
		if got := metrics.RejectReason(c.err); got != c.want {
			t.Errorf("RejectReason(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestMediumKind(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&filemedium.EntryError{Path: "/m/to-cold/done", Found: "symbolic link", Want: "a directory"}, metrics.MediumBadEntry},
		{fmt.Errorf("gateway: writing x: %w: %w", filemedium.ErrMediumFull, syscall.ENOSPC), metrics.MediumFull},
		{fmt.Errorf("settling: %w", fs.ErrNotExist), metrics.MediumIO},
	} {
		if got := metrics.MediumKind(c.err); got != c.want {
			t.Errorf("MediumKind(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	r := relaymetrics.NewRelay()
	r.MediumError(&filemedium.EntryError{Path: "p", Found: "regular file", Want: "a directory"})
	var m dto.Metric
	if err := r.MediumErrors.WithLabelValues(metrics.MediumBadEntry).Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Errorf("bad_entry = %v (%v) after one bad entry", m.GetCounter().GetValue(), err)
	}
}

func TestClosedLabelSets(t *testing.T) {
	s := signermetrics.NewSigner()
	s.Observe("made-up", "nano_1secretlookingaccount", time.Millisecond)
	s.Observe(signer.DecisionRefused, "not a reason", time.Millisecond)
	if got := metricstest.ToFloat(s.Decisions.WithLabelValues("other", "other")); got != 1 {
		t.Errorf("unknown decision: %v", got)
	}
	if got := metricstest.ToFloat(s.Decisions.WithLabelValues(signer.DecisionRefused, "other")); got != 1 {
		t.Errorf("unknown reason: %v", got)
	}
	r := relaymetrics.NewRelay()
	r.Observe("made-up", time.Second)
	if n := metricstest.CountSeries(r.Requests); n != 3 {
		t.Errorf("relay requests have %d series after an unknown outcome", n)
	}
}

func TestSignerTokenAvailable(t *testing.T) {
	s := signermetrics.NewSigner()
	if got := metricstest.ToFloat(s.TokenAvailable); got != 1 {
		t.Fatalf("token available at start = %v, want 1", got)
	}
	s.ObserveToken(hsm.TokenStatus{Available: false, Cause: hsm.ErrTokenUnavailable})
	if got := metricstest.ToFloat(s.TokenAvailable); got != 0 {
		t.Fatalf("token available while it is gone = %v, want 0", got)
	}
	s.Observe(signer.DecisionFailed, signer.ReasonTokenUnavailable, time.Millisecond)
	if got := metricstest.ToFloat(s.Decisions.WithLabelValues(signer.DecisionFailed, signer.ReasonTokenUnavailable)); got != 1 {
		t.Fatalf("failed/token_unavailable = %v, want 1", got)
	}
	s.ObserveToken(hsm.TokenStatus{Available: true})
	if got := metricstest.ToFloat(s.TokenAvailable); got != 1 {
		t.Fatalf("token available once back = %v, want 1", got)
	}
}

// TestSignerStoreUnavailable: a decision that failed because the state
// database was unavailable is counted under its own reason, from the start
// (a zero series) and once observed, not as "other".
func TestSignerStoreUnavailable(t *testing.T) {
	s := signermetrics.NewSigner()
	mfs, err := s.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var zero bool
	for _, mf := range mfs {
		if mf.GetName() != "nanokms_signer_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			zero = zero || (l["decision"] == signer.DecisionFailed && l["reason"] == signer.ReasonStoreUnavailable)
		}
	}
	if !zero {
		t.Error("no failed/store_unavailable series at start")
	}
	s.Observe(signer.DecisionFailed, signer.ReasonStoreUnavailable, time.Millisecond)
	if got := metricstest.ToFloat(s.Decisions.WithLabelValues(signer.DecisionFailed, signer.ReasonStoreUnavailable)); got != 1 {
		t.Fatalf("failed/store_unavailable = %v, want 1", got)
	}
	if got := metricstest.ToFloat(s.Decisions.WithLabelValues(signer.DecisionFailed, "other")); got != 0 {
		t.Fatalf("failed/other = %v after a store-unavailable failure, want 0", got)
	}
}

func TestWriteTextfile(t *testing.T) {
	dir := t.TempDir()
	r := relaymetrics.NewRelay()
	r.Observe(relaymetrics.RelaySigned, time.Millisecond)
	path := filepath.Join(dir, "relay.prom")
	for range 3 {
		if err := metrics.WriteTextfile(r.Registry, path); err != nil {
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
	if err := metrics.WriteTextfile(r.Registry, filepath.Join(dir, "relay.txt")); err == nil {
		t.Error("a name without .prom was accepted")
	}
	if err := metrics.WriteTextfile(r.Registry, filepath.Join(dir, "missing", "relay.prom")); err == nil {
		t.Error("a missing directory was not reported")
	}
}

func TestRunTextfileWritesOnShutdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signer.prom")
	s := signermetrics.NewSigner()
	ctx, cancel := context.WithCancel(context.Background())
	wait := metrics.StartTextfile(ctx, s.Registry, path, time.Hour, func(err error) { t.Errorf("write: %v", err) })
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
	metrics.StartTextfile(context.Background(), s.Registry, "", 0, nil)() // no file: returns at once
}

func TestHandlerServesOnlyMetrics(t *testing.T) {
	g := gatewaymetrics.NewGateway(gatewaymetrics.GatewayOptions{})
	srv := httptest.NewServer(metrics.Handler(g.Registry, nil))
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
	g := gatewaymetrics.NewGateway(gatewaymetrics.GatewayOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- metrics.Serve(ctx, l, metrics.Handler(g.Registry, nil)) }()
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
