package nano

import (
	"errors"
	"fmt"
)

// Sentinel errors. A *ParseError wraps one of them; branch with errors.Is.
var (
	// ErrSyntax is returned when a value is not in the expected form
	// (not hex, not a decimal number, not JSON).
	ErrSyntax = errors.New("invalid syntax")
	// ErrLength is returned when a value has the wrong length.
	ErrLength = errors.New("wrong length")
	// ErrRange is returned when a number does not fit its type (for an
	// amount: it is 2^128 raw or more) or an arithmetic result would overflow.
	ErrRange = errors.New("out of range")
	// ErrPrecision is returned when an XNO amount has more decimal places
	// than a raw can represent (30).
	ErrPrecision = errors.New("more than 30 decimal places")
	// ErrAddressPrefix is returned when an address does not start with
	// "nano_" or "xrb_".
	ErrAddressPrefix = errors.New("address prefix is not nano_ or xrb_")
	// ErrAddressChar is returned when an address holds a character outside
	// the Nano base32 alphabet.
	ErrAddressChar = errors.New("character not in the Nano base32 alphabet")
	// ErrAddressPadding is returned when the 4 padding bits of an address
	// are not zero.
	ErrAddressPadding = errors.New("address padding bits are not zero")
	// ErrAddressChecksum is returned when an address's checksum does not
	// match its public key.
	ErrAddressChecksum = errors.New("address checksum mismatch")
	// ErrMissing is returned when a required JSON field is absent.
	ErrMissing = errors.New("missing")
	// ErrNotStateBlock is returned for a block whose "type" is not "state"
	// (legacy send/receive/open/change blocks) or that has no type.
	ErrNotStateBlock = errors.New("not a state block")
	// ErrMismatch is returned when two encodings of the same value in one
	// document disagree (for example "link" and "link_as_account").
	ErrMismatch = errors.New("fields disagree")
	// ErrInvalidBlock is returned by Subtype for a block that no ledger
	// accepts (for example an unchanged balance with a non-zero, non-epoch link).
	ErrInvalidBlock = errors.New("invalid state block")
)

// ParseError reports malformed input. Field names the input that was wrong
// ("balance", "account", "block.link", "work", ...); Err is one of the
// package's sentinel errors. A ParseError never holds secret material: for
// seeds and private keys only the field name and the kind of fault appear.
type ParseError struct {
	Field  string // the input or JSON field that was wrong
	Detail string // optional extra context, never secret
	Err    error  // the sentinel describing the fault
}

// Error implements error.
func (e *ParseError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("nano: %s: %v: %s", e.Field, e.Err, e.Detail)
	}
	return fmt.Sprintf("nano: %s: %v", e.Field, e.Err)
}

// Unwrap returns the sentinel error.
func (e *ParseError) Unwrap() error { return e.Err }

func parseErr(field string, err error, detail string) *ParseError {
	return &ParseError{Field: field, Err: err, Detail: detail}
}
