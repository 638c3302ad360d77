package gatewaymetrics

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nanokms/nanokms/gateway"
	"github.com/nanokms/nanokms/metrics"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/node"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// GatewayOptions configure NewGateway.
type GatewayOptions struct {
	// NoNode says the gateway runs without a node: SIGNED is then a final
	// status (nothing is published).
	NoNode bool
	// Medium, for one of several gateways on a database ([gateway.leader]),
	// names the medium they elect a driver of: its leader series exist
	// from the start. "" for a single gateway (no leader series).
	Medium string
}

// Gateway is the hot gateway's metrics. Feed it with ObserveRequest
// (gateway.Options.Observe), ObserveAlert
// (gateway.Options.ObserveAlert), WriteFault
// (gateway.Options.ObserveWriteFault), FrameRejected (the medium's
// gateway.RejectFunc), MediumError (the medium's OnError), Callback
// (gateway.NodeSideOptions.ObserveCallback) and WorkProvider (around the
// node's work provider); Seed it with the stored requests before the
// gateway runs.
type Gateway struct {
	// Registry holds every collector below, and the Go runtime's and the
	// process's.
	Registry *prometheus.Registry

	Requests        *prometheus.CounterVec   // nanokms_gateway_requests_total{status}
	InStatus        *prometheus.GaugeVec     // nanokms_gateway_requests_in_status{status}
	RequestDuration *prometheus.HistogramVec // nanokms_gateway_request_seconds{status}
	Resends         prometheus.Counter       // nanokms_bridge_resends_total
	RoundTrip       prometheus.Histogram     // nanokms_bridge_round_trip_seconds
	Publish         prometheus.Histogram     // nanokms_publish_seconds
	Confirmation    prometheus.Histogram     // nanokms_confirmation_seconds
	Work            *prometheus.HistogramVec // nanokms_work_seconds{outcome}
	Alerts          *prometheus.CounterVec   // nanokms_alerts_total{kind}
	FramesRejected  *prometheus.CounterVec   // nanokms_bridge_frames_rejected_total{reason}
	WriteFailing    *prometheus.GaugeVec     // nanokms_gateway_write_failing{target}
	MediumErrors    *prometheus.CounterVec   // nanokms_bridge_medium_errors_total{kind}
	Callbacks       *prometheus.CounterVec   // nanokms_gateway_callbacks_total{result}
	BuildInfo       *prometheus.GaugeVec     // nanokms_build_info{version,revision,goversion,pkcs11,role}
	Leader          *prometheus.GaugeVec     // nanokms_gateway_leader{medium}
	LeaderEpoch     *prometheus.GaugeVec     // nanokms_gateway_leader_epoch{medium}
	LeaderTerms     *prometheus.CounterVec   // nanokms_gateway_leader_terms_total{medium}

	noNode bool

	mu   sync.Mutex
	open map[string]*tracked // requests not final yet
	// done remembers the last finished requests, so that a notification
	// overtaken by a later one (two goroutines change a request almost at
	// once) does not bring a finished request back, while a real change
	// after a final status (a refusal overridden by a signed answer) is
	// counted.
	done     map[string]*tracked
	doneRing []*tracked
	doneNext int
}

// tracked is what the gateway's metrics remember of an open request:
// Unix nanoseconds of its changes, 0 when unknown.
type tracked struct {
	id                           string
	status                       pb.RequestStatus
	updated                      int64 // of the change last counted
	firstSent, signed, published int64
}

// doneMemory is how many finished request ids are remembered.
const doneMemory = 4096

// Status label values, in the order requests go through them.
var gatewayStatuses = []pb.RequestStatus{
	pb.RequestStatus_REQUEST_STATUS_QUEUED, pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD,
	pb.RequestStatus_REQUEST_STATUS_SIGNED, pb.RequestStatus_REQUEST_STATUS_REFUSED,
	pb.RequestStatus_REQUEST_STATUS_PUBLISHED, pb.RequestStatus_REQUEST_STATUS_CONFIRMED,
	pb.RequestStatus_REQUEST_STATUS_FAILED,
}

// StatusLabel returns the status label value of s: its name without the
// REQUEST_STATUS_ prefix, in lower case ("sent_to_cold").
func StatusLabel(s pb.RequestStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "REQUEST_STATUS_"))
}

// Work outcome label values.
const (
	WorkOK       = "ok"
	WorkError    = "error"
	WorkCanceled = "canceled" // the caller gave up (a precomputation made useless)
)

