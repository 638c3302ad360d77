package metrics

import (
	"errors"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nanokms/nanokms/coldbridge"
)

// Buckets of the histograms, in seconds.
var (
	// bridgeBuckets span a serial line (under a second) to a USB stick
	// carried between hosts (hours).
	bridgeBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400}
	// nodeBuckets are for publication (work included) and confirmation.
	nodeBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	// workBuckets are for proof-of-work generation.
	workBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}
	// callBuckets are for a signer decision and the relay's call to it.
	callBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
)

// Frame refusal reasons (nanokms_bridge_frames_rejected_total{reason}),
// besides the wire errors' names.
const (
	// RejectReasonConsumer: the frame was well formed, but the relay or
	// the gateway refused its content (an answer to no request, a signed
	// block that does not match its intent...).
	RejectReasonConsumer = "rejected"
	// RejectReasonOther: any other refusal.
	RejectReasonOther = "other"
)

// wireErrors are the frame checks' codes, for the reason label.
var wireErrors = []coldbridge.WireError{
	coldbridge.ErrCodeTruncated, coldbridge.ErrCodeMagic, coldbridge.ErrCodeVersion, coldbridge.ErrCodeType,
	coldbridge.ErrCodeRequestID, coldbridge.ErrCodeLength, coldbridge.ErrCodeChecksum, coldbridge.ErrCodeTrailing,
	coldbridge.ErrCodePayload, coldbridge.ErrCodeExpired, coldbridge.ErrCodeFuture, coldbridge.ErrCodeMismatch,
	coldbridge.ErrCodeFileName, coldbridge.ErrCodeCOBS,
}

// wireReason is a wire error's label value: its name in snake case
// ("checksum_mismatch").
func wireReason(c coldbridge.WireError) string {
	return strings.ToLower(strings.ReplaceAll(c.String(), " ", "_"))
}

// RejectReason returns the reason label of a frame refusal reported to a
// coldbridge.RejectFunc: the wire error's name, RejectReasonConsumer or
// RejectReasonOther. It never returns anything taken from the frame.
func RejectReason(err error) string {
	var fe *coldbridge.FrameError
	if errors.As(err, &fe) {
		for _, c := range wireErrors {
			if fe.Code == c {
				return wireReason(c)
			}
		}
		return RejectReasonOther
	}
	var re *coldbridge.RejectedError
	if errors.As(err, &re) {
		return RejectReasonConsumer
	}
	return RejectReasonOther
}

// newFramesRejected returns nanokms_bridge_frames_rejected_total with
// every reason at zero.
func newFramesRejected(side string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nanokms_bridge_frames_rejected_total",
		Help: "Frames this " + side + " refused from the bridge (quarantined or dropped), by reason.",
	}, []string{"reason"})
	for _, w := range wireErrors {
		c.WithLabelValues(wireReason(w))
	}
	c.WithLabelValues(RejectReasonConsumer)
	c.WithLabelValues(RejectReasonOther)
	return c
}
