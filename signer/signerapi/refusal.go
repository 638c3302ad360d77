package signerapi

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Refusal is a decision not to sign, with its reason. The gRPC server maps
// it to a status code and a google.rpc.ErrorInfo whose reason is
// ReasonName(Reason) (RefusalStatus).
type Refusal struct {
	Reason pb.RefusalReason
	Detail string // human-readable, never secret
	// Field, when set, is the request field at fault, as a path such as
	// "intent.request_id" or "template.work".
	Field string
	// Pending is the block already signed on the requested head, for
	// REFUSAL_REASON_PENDING_BLOCK: publish it instead.
	Pending *nano.StateBlock
}

// Error implements error.
func (r *Refusal) Error() string {
	if r.Detail == "" {
		return "signer: refused: " + ReasonName(r.Reason)
	}
	return fmt.Sprintf("signer: refused: %s: %s", ReasonName(r.Reason), r.Detail)
}

// Is makes errors.Is(err, &Refusal{Reason: R}) match any refusal for R.
func (r *Refusal) Is(target error) bool {
	var t *Refusal
	return errors.As(target, &t) && t.Reason == r.Reason && t.Detail == "" && t.Field == "" && t.Pending == nil
}

// ReasonName returns the reason's name without the "REFUSAL_REASON_"
// prefix, as ErrorInfo.reason carries it.
func ReasonName(r pb.RefusalReason) string {
	return strings.TrimPrefix(r.String(), "REFUSAL_REASON_")
}

// ReasonOf returns the refusal reason of err, or UNSPECIFIED when err is
// not a refusal.
func ReasonOf(err error) pb.RefusalReason {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return pb.RefusalReason_REFUSAL_REASON_UNSPECIFIED
}