// NewGateway returns the gateway's metrics on a new registry.
func NewGateway(opts GatewayOptions) *Gateway {
	g := &Gateway{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nanokms_gateway_requests_total",
			Help: "Requests that entered each status (a resend does not count again).",
		}, []string{"status"}),
		InStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nanokms_gateway_requests_in_status",
			Help: "Requests in the gateway's state file by current status.",
		}, []string{"status"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nanokms_gateway_request_seconds",
			Help:    "Time from submission to a final status, by that status.",
			Buckets: metrics.BridgeBuckets,
		}, []string{"status"}),
		Resends: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nanokms_bridge_resends_total",
			Help: "Request frames written to the bridge again because no answer came within the resend interval.",
		}),
		RoundTrip: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nanokms_bridge_round_trip_seconds",
			Help:    "Time from the first write of a request frame to the bridge to its signed answer.",
			Buckets: metrics.BridgeBuckets,
		}),
		Publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nanokms_publish_seconds",
			Help:    "Time from a signed answer to the block's publication (proof of work included).",
			Buckets: metrics.NodeBuckets,
		}),
		Confirmation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nanokms_confirmation_seconds",
			Help:    "Time from a block's publication to its confirmation.",
			Buckets: metrics.NodeBuckets,
		}),
		Work: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nanokms_work_seconds",
			Help:    "Time spent generating proof of work, by outcome (precomputed work included).",
			Buckets: metrics.WorkBuckets,
		}, []string{"outcome"}),
		Alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nanokms_alerts_total",
			Help: "Critical alerts raised, by kind (UNKNOWN_BLOCK: a custody account's key was used elsewhere; REFUSAL_OVERRIDDEN: a refusal was forged or stale; BLOCK_REJECTED: the node refused a block the cold side signed, which jams the account; REJECTED_BLOCK_CONFIRMED: such a block was confirmed after all).",
		}, []string{"kind"}),
		FramesRejected: metrics.NewFramesRejected("gateway"),
		WriteFailing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nanokms_gateway_write_failing",
			Help: "1 while the gateway's writes to the target fail (store: its state file; outbound: request frames on the medium; inbound: settling answers on the medium), 0 otherwise.",
		}, []string{"target"}),
		MediumErrors: metrics.NewMediumErrors("gateway"),
		Callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nanokms_gateway_callbacks_total",
			Help: "Requests to the node's HTTP callback listener ([node.callback]), by result: verified (a new confirmation, checked against the node), duplicate (checked, already delivered by the WebSocket or an earlier callback), ignored (a block neither of nor to a custody account), rejected (not a callback, or a lie), forbidden (from outside node.callback.allowed_sources), unverified (could not be checked now). Their sum is the requests received.",
		}, []string{"result"}),
		Leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nanokms_gateway_leader",
			Help: "1 while this gateway drives the bridge medium (one of several on a database, [gateway.leader]), 0 otherwise.",
		}, []string{"medium"}),
		LeaderEpoch: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nanokms_gateway_leader_epoch",
			Help: "The leader epoch of this gateway's current or last term of leadership of the medium (0: none yet).",
		}, []string{"medium"}),
		LeaderTerms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nanokms_gateway_leader_terms_total",
			Help: "Terms of leadership of the medium this gateway began.",
		}, []string{"medium"}),
		noNode:    opts.NoNode,
		open:      map[string]*tracked{},
		done:      map[string]*tracked{},
		doneRing:  make([]*tracked, doneMemory),
		BuildInfo: metrics.NewBuildInfo(metrics.RoleGateway),
	}
	for _, s := range gatewayStatuses {
		g.Requests.WithLabelValues(StatusLabel(s))
		g.InStatus.WithLabelValues(StatusLabel(s))
		if g.final(s) {
			g.RequestDuration.WithLabelValues(StatusLabel(s))
		}
	}
	for _, r := range node.CallbackResults {
		g.Callbacks.WithLabelValues(string(r))
	}
	for _, o := range []string{WorkOK, WorkError, WorkCanceled} {
		g.Work.WithLabelValues(o)
	}
	for _, target := range []string{gateway.WriteTargetStore, gateway.WriteTargetOutbound, gateway.WriteTargetInbound} {
		g.WriteFailing.WithLabelValues(target)
	}
	g.Alerts.WithLabelValues(gateway.AlertUnknownBlock)
	g.Alerts.WithLabelValues(gateway.AlertRefusalOverridden)
	g.Alerts.WithLabelValues(gateway.AlertBlockRejected)
	g.Alerts.WithLabelValues(gateway.AlertRejectedConfirmed)
	if opts.Medium != "" {
		g.Leader.WithLabelValues(opts.Medium)
		g.LeaderEpoch.WithLabelValues(opts.Medium)
		g.LeaderTerms.WithLabelValues(opts.Medium)
	}
	g.Registry.MustRegister(g.Requests, g.InStatus, g.RequestDuration, g.Resends, g.RoundTrip, g.Publish,
		g.Confirmation, g.Work, g.Alerts, g.FramesRejected, g.WriteFailing, g.MediumErrors, g.Callbacks, g.BuildInfo,
		g.Leader, g.LeaderEpoch, g.LeaderTerms,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return g
}

