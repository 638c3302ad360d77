package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/gateway"
	"github.com/nanokms/nanokms/metrics"
	"github.com/nanokms/nanokms/metrics/gatewaymetrics"
	"github.com/nanokms/nanokms/metrics/jobmetrics"
	"github.com/nanokms/nanokms/metrics/metricstest"
	"github.com/nanokms/nanokms/metrics/relaymetrics"
	"github.com/nanokms/nanokms/metrics/signermetrics"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
)

// documented is one row of a table in docs/METRICS.md.
type documented struct {
	name, typ string
	labels    []string
}

// readDocs returns the metrics docs/METRICS.md lists, by section
// ("Gateway", "Relay", "Signer").
func readDocs(t *testing.T) map[string][]documented {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "docs", "METRICS.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]documented{}
	section := ""
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if s, ok := strings.CutPrefix(line, "## "); ok {
			section = s
			continue
		}
		if !strings.HasPrefix(line, "| `nanokms_") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 4 {
			t.Fatalf("docs/METRICS.md: a metric row with %d cells: %s", len(cells), line)
		}
		d := documented{name: strings.Trim(strings.TrimSpace(cells[0]), "`"), typ: strings.TrimSpace(cells[1])}
		for _, l := range strings.Split(cells[2], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				d.labels = append(d.labels, l)
			}
		}
		out[section] = append(out[section], d)
	}
	return out
}

// parseExposition parses the text exposition format.
func parseExposition(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parsing the exposition: %v", err)
	}
	return fams
}

// checkDocumented checks that every documented metric is in fams with its
// type and labels, and that every nanokms_ family in fams is documented.
func checkDocumented(t *testing.T, role string, docs []documented, fams map[string]*dto.MetricFamily) {
	t.Helper()
	if len(docs) == 0 {
		t.Fatalf("docs/METRICS.md lists no metric under %q", role)
	}
	listed := map[string]bool{}
	for _, d := range docs {
		listed[d.name] = true
		mf, ok := fams[d.name]
		if !ok {
			t.Errorf("%s: %s is documented but not exported", role, d.name)
			continue
		}
		if got := strings.ToLower(mf.GetType().String()); got != d.typ {
			t.Errorf("%s: %s is a %s, documented as a %s", role, d.name, got, d.typ)
		}
		if len(mf.GetMetric()) == 0 {
			t.Errorf("%s: %s has no series", role, d.name)
			continue
		}
		for _, m := range mf.GetMetric() {
			var names []string
			for _, lp := range m.GetLabel() {
				names = append(names, lp.GetName())
			}
			want := slices.Clone(d.labels)
			slices.Sort(names)
			slices.Sort(want)
			// An empty label value is not written: compare what is there.
			for _, n := range names {
				if !slices.Contains(want, n) {
					t.Errorf("%s: %s has label %q, documented labels %v", role, d.name, n, d.labels)
				}
			}
		}
		for _, l := range d.labels {
			found := false
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == l
				}
			}
			if !found {
				t.Errorf("%s: %s has no series with the documented label %q", role, d.name, l)
			}
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, "nanokms_") && !listed[name] {
			t.Errorf("%s: %s is exported but not in docs/METRICS.md", role, name)
		}
	}
}

