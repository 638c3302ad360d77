package signerapi

import (
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of the signer's errors.
const ErrorDomain = "nanokms"

// ErrorInfoStoreFull is the ErrorInfo reason of the status of a request
// that found the signer's state store full. It is not a RefusalReason:
// RefusalFromStatus does not take it for a refusal.
const ErrorInfoStoreFull = "STATE_STORE_FULL"

// ErrorInfoTokenUnavailable is the ErrorInfo reason of the status of a
// request that found the token unavailable. It is not a RefusalReason.
const ErrorInfoTokenUnavailable = "TOKEN_UNAVAILABLE"

// ErrorInfoStoreUnavailable is the ErrorInfo reason of the status of a
// request whose decision could not reach the signer's state database (or
// lost it, or lost to other signers' decisions within its retries). It is
// not a RefusalReason.
const ErrorInfoStoreUnavailable = "STATE_STORE_UNAVAILABLE"

// CodeFor maps a refusal reason to its gRPC status code.
func CodeFor(r pb.RefusalReason) codes.Code {
	switch r {
	case pb.RefusalReason_REFUSAL_REASON_HEAD_NOT_FRONTIER, pb.RefusalReason_REFUSAL_REASON_PENDING_BLOCK,
		pb.RefusalReason_REFUSAL_REASON_EXPIRED, pb.RefusalReason_REFUSAL_REASON_RELEASE_MISMATCH,
		pb.RefusalReason_REFUSAL_REASON_RELEASED, pb.RefusalReason_REFUSAL_REASON_FRONTIER_UNCONFIRMED:
		return codes.FailedPrecondition
	case pb.RefusalReason_REFUSAL_REASON_APPROVALS_MISSING, pb.RefusalReason_REFUSAL_REASON_APPROVER_UNKNOWN,
		pb.RefusalReason_REFUSAL_REASON_APPROVAL_DUPLICATED, pb.RefusalReason_REFUSAL_REASON_APPROVAL_INVALID,
		pb.RefusalReason_REFUSAL_REASON_POLICY_DENIED,
		pb.RefusalReason_REFUSAL_REASON_DESTINATION_NOT_ALLOWED,
		pb.RefusalReason_REFUSAL_REASON_REPRESENTATIVE_NOT_ALLOWED:
		return codes.PermissionDenied
	case pb.RefusalReason_REFUSAL_REASON_LIMIT_EXCEEDED, pb.RefusalReason_REFUSAL_REASON_VELOCITY_EXCEEDED:
		return codes.ResourceExhausted
	case pb.RefusalReason_REFUSAL_REASON_REQUEST_ID_REUSED, pb.RefusalReason_REFUSAL_REASON_ALREADY_TRACKED:
		return codes.AlreadyExists
	case pb.RefusalReason_REFUSAL_REASON_UNKNOWN_ACCOUNT:
		return codes.NotFound
	}
	return codes.InvalidArgument
}

// RefusalStatus is the status of refusal r: CodeFor(r.Reason), r's error
// text, an ErrorInfo (reason ReasonName(r.Reason), metadata "detail" and,
// when set, "field") and, for a pending block, the block as a second
// detail. The caller bounds r.Detail and r.Field first (they are sent).
func RefusalStatus(r *Refusal) *status.Status {
	st := status.New(CodeFor(r.Reason), r.Error())
	md := map[string]string{"detail": r.Detail}
	if r.Field != "" {
		md["field"] = r.Field
	}
	details := []protoadapt.MessageV1{protoadapt.MessageV1Of(&errdetails.ErrorInfo{
		Reason:   ReasonName(r.Reason),
		Domain:   ErrorDomain,
		Metadata: md,
	})}
	if r.Pending != nil {
		details = append(details, protoadapt.MessageV1Of(pb.BlockFromNano(r.Pending)))
	}
	if withDetails, derr := st.WithDetails(details...); derr == nil {
		return withDetails
	}
	return st
}

// StoreFullStatus is the status of a request that found the state store
// full: ResourceExhausted with an ErrorInfo whose reason is
// ErrorInfoStoreFull. Nothing was decided; the caller resends later.
func StoreFullStatus() *status.Status {
	st := status.New(codes.ResourceExhausted, "signer: the state store is full: nothing was signed or recorded; "+
		"resend once space is freed on the file system of the signer's state file")
	if withDetails, derr := st.WithDetails(protoadapt.MessageV1Of(&errdetails.ErrorInfo{Reason: ErrorInfoStoreFull, Domain: ErrorDomain})); derr == nil {
		return withDetails
	}
	return st
}

// TokenUnavailableStatus is the status of a request that found the token
// unavailable: Unavailable, and an ErrorInfo (reason
// ErrorInfoTokenUnavailable) saying whether the signer is reconnecting
// (metadata "final" "false") or the token refused its PIN and an operator
// must act (final, "true").
func TokenUnavailableStatus(final bool) *status.Status {
	msg := "signer: the token is unavailable (the signer is reconnecting to it): nothing was signed or recorded; resend once it is back"
	if final {
		msg = "signer: the token is unavailable: it refused the PIN when the signer logged in again, which is not retried; an operator must act. Nothing was signed or recorded"
	}
	st := status.New(codes.Unavailable, msg)
	info := &errdetails.ErrorInfo{Reason: ErrorInfoTokenUnavailable, Domain: ErrorDomain, Metadata: map[string]string{"final": fmt.Sprint(final)}}
	if withDetails, derr := st.WithDetails(protoadapt.MessageV1Of(info)); derr == nil {
		return withDetails
	}
	return st
}

// StoreUnavailableStatus is the status of a request whose decision could
// not reach the state database: Unavailable with an ErrorInfo whose reason
// is ErrorInfoStoreUnavailable. Nothing signed was released; a commit cut
// off may have been recorded, and the same request resent (to this or
// another signer) gets the recorded answer if it was.
func StoreUnavailableStatus() *status.Status {
	st := status.New(codes.Unavailable, "signer: the state database is unavailable: nothing signed was released; resend (to this or another signer)")
	if withDetails, derr := st.WithDetails(protoadapt.MessageV1Of(&errdetails.ErrorInfo{Reason: ErrorInfoStoreUnavailable, Domain: ErrorDomain})); derr == nil {
		return withDetails
	}
	return st
}

// IsStoreUnavailable reports whether st is StoreUnavailableStatus's:
// nothing signed was released, and the same request may be resent.
func IsStoreUnavailable(st *status.Status) bool {
	return hasInfo(st, ErrorInfoStoreUnavailable) && st.Code() == codes.Unavailable
}

// IsTokenUnavailable reports whether st is TokenUnavailableStatus's: nothing
// was decided, and the same request may be resent.
func IsTokenUnavailable(st *status.Status) bool {
	return hasInfo(st, ErrorInfoTokenUnavailable) && st.Code() == codes.Unavailable
}

// IsStoreFull reports whether st is StoreFullStatus's: nothing was
// decided, and the same request may be resent.
func IsStoreFull(st *status.Status) bool {
	return hasInfo(st, ErrorInfoStoreFull) && st.Code() == codes.ResourceExhausted
}

// hasInfo reports whether st carries an ErrorInfo of ErrorDomain with reason.
func hasInfo(st *status.Status, reason string) bool {
	for _, d := range st.Details() {
		if v, ok := d.(*errdetails.ErrorInfo); ok && v.GetDomain() == ErrorDomain && v.GetReason() == reason {
			return true
		}
	}
	return false
}

// RefusalFromStatus recovers a refusal from a status made by
// RefusalStatus: the reason, the detail, the field and the pending block,
// if any. ok is false for a status that is not a refusal.
func RefusalFromStatus(st *status.Status) (r *Refusal, ok bool) {
	for _, d := range st.Details() {
		switch v := d.(type) {
		case *errdetails.ErrorInfo:
			if v.GetDomain() != ErrorDomain {
				continue
			}
			reason, known := pb.RefusalReason_value["REFUSAL_REASON_"+v.GetReason()]
			if !known {
				continue
			}
			if r == nil {
				r = &Refusal{}
			}
			r.Reason, r.Detail, r.Field, ok = pb.RefusalReason(reason), v.GetMetadata()["detail"], v.GetMetadata()["field"], true
		case *pb.Block:
			b, err := v.ToNano("pending")
			if err == nil {
				if r == nil {
					r = &Refusal{}
				}
				r.Pending = &b
			}
		}
	}
	return r, ok
}
