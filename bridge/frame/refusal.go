package frame

import "google.golang.org/grpc/codes"

// RefusalCode is the closed set of values of BridgeRefusal.code: who
// refused a request, and how. The relay writes it; the gateway branches on
// it. It is a string on the wire (FRAMES.md, "Refusal codes") so that an
// operator reads it in `nanokms bridge inspect`; in code it is only ever
// one of these constants.
type RefusalCode string

// The relay's own codes, for requests the signer never decided.
const (
	// RefusalRelayMalformed: the request frame's payload does not decode
	// as a BridgeRequest for its request id.
	RefusalRelayMalformed RefusalCode = "RELAY_MALFORMED"
	// RefusalSignerInternal: the signer failed internally, several times;
	// the request may be sent again later.
	RefusalSignerInternal RefusalCode = "SIGNER_INTERNAL"
)

// The signer's answers: the upper-case name of the gRPC status code it
// answered with, as the proto's enum spells it.
const (
	RefusalOK                 RefusalCode = "OK"
	RefusalCanceled           RefusalCode = "CANCELLED"
	RefusalUnknown            RefusalCode = "UNKNOWN"
	RefusalInvalidArgument    RefusalCode = "INVALID_ARGUMENT"
	RefusalDeadlineExceeded   RefusalCode = "DEADLINE_EXCEEDED"
	RefusalNotFound           RefusalCode = "NOT_FOUND"
	RefusalAlreadyExists      RefusalCode = "ALREADY_EXISTS"
	RefusalPermissionDenied   RefusalCode = "PERMISSION_DENIED"
	RefusalResourceExhausted  RefusalCode = "RESOURCE_EXHAUSTED"
	RefusalFailedPrecondition RefusalCode = "FAILED_PRECONDITION"
	RefusalAborted            RefusalCode = "ABORTED"
	RefusalOutOfRange         RefusalCode = "OUT_OF_RANGE"
	RefusalUnimplemented      RefusalCode = "UNIMPLEMENTED"
	RefusalInternal           RefusalCode = "INTERNAL"
	RefusalUnavailable        RefusalCode = "UNAVAILABLE"
	RefusalDataLoss           RefusalCode = "DATA_LOSS"
	RefusalUnauthenticated    RefusalCode = "UNAUTHENTICATED"
)

var grpcRefusalCodes = [...]RefusalCode{
	codes.OK: RefusalOK, codes.Canceled: RefusalCanceled, codes.Unknown: RefusalUnknown,
	codes.InvalidArgument: RefusalInvalidArgument, codes.DeadlineExceeded: RefusalDeadlineExceeded,
	codes.NotFound: RefusalNotFound, codes.AlreadyExists: RefusalAlreadyExists,
	codes.PermissionDenied: RefusalPermissionDenied, codes.ResourceExhausted: RefusalResourceExhausted,
	codes.FailedPrecondition: RefusalFailedPrecondition, codes.Aborted: RefusalAborted,
	codes.OutOfRange: RefusalOutOfRange, codes.Unimplemented: RefusalUnimplemented,
	codes.Internal: RefusalInternal, codes.Unavailable: RefusalUnavailable, codes.DataLoss: RefusalDataLoss,
	codes.Unauthenticated: RefusalUnauthenticated,
}

// RefusalCodeOf returns the code for a gRPC status code the signer
// answered with; RefusalUnknown for a code gRPC does not define.
func RefusalCodeOf(c codes.Code) RefusalCode {
	if int(c) < len(grpcRefusalCodes) {
		return grpcRefusalCodes[c]
	}
	return RefusalUnknown
}

// Known reports whether c is one of the codes above (a refusal read off
// the medium may carry anything).
func (c RefusalCode) Known() bool {
	if c == RefusalRelayMalformed || c == RefusalSignerInternal {
		return true
	}
	for _, k := range grpcRefusalCodes {
		if c == k {
			return true
		}
	}
	return false
}

// Resend reports whether the refusal is not the signer's decision but the
// cold side's failure to reach one (RefusalRelayMalformed,
// RefusalSignerInternal): the hot side keeps the request queued and writes
// it again on schedule.
func (c RefusalCode) Resend() bool {
	return c == RefusalRelayMalformed || c == RefusalSignerInternal
}
