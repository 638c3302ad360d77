package metrics

import (
	"errors"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
)

// Buckets of the histograms, in seconds.
var (
	// BridgeBuckets span a serial line (under a second) to a USB stick
	// carried between hosts (hours).
	BridgeBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400}
	// NodeBuckets are for publication (work included) and confirmation.
	NodeBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	// WorkBuckets are for proof-of-work generation.
	WorkBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}
	// CallBuckets are for a signer decision and the relay's call to it.
	CallBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
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
var wireErrors = []frame.WireError{
	frame.ErrCodeTruncated, frame.ErrCodeMagic, frame.ErrCodeVersion, frame.ErrCodeType,
	frame.ErrCodeRequestID, frame.ErrCodeLength, frame.ErrCodeChecksum, frame.ErrCodeTrailing,
	frame.ErrCodePayload, frame.ErrCodeExpired, frame.ErrCodeFuture, frame.ErrCodeMismatch,
	frame.ErrCodeFileName, frame.ErrCodeCOBS,
}

// wireReason is a wire error's label value: its name in snake case
// ("checksum_mismatch").
func wireReason(c frame.WireError) string {
	return strings.ToLower(strings.ReplaceAll(c.String(), " ", "_"))
}

// RejectReason returns the reason label of a frame refusal reported to a
// frame.RejectFunc: the wire error's name, RejectReasonConsumer or
// RejectReasonOther. It never returns anything taken from the frame.
func RejectReason(err error) string {
	var fe *frame.FrameError
	if errors.As(err, &fe) {
		for _, c := range wireErrors {
			if fe.Code == c {
				return wireReason(c)
			}
		}
		return RejectReasonOther
	}
	var re *filemedium.RejectedError
	if errors.As(err, &re) {
		return RejectReasonConsumer
	}
	return RejectReasonOther
}

// NewFramesRejected returns nanokms_bridge_frames_rejected_total with
// every reason at zero.
func NewFramesRejected(side string) *prometheus.CounterVec {
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

// Medium problem kinds (nanokms_bridge_medium_errors_total{kind}).
const (
	// MediumBadEntry: an entry on the medium that does not belong (a
	// symbolic link, a file where a directory belongs...): never followed,
	// set aside or left in place. The hot side planted it, or the medium
	// is damaged: alert on it.
	MediumBadEntry = "bad_entry"
	// MediumFull: the medium had no space or inodes left for a frame or a
	// .reason file.
	MediumFull = "full"
	// MediumIO: anything else a file medium rode out (pulled, unreadable,
	// a file it holds because it cannot settle it yet).
	MediumIO = "io"
)

// MediumKind returns the kind label of an error a file medium reported
// (FileReaderOptions.OnError, FileWriterOptions.OnError, or a failed
// write): MediumBadEntry, MediumFull or MediumIO.
func MediumKind(err error) string {
	switch {
	case errors.Is(err, filemedium.ErrBadEntry):
		return MediumBadEntry
	case errors.Is(err, filemedium.ErrMediumFull):
		return MediumFull
	}
	return MediumIO
}

// NewMediumErrors returns nanokms_bridge_medium_errors_total with every
// kind at zero.
func NewMediumErrors(side string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nanokms_bridge_medium_errors_total",
		Help: "Problems this " + side + "'s file medium rode out, by kind: bad_entry (an entry that does not belong, never followed), full, io.",
	}, []string{"kind"})
	for _, k := range []string{MediumBadEntry, MediumFull, MediumIO} {
		c.WithLabelValues(k)
	}
	return c
}
