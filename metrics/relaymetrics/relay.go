package relaymetrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nanokms/nanokms/metrics"
)

// Relay outcome label values (relay.Relay.Observe's outcomes).
const (
	RelaySigned    = "signed"
	RelayRefused   = "refused"
	RelayMalformed = "malformed"
	// RelayStale is a request dropped unanswered: its leader epoch is
	// below the highest the relay has seen (a deposed gateway's frame).
	RelayStale = "stale"
)

// Relay is the cold relay's metrics. Feed it with Observe
// (relay.Relay.Observe), FrameRejected (the medium's
// frame.RejectFunc) and MediumError (the medium's OnError); write Registry to a textfile (RunTextfile).
type Relay struct {
	Registry *prometheus.Registry

	Requests       *prometheus.CounterVec   // nanokms_relay_requests_total{outcome}
	SignerTime     *prometheus.HistogramVec // nanokms_relay_signer_seconds{outcome}
	FramesStale    prometheus.Counter       // nanokms_relay_frames_stale_total
	FramesRejected *prometheus.CounterVec   // nanokms_bridge_frames_rejected_total{reason}
	MediumErrors   *prometheus.CounterVec   // nanokms_bridge_medium_errors_total{kind}
	StartTime      prometheus.Gauge         // nanokms_relay_start_time_seconds
	BuildInfo      *prometheus.GaugeVec     // nanokms_build_info{version,revision,goversion,pkcs11,role}
}

// NewRelay returns the relay's metrics on a new registry.
func NewRelay() *Relay {
	r := &Relay{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nanokms_relay_requests_total",
			Help: "Request frames the relay answered, by outcome: signed, refused (by the signer, or a call it rejected), malformed (the signer never saw it).",
		}, []string{"outcome"}),
		SignerTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nanokms_relay_signer_seconds",
			Help:    "Time from reading a request frame to the signer's answer (retries while the signer is down included), by outcome.",
			Buckets: metrics.CallBuckets,
		}, []string{"outcome"}),
		FramesStale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nanokms_relay_frames_stale_total",
			Help: "Request frames the relay dropped unanswered because their leader epoch was below the highest it had seen (a deposed gateway's late frames); the signer never saw them.",
		}),
		FramesRejected: metrics.NewFramesRejected("relay"),
		MediumErrors:   metrics.NewMediumErrors("relay"),
		StartTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nanokms_relay_start_time_seconds",
			Help: "When the relay started, in seconds since the Unix epoch.",
		}),
		BuildInfo: metrics.NewBuildInfo(metrics.RoleRelay),
	}
	for _, o := range []string{RelaySigned, RelayRefused, RelayMalformed} {
		r.Requests.WithLabelValues(o)
	}
	for _, o := range []string{RelaySigned, RelayRefused} {
		r.SignerTime.WithLabelValues(o)
	}
	r.StartTime.SetToCurrentTime()
	r.Registry.MustRegister(r.Requests, r.SignerTime, r.FramesStale, r.FramesRejected, r.MediumErrors, r.StartTime, r.BuildInfo)
	return r
}

// Observe counts one answered request: it has the signature of
// relay.Relay.Observe.
func (r *Relay) Observe(outcome string, took time.Duration) {
	switch outcome {
	case RelaySigned, RelayRefused:
		r.SignerTime.WithLabelValues(outcome).Observe(took.Seconds())
	case RelayMalformed:
	case RelayStale:
		r.FramesStale.Inc()
		return // not answered: not in nanokms_relay_requests_total
	default:
		return // not a known outcome: never a label from elsewhere
	}
	r.Requests.WithLabelValues(outcome).Inc()
}

// FrameRejected counts a frame the relay's medium refused: it has the
// signature of frame.RejectFunc.
func (r *Relay) FrameRejected(_ string, err error) {
	r.FramesRejected.WithLabelValues(metrics.RejectReason(err)).Inc()
}

// MediumError counts a problem the relay's file medium rode out: it has
// the signature of filemedium.FileReaderOptions.OnError.
func (r *Relay) MediumError(err error) {
	r.MediumErrors.WithLabelValues(metrics.MediumKind(err)).Inc()
}
