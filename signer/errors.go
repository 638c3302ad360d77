package signer

import (
	"errors"
	"fmt"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// Refusal is a decision not to sign (signerapi.Refusal, the contract its
// clients share).
type Refusal = signerapi.Refusal

func refuse(reason pb.RefusalReason, format string, a ...any) *Refusal {
	return &Refusal{Reason: reason, Detail: fmt.Sprintf(format, a...)}
}

// refuseField is refuse for a fault in one field of the request: the
// refusal names it, and its detail starts with "field: ".
func refuseField(reason pb.RefusalReason, field, format string, a ...any) *Refusal {
	return &Refusal{Reason: reason, Field: field, Detail: field + ": " + fmt.Sprintf(format, a...)}
}

// ErrClosed is returned by a Signer after Close.
var ErrClosed = errors.New("signer: closed")
