package signermetrics

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nanokms/nanokms/internal/keystore"
	"github.com/nanokms/nanokms/metrics"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// Signer is the cold signer's metrics. Feed it with Observe
// (signer.Options.Observe); write Registry to a textfile (RunTextfile).
type Signer struct {
	Registry *prometheus.Registry

	Decisions      *prometheus.CounterVec   // nanokms_signer_decisions_total{decision,reason}
	DecisionTime   *prometheus.HistogramVec // nanokms_signer_decision_seconds{decision}
	StartTime      prometheus.Gauge         // nanokms_signer_start_time_seconds
	TokenAvailable prometheus.Gauge         // nanokms_signer_token_available
	BuildInfo      *prometheus.GaugeVec     // nanokms_build_info{version,revision,goversion,pkcs11,role}
}

// signerDecisions are the decision label values, signer.Decision*.
var signerDecisions = []string{signer.DecisionSigned, signer.DecisionRefused, signer.DecisionFailed,
	signer.DecisionAdopted, signer.DecisionAdoptionFailed, signer.DecisionReleased, signer.DecisionReleaseFailed}

// refusalReasons returns every refusal reason's name but UNSPECIFIED.
func refusalReasons() []string {
	var out []string
	for v := range pb.RefusalReason_name {
		if r := pb.RefusalReason(v); r != pb.RefusalReason_REFUSAL_REASON_UNSPECIFIED {
			out = append(out, signerapi.ReasonName(r))
		}
	}
	return out
}

// NewSigner returns the signer's metrics on a new registry.
func NewSigner() *Signer {
	s := &Signer{
		Registry: prometheus.NewRegistry(),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nanokms_signer_decisions_total",
			Help: "Decisions of the signer, by decision (signed, refused, failed, adopted, adoption_failed, released, release_failed) and reason (the refusal reason; repeat for a recorded answer given again; store_full for a failure because the state store is full; store_unavailable for one because the state database (PostgreSQL) is unavailable; token_unavailable for one because the token is unavailable; internal for another failure).",
		}, []string{"decision", "reason"}),
		DecisionTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nanokms_signer_decision_seconds",
			Help:    "Time the signer took to decide (verify, apply policy, record, sign), by decision.",
			Buckets: metrics.CallBuckets,
		}, []string{"decision"}),
		StartTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nanokms_signer_start_time_seconds",
			Help: "When the signer started, in seconds since the Unix epoch.",
		}),
		TokenAvailable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nanokms_signer_token_available",
			Help: "1 while the signer's token is available, 0 while it is not (gone, reconnecting, or its PIN refused): nothing is signed then.",
		}),
		BuildInfo: metrics.NewBuildInfo(metrics.RoleSigner),
	}
	for _, d := range signerDecisions {
		s.DecisionTime.WithLabelValues(d)
	}
	s.Decisions.WithLabelValues(signer.DecisionSigned, "")
	s.Decisions.WithLabelValues(signer.DecisionSigned, signer.ReasonRepeat)
	s.Decisions.WithLabelValues(signer.DecisionFailed, signer.ReasonInternal)
	s.Decisions.WithLabelValues(signer.DecisionFailed, signer.ReasonStoreFull)
	s.Decisions.WithLabelValues(signer.DecisionFailed, signer.ReasonStoreUnavailable)
	s.Decisions.WithLabelValues(signer.DecisionFailed, signer.ReasonTokenUnavailable)
	s.Decisions.WithLabelValues(signer.DecisionAdopted, "")
	s.Decisions.WithLabelValues(signer.DecisionReleased, "")
	for _, r := range refusalReasons() {
		s.Decisions.WithLabelValues(signer.DecisionRefused, r)
	}
	s.StartTime.SetToCurrentTime()
	s.TokenAvailable.Set(1)
	s.Registry.MustRegister(s.Decisions, s.DecisionTime, s.StartTime, s.TokenAvailable, s.BuildInfo)
	return s
}

// ObserveToken records whether the token is available: it has the
// signature of signer.ServeOptions.ObserveToken.
func (s *Signer) ObserveToken(st keystore.TokenStatus) {
	if st.Available {
		s.TokenAvailable.Set(1)
	} else {
		s.TokenAvailable.Set(0)
	}
}

// Observe counts one decision: it has the signature of
// signer.Options.Observe. Decisions and reasons outside the signer's
// closed sets are counted as "other".
func (s *Signer) Observe(decision, reason string, took time.Duration) {
	known := false
	for _, d := range signerDecisions {
		known = known || d == decision
	}
	if !known {
		decision = "other"
	}
	switch reason {
	case "", signer.ReasonRepeat, signer.ReasonInternal, signer.ReasonStoreFull, signer.ReasonStoreUnavailable, signer.ReasonTokenUnavailable:
	default:
		if !isReasonName(reason) {
			reason = "other"
		}
	}
	s.Decisions.WithLabelValues(decision, reason).Inc()
	s.DecisionTime.WithLabelValues(decision).Observe(took.Seconds())
}

// isReasonName reports whether name is a refusal reason's name.
func isReasonName(name string) bool {
	if strings.ToUpper(name) != name {
		return false
	}
	_, ok := pb.RefusalReason_value["REFUSAL_REASON_"+name]
	return ok
}
