package devnode

// The RPC request: one JSON object, read field by field with the node's
// own error messages.

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/nanokms/nanokms/nano"
)

// rpcError is an RPC failure answered as {"error": message}.
type rpcError string

// Error implements error.
func (e rpcError) Error() string { return string(e) }

const errParse = rpcError(msgUnableToParse)

// request is a parsed RPC request: one JSON object.
type request struct {
	m map[string]json.RawMessage
}

func parseRequest(body []byte) (*request, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, errParse
	}
	return &request{m: m}, nil
}

// str returns a string member; present reports whether it was there. A
// member that is not a JSON string is a parse error, as in the node.
func (r *request) str(key string) (s string, present bool, err error) {
	raw, ok := r.m[key]
	if !ok {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, errParse
	}
	return s, true, nil
}

// need returns a required string member.
func (r *request) need(key string) (string, error) {
	s, ok, err := r.str(key)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errParse
	}
	return s, nil
}

// flag returns a boolean option: a JSON boolean, or the strings "true",
// "false", "1" and "0" that node clients send.
func (r *request) flag(key string, def bool) (bool, error) {
	raw, ok := r.m[key]
	if !ok {
		return def, nil
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "true", "1":
			return true, nil
		case "false", "0":
			return false, nil
		}
	}
	return false, errParse
}

func (r *request) account(key string) (nano.PublicKey, error) {
	s, err := r.need(key)
	if err != nil {
		return nano.PublicKey{}, err
	}
	k, err := nano.ParseAddress(s)
	if err != nil {
		return nano.PublicKey{}, rpcError(msgBadAccount)
	}
	return k, nil
}

func (r *request) hash(key string) (nano.Hash, error) {
	s, err := r.need(key)
	if err != nil {
		return nano.Hash{}, err
	}
	h, err := nano.ParseHash(s)
	if err != nil {
		return nano.Hash{}, rpcError(msgInvalidHash)
	}
	return h, nil
}

// count returns the optional "count" (unlimited when absent).
func (r *request) count() (uint64, error) {
	s, ok, err := r.str("count")
	if err != nil || !ok {
		return ^uint64(0), err
	}
	v, perr := strconv.ParseUint(s, 10, 64)
	if perr != nil {
		return 0, rpcError(msgInvalidCount)
	}
	return v, nil
}

// hex64 parses an optional 64-bit hex value (difficulty, work): 1 to 16
// hex digits.
func (r *request) hex64(key string, bad string) (uint64, bool, error) {
	s, ok, err := r.str(key)
	if err != nil || !ok {
		return 0, ok, err
	}
	v, perr := nano.ParseThreshold(s)
	if perr != nil {
		return 0, true, rpcError(bad)
	}
	return v, true, nil
}

// requestBlock reads the request's "block": a JSON string holding the
// block, or with json_block true a JSON object. Signature and work are
// required when full is set.
func (r *request) block(full bool) (nano.StateBlock, error) {
	jsonBlock, err := r.flag("json_block", false)
	if err != nil {
		return nano.StateBlock{}, err
	}
	raw, ok := r.m["block"]
	if !ok {
		return nano.StateBlock{}, errParse
	}
	raw = bytes.TrimSpace(raw)
	var doc []byte
	if jsonBlock {
		if len(raw) == 0 || raw[0] != '{' {
			return nano.StateBlock{}, errParse
		}
		doc = raw
	} else {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nano.StateBlock{}, errParse
		}
		doc = []byte(s)
	}
	pb, err := nano.ParseBlockJSON(doc)
	if err != nil || pb.Form != nano.FormBlock {
		return nano.StateBlock{}, ErrInvalidBlock
	}
	if full && (!pb.HasSignature || !pb.HasWork) {
		return nano.StateBlock{}, ErrInvalidBlock
	}
	return pb.Block, nil
}
