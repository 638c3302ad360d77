package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nanokms/nanokms/nano"
)

// fields parses the string-valued fields of a node answer (the node prints
// every number, hash and boolean as a JSON string), keeping the first
// error. Each method returns the zero value once an error is recorded.
type fields struct {
	action string
	err    error
}

func (f *fields) fail(field string, err error) {
	if f.err == nil {
		f.err = fmt.Errorf("node: %s: %w: field %q: %v", f.action, ErrBadResponse, field, err)
	}
}

func (f *fields) missing(field string) {
	if f.err == nil {
		f.err = fmt.Errorf("node: %s: %w: field %q is missing", f.action, ErrBadResponse, field)
	}
}

func (f *fields) hash(field string, s *string) nano.Hash {
	if f.err != nil {
		return nano.Hash{}
	}
	if s == nil {
		f.missing(field)
		return nano.Hash{}
	}
	h, err := nano.ParseHash(*s)
	if err != nil {
		f.fail(field, err)
	}
	return h
}

func (f *fields) account(field string, s *string) nano.PublicKey {
	if f.err != nil {
		return nano.PublicKey{}
	}
	if s == nil {
		f.missing(field)
		return nano.PublicKey{}
	}
	k, err := nano.ParseAccount(*s)
	if err != nil {
		f.fail(field, err)
	}
	return k
}

func (f *fields) amount(field string, s *string) nano.Amount {
	if f.err != nil {
		return nano.Amount{}
	}
	if s == nil {
		f.missing(field)
		return nano.Amount{}
	}
	a, err := nano.ParseAmount(*s)
	if err != nil {
		f.fail(field, err)
	}
	return a
}

// u64 parses a decimal number; a nil s is 0 unless required.
func (f *fields) u64(field string, s *string, required bool) uint64 {
	if f.err != nil {
		return 0
	}
	if s == nil {
		if required {
			f.missing(field)
		}
		return 0
	}
	v, err := strconv.ParseUint(*s, 10, 64)
	if err != nil {
		f.fail(field, err)
	}
	return v
}

// difficulty parses 1 to 16 hex digits; a nil s is 0 unless required.
func (f *fields) difficulty(field string, s *string, required bool) uint64 {
	if f.err != nil {
		return 0
	}
	if s == nil {
		if required {
			f.missing(field)
		}
		return 0
	}
	v, err := nano.ParseThreshold(*s)
	if err != nil {
		f.fail(field, err)
	}
	return v
}

// boolean parses "true"/"false" (and "1"/"0", as older nodes print some
// flags); a nil s is false.
func (f *fields) boolean(field string, s *string) bool {
	if f.err != nil || s == nil {
		return false
	}
	switch *s {
	case "true", "1":
		return true
	case "false", "0":
		return false
	}
	f.fail(field, fmt.Errorf("%q is not a boolean", *s))
	return false
}

// isEmptyString reports whether raw is absent, null or the JSON string "":
// how the node prints an empty list or object (its property tree writes
// an empty child as "").
func isEmptyString(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte(`""`)) || bytes.Equal(t, []byte("null"))
}