// driveGateway takes requests through every status the gateway reports.
func driveGateway(t *testing.T, g *gatewaymetrics.Gateway) {
	t.Helper()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
	step := func(id string, s pb.RequestStatus, at time.Duration, attempts uint32) {
		g.ObserveRequest(s, &pb.Request{RequestId: id, Status: s, SubmittedUnixNano: base,
			UpdatedUnixNano: base + int64(at), Attempts: attempts})
	}
	step("ok", pb.RequestStatus_REQUEST_STATUS_QUEUED, 0, 0)
	step("ok", pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD, time.Second, 1)
	step("ok", pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD, 31*time.Second, 2)
	step("ok", pb.RequestStatus_REQUEST_STATUS_SIGNED, 40*time.Second, 2)
	step("ok", pb.RequestStatus_REQUEST_STATUS_PUBLISHED, 42*time.Second, 2)
	step("ok", pb.RequestStatus_REQUEST_STATUS_CONFIRMED, 45*time.Second, 2)
	step("no", pb.RequestStatus_REQUEST_STATUS_QUEUED, 0, 0)
	step("no", pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD, time.Second, 1)
	step("no", pb.RequestStatus_REQUEST_STATUS_REFUSED, 3*time.Second, 1)
	step("bad", pb.RequestStatus_REQUEST_STATUS_QUEUED, 0, 0)
	step("bad", pb.RequestStatus_REQUEST_STATUS_FAILED, time.Second, 0)
	g.ObserveAlert(&pb.Alert{Kind: gateway.AlertUnknownBlock})
	g.FrameRejected("x.frame", &frame.FrameError{Code: frame.ErrCodeChecksum})
	g.FrameRejected("y.frame", &filemedium.RejectedError{Reason: "no such request"})
	g.MediumError(&filemedium.EntryError{Path: "p", Found: "symbolic link", Want: "a directory"})
	w := g.WorkProvider(metricstest.Work{})
	if _, err := w.Generate(context.Background(), nano.Hash{}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := g.WorkProvider(metricstest.Work{Err: errors.New("no work")}).Generate(context.Background(), nano.Hash{}, 0); err == nil {
		t.Fatal("the failing provider's error was lost")
	}
}

func TestDocumentedMetricsExist(t *testing.T) {
	docs := readDocs(t)
	for _, s := range []string{"Gateway", "Relay", "Signer", "Audit verify", "Signer backup"} {
		if len(docs[s]) == 0 {
			t.Fatalf("docs/METRICS.md has no metric table under \"## %s\"", s)
		}
	}

	t.Run("gateway scraped over HTTP", func(t *testing.T) {
		g := gatewaymetrics.NewGateway(gatewaymetrics.GatewayOptions{Medium: "bridge"}) // one of several gateways: the leader series too
		driveGateway(t, g)
		srv := httptest.NewServer(metrics.Handler(g.Registry, nil))
		defer srv.Close()
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics: %s", resp.Status)
		}
		fams := parseExposition(t, resp.Body)
		checkDocumented(t, "gateway", docs["Gateway"], fams)
		for _, std := range []string{"go_goroutines", "process_start_time_seconds", "promhttp_metric_handler_requests_total"} {
			if _, ok := fams[std]; !ok {
				t.Errorf("the gateway does not export %s", std)
			}
		}
	})

	t.Run("relay textfile", func(t *testing.T) {
		r := relaymetrics.NewRelay()
		r.Observe(relaymetrics.RelaySigned, 30*time.Millisecond)
		r.Observe(relaymetrics.RelayRefused, 20*time.Millisecond)
		r.Observe(relaymetrics.RelayMalformed, 0)
		r.FrameRejected("z.frame", &frame.FrameError{Code: frame.ErrCodeExpired})
		r.MediumError(fmt.Errorf("%w: %w", filemedium.ErrMediumFull, syscall.ENOSPC))
		path := filepath.Join(t.TempDir(), "nanokms_relay.prom")
		if err := metrics.WriteTextfile(r.Registry, path); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		checkDocumented(t, "relay", docs["Relay"], parseExposition(t, f))
	})

	t.Run("signer textfile", func(t *testing.T) {
		s := signermetrics.NewSigner()
		s.Observe(signer.DecisionSigned, "", 5*time.Millisecond)
		s.Observe(signer.DecisionSigned, signer.ReasonRepeat, time.Millisecond)
		s.Observe(signer.DecisionRefused, "APPROVALS_MISSING", 2*time.Millisecond)
		s.Observe(signer.DecisionFailed, signer.ReasonInternal, time.Millisecond)
		s.Observe(signer.DecisionFailed, signer.ReasonStoreFull, time.Millisecond)
		s.Observe(signer.DecisionFailed, signer.ReasonStoreUnavailable, time.Millisecond)
		s.Observe(signer.DecisionFailed, signer.ReasonTokenUnavailable, time.Millisecond)
		s.Observe(signer.DecisionAdopted, "", time.Millisecond)
		path := filepath.Join(t.TempDir(), "nanokms_signer.prom")
		if err := metrics.WriteTextfile(s.Registry, path); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		checkDocumented(t, "signer", docs["Signer"], parseExposition(t, f))
	})

	t.Run("audit verify textfile", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nanokms_audit_verify.prom")
		if err := jobmetrics.WriteAuditVerify(path, jobmetrics.AuditVerify{Store: jobmetrics.StoreBbolt, OK: true, Records: 3}, nil); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		checkDocumented(t, "audit verify", docs["Audit verify"], parseExposition(t, f))
	})

	t.Run("signer backup textfile", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nanokms_signer_backup.prom")
		if err := jobmetrics.WriteBackup(path, jobmetrics.Backup{OK: true, Bytes: 100, Records: 3}, nil); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		checkDocumented(t, "signer backup", docs["Signer backup"], parseExposition(t, f))
	})
}

// TestColdTextfilesDoNotCollide checks that the signer's and the relay's
// files, read together by one node_exporter, share no metric family but
// nanokms_build_info (which merges: TestColdTextfilesMerge).
func TestColdTextfilesDoNotCollide(t *testing.T) {
	rf, err := relaymetrics.NewRelay().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sf, err := signermetrics.NewSigner().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range rf {
		names[f.GetName()] = true
	}
	for _, f := range sf {
		if names[f.GetName()] && f.GetName() != "nanokms_build_info" {
			t.Errorf("both cold roles export %s", f.GetName())
		}
		names[f.GetName()] = true
	}
	// The timers' files are read by the same node_exporter.
	dir := t.TempDir()
	av, bk := filepath.Join(dir, "nanokms_audit_verify.prom"), filepath.Join(dir, "nanokms_signer_backup.prom")
	if err := jobmetrics.WriteAuditVerify(av, jobmetrics.AuditVerify{Store: jobmetrics.StoreBbolt, OK: true}, nil); err != nil {
		t.Fatal(err)
	}
	if err := jobmetrics.WriteBackup(bk, jobmetrics.Backup{OK: true}, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{av, bk} {
		fams, err := metrics.ReadTextfile(p)
		if err != nil {
			t.Fatal(err)
		}
		for name := range fams {
			if names[name] {
				t.Errorf("%s and another cold file both export %s", filepath.Base(p), name)
			}
			names[name] = true
		}
	}
}
