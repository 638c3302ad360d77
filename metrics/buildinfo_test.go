package metrics_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nanokms/nanokms/metrics"
	"github.com/nanokms/nanokms/metrics/gatewaymetrics"
	"github.com/nanokms/nanokms/metrics/relaymetrics"
	"github.com/nanokms/nanokms/metrics/signermetrics"
)

// roleExpositions returns what each role exports, as Prometheus reads it:
// the gateway's /metrics scraped over HTTP, the relay's and the signer's
// textfiles as written for node_exporter.
func roleExpositions(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	srv := httptest.NewServer(metrics.Handler(gatewaymetrics.NewGateway(gatewaymetrics.GatewayOptions{}).Registry, nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	out["gateway"] = buf.Bytes()
	dir := t.TempDir()
	for role, reg := range map[string]*prometheus.Registry{
		"relay":  relaymetrics.NewRelay().Registry,
		"signer": signermetrics.NewSigner().Registry,
	} {
		path := filepath.Join(dir, "nanokms_"+role+".prom")
		if err := metrics.WriteTextfile(reg, path); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out[role] = data
	}
	return out
}

// TestBuildInfo: every role exports nanokms_build_info, one series of
// value 1 whose labels are this binary's build (a test binary: no module
// version, no VCS revision) and the role.
func TestBuildInfo(t *testing.T) {
	pkcs11 := "no"
	if cgoBuild {
		pkcs11 = "yes"
	}
	for role, data := range roleExpositions(t) {
		t.Run(role, func(t *testing.T) {
			fams := parseExposition(t, bytes.NewReader(data))
			mf, ok := fams["nanokms_build_info"]
			if !ok {
				t.Fatalf("the %s exports no nanokms_build_info", role)
			}
			if mf.GetType() != dto.MetricType_GAUGE {
				t.Errorf("nanokms_build_info is a %s", mf.GetType())
			}
			if len(mf.GetMetric()) != 1 {
				t.Fatalf("nanokms_build_info has %d series, want 1", len(mf.GetMetric()))
			}
			m := mf.GetMetric()[0]
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			want := map[string]string{"version": "devel", "revision": "unknown", "goversion": runtime.Version(),
				"pkcs11": pkcs11, "role": role}
			if len(got) != len(want) {
				t.Errorf("labels %v, want %v", got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("label %s = %q, want %q", k, got[k], v)
				}
			}
			if v := m.GetGauge().GetValue(); v != 1 {
				t.Errorf("value %v, want 1", v)
			}
		})
	}
}

// TestColdTextfilesMerge: one node_exporter reads the signer's and the
// relay's textfiles together. nanokms_build_info is the one family both
// carry: node_exporter (1.5 and later) merges a family read from several
// files when its help and type agree, and fails the scrape on a series
// that two files both hold. Gatherers applies the same rules.
func TestColdTextfilesMerge(t *testing.T) {
	exp := roleExpositions(t)
	var gs prometheus.Gatherers
	for _, role := range []string{"relay", "signer"} {
		fams := parseExposition(t, bytes.NewReader(exp[role]))
		gs = append(gs, prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
			var out []*dto.MetricFamily
			for _, f := range fams {
				out = append(out, f)
			}
			return out, nil
		}))
	}
	merged, err := gs.Gather()
	if err != nil {
		t.Fatalf("the cold textfiles do not merge: %v", err)
	}
	series := -1
	for _, f := range merged {
		if f.GetName() == "nanokms_build_info" {
			series = len(f.GetMetric())
		}
	}
	if series != 2 {
		t.Errorf("merged nanokms_build_info has %d series, want the signer's and the relay's", series)
	}
}
