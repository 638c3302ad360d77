package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/gateway"
	"github.com/nanokms/nanokms/metrics"
	"github.com/nanokms/nanokms/metrics/gatewaymetrics"
	"github.com/nanokms/nanokms/metrics/metricstest"
	"github.com/nanokms/nanokms/metrics/relaymetrics"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

func TestMain(m *testing.M) { os.Exit(softhsmtest.Run(m)) }

// sample returns the value of the series of family name whose labels
// are exactly labels (a counter's or gauge's value, a histogram's count).
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	mf, ok := fams[name]
	if !ok {
		t.Fatalf("no %s", name)
	}
	for _, m := range mf.GetMetric() {
		match := len(m.GetLabel()) == len(labels)
		for _, lp := range m.GetLabel() {
			match = match && labels[lp.GetName()] == lp.GetValue()
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

// TestInProcessBridge runs a real signer, the relay and the gateway on a
// file bridge, with the metrics wired as the commands wire them, and
// checks what the gateway's /metrics and the relay's textfile say.
func TestInProcessBridge(t *testing.T) {
	env := signertest.MustEnv(t, 1)
	dir := t.TempDir()
	toCold, toHot := filepath.Join(dir, "to-cold"), filepath.Join(dir, "to-hot")
	bridgeCfg := func(in, out string) bridge.Config {
		return bridge.Config{Kind: "file", Inbound: in, Outbound: out, MaxFutureSkew: 5 * time.Minute,
			PollInterval: 5 * time.Millisecond}
	}
	gm, rm := gatewaymetrics.NewGateway(gatewaymetrics.GatewayOptions{NoNode: true}), relaymetrics.NewRelay()
	hot, err := bridge.Open(bridgeCfg(toHot, toCold), bridge.Hot, gm.FrameRejected, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hot.Close()
	cold, err := bridge.Open(bridgeCfg(toCold, toHot), bridge.Cold, rm.FrameRejected, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cold.Close()

	acct := env.Account(0)
	gw, err := gateway.Open(filepath.Join(dir, "gateway.db"), gateway.Options{
		Out: hot.Writer, Reader: hot.Reader, ResendInterval: time.Minute,
		Manifest: gateway.NewManifest(&pb.CustodyAccount{Wallet: custodytest.Wallet, PublicKey: acct[:], Address: acct.Address()}),
		Observe:  gm.ObserveRequest, ObserveAlert: gm.ObserveAlert,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	relay := &relay.Relay{In: cold.Reader, Out: cold.Writer, Signer: env.Client, RetryMin: 10 * time.Millisecond, Observe: rm.Observe}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- relay.Run(ctx) }()
	go func() { done <- gw.Run(ctx) }()
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	}()

	await := func(id string) *pb.Request {
		t.Helper()
		cur, ch, stop, err := gw.Watch(id)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		deadline := time.After(30 * time.Second)
		for cur.GetStatus() != pb.RequestStatus_REQUEST_STATUS_SIGNED && cur.GetStatus() != pb.RequestStatus_REQUEST_STATUS_REFUSED {
			select {
			case cur = <-ch:
			case <-deadline:
				t.Fatalf("request %s still %s", id, cur.GetStatus())
			}
		}
		return cur
	}
	submit := func(req *pb.SubmitIntentRequest) *pb.Request {
		t.Helper()
		if _, err := gw.Submit(ctx, req); err != nil {
			t.Fatal(err)
		}
		return await(req.GetIntent().GetRequestId())
	}

	src, prev := env.Fund(acct, custodytest.XNO(10))
	open := submit(&pb.SubmitIntentRequest{Intent: env.ReceiveIntent(acct, custodytest.XNO(10), src.Hash(), &env.Rep),
		Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)})
	if open.GetStatus() != pb.RequestStatus_REQUEST_STATUS_SIGNED {
		t.Fatalf("open: %s %s", open.GetStatus(), open.GetError())
	}
	bad := submit(&pb.SubmitIntentRequest{Intent: env.SendIntent(acct, custodytest.XNO(1), custodytest.NewExtAccount(40).Pub), Head: open.GetBlock()})
	if bad.GetStatus() != pb.RequestStatus_REQUEST_STATUS_REFUSED {
		t.Fatalf("unapproved send: %s", bad.GetStatus())
	}
	// A damaged frame on the cold side's medium is refused and counted.
	if err := os.WriteFile(filepath.Join(toCold, "junk.request.nkb"), []byte("not a frame"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second) // a hang bound
	for metricstest.ToFloat(rm.FramesRejected.WithLabelValues("truncated"))+metricstest.ToFloat(rm.FramesRejected.WithLabelValues("bad_magic"))+
		metricstest.ToFloat(rm.FramesRejected.WithLabelValues("file_name_does_not_match_the_frame")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the damaged frame was not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}

	srv := httptest.NewServer(metrics.Handler(gm.Registry, nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	g := parseExposition(t, resp.Body)
	resp.Body.Close()
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"nanokms_gateway_requests_total", map[string]string{"status": "queued"}, 2},
		{"nanokms_gateway_requests_total", map[string]string{"status": "sent_to_cold"}, 2},
		{"nanokms_gateway_requests_total", map[string]string{"status": "signed"}, 1},
		{"nanokms_gateway_requests_total", map[string]string{"status": "refused"}, 1},
		{"nanokms_gateway_requests_in_status", map[string]string{"status": "sent_to_cold"}, 0},
		{"nanokms_gateway_requests_in_status", map[string]string{"status": "signed"}, 1},
		{"nanokms_bridge_round_trip_seconds", nil, 1},
		{"nanokms_gateway_request_seconds", map[string]string{"status": "signed"}, 1},
		{"nanokms_gateway_request_seconds", map[string]string{"status": "refused"}, 1},
	} {
		if got := sample(t, g, c.name, c.labels); got != c.want {
			t.Errorf("gateway %s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	path := filepath.Join(dir, "nanokms_relay.prom")
	if err := metrics.WriteTextfile(rm.Registry, path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := parseExposition(t, f)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"nanokms_relay_requests_total", map[string]string{"outcome": "signed"}, 1},
		{"nanokms_relay_requests_total", map[string]string{"outcome": "refused"}, 1},
		{"nanokms_relay_signer_seconds", map[string]string{"outcome": "signed"}, 1},
	} {
		if got := sample(t, r, c.name, c.labels); got != c.want {
			t.Errorf("relay %s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
