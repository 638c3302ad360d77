// Package keystore is the contract between the signer and the key store
// it signs through: the errors the signer branches on, the rule a wallet
// label follows, and what a token-backed store reports of its token.
//
// The signer decides through these names only; a key store (package hsm)
// returns errors that match them under errors.Is and errors.As, and the
// binary wires the one into the other. This package must never import
// the token's code (hsm, PKCS#11) or the signer: both import it.
package keystore

import (
	"errors"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// The errors a key store's errors match (errors.Is) when the signer must
// tell them apart.
var (
	// ErrWalletNotFound: no wallet has the given label.
	ErrWalletNotFound = errors.New("keystore: wallet not found")

	// ErrTokenUnavailable: the token is unavailable (gone, reconnecting,
	// or its session lost): nothing was done on it, and the same call may
	// succeed once the token is back.
	ErrTokenUnavailable = errors.New("keystore: the token is unavailable")

	// ErrPINRefused: the token refused the PIN (wrong, or locked). The
	// PIN is not sent again: an operator must act. An unavailable token
	// that refused the PIN matches both ErrTokenUnavailable and this, and
	// its unavailability is final.
	ErrPINRefused = errors.New("keystore: the token refused the PIN")
)

// MaxLabelLen is the longest wallet label a key store accepts, in bytes.
const MaxLabelLen = 64

// LabelError reports a wallet label that breaks CheckLabel's rule. A key
// store's error for such a label matches it under errors.As.
type LabelError struct {
	Reason string // what is wrong with the label; never holds the label
}

// Error implements error.
func (e *LabelError) Error() string { return "keystore: wallet label: " + e.Reason }

// CheckLabel returns a *LabelError if label is not a valid wallet label:
// 1 to MaxLabelLen bytes of UTF-8 with no control characters.
func CheckLabel(label string) error {
	switch {
	case label == "":
		return &LabelError{Reason: "empty"}
	case len(label) > MaxLabelLen:
		return &LabelError{Reason: "longer than " + strconv.Itoa(MaxLabelLen) + " bytes"}
	case !utf8.ValidString(label):
		return &LabelError{Reason: "not UTF-8"}
	}
	for _, r := range label {
		if unicode.IsControl(r) {
			return &LabelError{Reason: "contains a control character"}
		}
	}
	return nil
}

// TokenStatus is what a token-backed key store knows of its token's
// availability.
type TokenStatus struct {
	// Available is false from the moment the token was found gone until
	// recovery succeeds.
	Available bool
	// Cause says why the token is unavailable: what showed it gone, then
	// what the last recovery attempt ran into. Nil while available.
	Cause error
	// Final is true when recovery has stopped for good: the token refused
	// the PIN (errors.Is(Cause, ErrPINRefused)). The PIN is not sent
	// again; an operator must act, and the process restart.
	Final bool
	// Since is when the token was found gone (zero while available).
	Since time.Time
	// Attempts counts the recovery attempts since then.
	Attempts int
	// Losses counts the times the token was found gone, and Reloads the
	// fresh module instances loaded (or tried), over the key store's life.
	Losses, Reloads int
}