// final reports whether no change can follow status s.
func (g *Gateway) final(s pb.RequestStatus) bool {
	switch s {
	case pb.RequestStatus_REQUEST_STATUS_REFUSED, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, pb.RequestStatus_REQUEST_STATUS_FAILED:
		return true
	case pb.RequestStatus_REQUEST_STATUS_SIGNED:
		return g.noNode
	}
	return false
}

// rank orders statuses: of two changes of a request made at the same
// time (by two goroutines), the one of higher rank is the later. A signed
// answer may follow a refusal (which it overrides: refusals are not
// signed, so they can be forged), so REFUSED ranks below SIGNED.
func rank(s pb.RequestStatus) int {
	switch s {
	case pb.RequestStatus_REQUEST_STATUS_QUEUED:
		return 1
	case pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD:
		return 2
	case pb.RequestStatus_REQUEST_STATUS_REFUSED:
		return 3
	case pb.RequestStatus_REQUEST_STATUS_SIGNED:
		return 4
	case pb.RequestStatus_REQUEST_STATUS_PUBLISHED:
		return 5
	case pb.RequestStatus_REQUEST_STATUS_CONFIRMED, pb.RequestStatus_REQUEST_STATUS_FAILED:
		return 6
	}
	return 0
}

// stale reports whether a change to s at time at is older than what t
// recorded.
func (t *tracked) stale(s pb.RequestStatus, at int64) bool {
	return at < t.updated || at == t.updated && rank(s) < rank(t.status)
}

// Seed counts a request found in the state file when the gateway starts,
// before it runs: nanokms_gateway_requests_in_status starts from the
// stored statuses, and an open request's signing and publication times
// are known again (its first write to the bridge is not: it is left out
// of nanokms_bridge_round_trip_seconds).
func (g *Gateway) Seed(r *pb.Request) {
	s := r.GetStatus()
	if rank(s) == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	id := r.GetRequestId()
	if _, ok := g.open[id]; ok || g.done[id] != nil {
		return
	}
	g.InStatus.WithLabelValues(StatusLabel(s)).Inc()
	t := &tracked{id: id, status: s, updated: r.GetUpdatedUnixNano()}
	if g.final(s) {
		g.finish(t)
		return
	}
	switch s {
	case pb.RequestStatus_REQUEST_STATUS_SIGNED:
		t.signed = r.GetUpdatedUnixNano()
	case pb.RequestStatus_REQUEST_STATUS_PUBLISHED:
		t.published = r.GetUpdatedUnixNano()
	}
	g.open[id] = t
}

// ObserveRequest is told every status change of a request: it has the
// signature of gateway.Options.Observe. Durations come from
// the request's own timestamps (UpdatedUnixNano, SubmittedUnixNano).
func (g *Gateway) ObserveRequest(s pb.RequestStatus, r *pb.Request) {
	if rank(s) == 0 {
		return
	}
	id := r.GetRequestId()
	at := r.GetUpdatedUnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	t, known := g.open[id]
	if d := g.done[id]; !known && d != nil {
		if d.stale(s, at) || d.status == s {
			return // a late notification of a finished request
		}
		// A change after a final status: the request is open again.
		delete(g.done, id)
		t, known = d, true
		g.open[id] = t
	}
	if known && t.stale(s, at) {
		return // overtaken by a later change
	}
	if s == pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD && r.GetAttempts() > 1 {
		g.Resends.Inc()
	}
	if !known || t.status != s {
		g.Requests.WithLabelValues(StatusLabel(s)).Inc()
		if known {
			g.InStatus.WithLabelValues(StatusLabel(t.status)).Dec()
		}
		g.InStatus.WithLabelValues(StatusLabel(s)).Inc()
	}
	if !known {
		t = &tracked{id: id}
		g.open[id] = t
	}
	t.status, t.updated = s, at
	switch s {
	case pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD:
		if t.firstSent == 0 && r.GetAttempts() == 1 {
			t.firstSent = at
		}
	case pb.RequestStatus_REQUEST_STATUS_SIGNED:
		t.signed = at
		observeSince(g.RoundTrip, t.firstSent, at)
	case pb.RequestStatus_REQUEST_STATUS_PUBLISHED:
		t.published = at
		observeSince(g.Publish, t.signed, at)
	case pb.RequestStatus_REQUEST_STATUS_CONFIRMED:
		observeSince(g.Confirmation, t.published, at)
	}
	if g.final(s) {
		observeSince(g.RequestDuration.WithLabelValues(StatusLabel(s)), r.GetSubmittedUnixNano(), at)
		delete(g.open, id)
		g.finish(t)
	}
}

// finish remembers t as finished, forgetting the oldest one remembered.
func (g *Gateway) finish(t *tracked) {
	if old := g.doneRing[g.doneNext]; old != nil && g.done[old.id] == old {
		delete(g.done, old.id)
	}
	g.doneRing[g.doneNext] = t
	g.doneNext = (g.doneNext + 1) % len(g.doneRing)
	g.done[t.id] = t
}

// observeSince observes the seconds from start to end (Unix
// nanoseconds), unless start is unknown or after end.
func observeSince(o prometheus.Observer, start, end int64) {
	if start == 0 || end < start {
		return
	}
	o.Observe(time.Duration(end - start).Seconds())
}

// ObserveAlert counts a critical alert by kind: it has the signature of
// gateway.Options.ObserveAlert.
func (g *Gateway) ObserveAlert(a *pb.Alert) {
	kind := a.GetKind()
	if kind == "" {
		kind = "unknown"
	}
	g.Alerts.WithLabelValues(kind).Inc()
}

// ObserveLeader records a start (leading) or end of a term of leadership
// of medium with epoch. It has the signature of
// gateway.Options.ObserveLeader.
func (g *Gateway) ObserveLeader(medium string, leading bool, epoch uint64) {
	v := 0.0
	if leading {
		v = 1
		g.LeaderTerms.WithLabelValues(medium).Inc()
	}
	g.Leader.WithLabelValues(medium).Set(v)
	g.LeaderEpoch.WithLabelValues(medium).Set(float64(epoch))
}

// WriteFault sets nanokms_gateway_write_failing for target: 1 while err
// is not nil. It has the signature of
// gateway.Options.ObserveWriteFault.
func (g *Gateway) WriteFault(target string, err error) {
	v := 0.0
	if err != nil {
		v = 1
	}
	g.WriteFailing.WithLabelValues(target).Set(v)
}

// FrameRejected counts a frame the gateway's medium refused: it has the
// signature of gateway.RejectFunc.
func (g *Gateway) FrameRejected(_ string, err error) {
	g.FramesRejected.WithLabelValues(metrics.RejectReason(err)).Inc()
}

// MediumError counts a problem the gateway's file medium rode out: it has
// the signature of gateway.FileReaderOptions.OnError.
func (g *Gateway) MediumError(err error) {
	g.MediumErrors.WithLabelValues(metrics.MediumKind(err)).Inc()
}

// Callback counts a request to the node's callback listener by result:
// it has the signature of gateway.NodeSideOptions.ObserveCallback.
func (g *Gateway) Callback(r node.CallbackResult) {
	g.Callbacks.WithLabelValues(string(r)).Inc()
}

// WorkProvider returns p timed into nanokms_work_seconds.
func (g *Gateway) WorkProvider(p node.WorkProvider) node.WorkProvider {
	return timedWork{p: p, h: g.Work}
}

type timedWork struct {
	p node.WorkProvider
	h *prometheus.HistogramVec
}

func (t timedWork) Generate(ctx context.Context, root nano.Hash, threshold uint64) (nano.Work, error) {
	start := time.Now()
	w, err := t.p.Generate(ctx, root, threshold)
	outcome := WorkOK
	switch {
	case err != nil && ctx.Err() != nil:
		outcome = WorkCanceled
	case err != nil:
		outcome = WorkError
	}
	t.h.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	return w, err
}
