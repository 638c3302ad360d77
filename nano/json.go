package nano

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
)

// Form names the JSON document a block was found in.
type Form string

// The JSON forms ParseBlockJSON recognises.
const (
	FormBlock     Form = "block"     // a bare block object, or a JSON string holding one
	FormContents  Form = "contents"  // an RPC response with "contents" (block_info)
	FormEnvelope  Form = "envelope"  // a document with a "block" field (block_create, block_hash, process, HTTP callback)
	FormWebSocket Form = "websocket" // a WebSocket notification: "message" holding "block"
)

const (
	maxEnvelopeDepth = 4
	maxBlockJSONSize = 64 << 10
)

// ParsedBlock is a block and what its JSON document said about it.
type ParsedBlock struct {
	Block StateBlock
	Form  Form
	// ClaimedHash is the "hash" the document states beside the block (a
	// callback, a block_create response, a WebSocket confirmation) or in
	// it, when it has one; where several levels state one, they agree. It
	// is untrusted: compare it with Block.Hash().
	ClaimedHash    Hash
	HasClaimedHash bool
	// HasSignature and HasWork report whether those fields were present;
	// an unsigned template has neither.
	HasSignature, HasWork bool
}

// ParseBlockJSON parses a state block from any JSON form a node prints or
// accepts:
//
//   - a bare block object {"type": "state", "account": …};
//   - an RPC response whose "contents" is the block as a JSON string or
//     object (block_info, blocks_info entries);
//   - a document whose "block" is the block as a JSON string or object
//     (block_create responses, block_hash and process requests, the HTTP
//     callback body);
//   - a WebSocket notification whose "message" holds "block".
//
// Every block field must be a JSON string. "signature" and "work" may be
// absent (a template); "link_as_account", when present, must encode the
// same key as "link". Duplicate keys are refused. A "type" other than
// "state" returns a *ParseError wrapping ErrNotStateBlock. The input is
// limited to 64 KiB.
func ParseBlockJSON(data []byte) (ParsedBlock, error) {
	if len(data) > maxBlockJSONSize {
		return ParsedBlock{}, parseErr("block", ErrLength, "JSON document over 64 KiB")
	}
	return parseBlockDoc(data, "", 0)
}

func parseBlockDoc(data []byte, path string, depth int) (ParsedBlock, error) {
	if depth > maxEnvelopeDepth {
		return ParsedBlock{}, parseErr(orBlock(path), ErrSyntax, "nested too deeply")
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '"' {
		// A JSON string holding the block (as "contents" and "block" are printed).
		var inner string
		if err := json.Unmarshal(trimmed, &inner); err != nil {
			return ParsedBlock{}, parseErr(fieldPath(path, "block"), ErrSyntax, "malformed JSON string")
		}
		return parseBlockDoc([]byte(inner), path, depth+1)
	}
	obj, err := decodeObject(trimmed)
	if err != nil {
		return ParsedBlock{}, objectErr(path, err)
	}
	if _, ok := obj["type"]; ok {
		pb, err := parseBlockObject(obj, path)
		if err != nil {
			return ParsedBlock{}, err
		}
		pb.Form = FormBlock
		return pb, nil
	}
	var (
		inner []byte
		form  Form
		key   string
	)
	switch {
	case obj["contents"] != nil:
		inner, form, key = obj["contents"], FormContents, "contents"
	case obj["block"] != nil:
		inner, form, key = obj["block"], FormEnvelope, "block"
	case obj["message"] != nil:
		inner, form, key = obj["message"], FormWebSocket, "message"
	default:
		return ParsedBlock{}, parseErr(fieldPath(path, "block"), ErrMissing, "no \"type\", \"contents\", \"block\" or \"message\" field")
	}
	pb, err := parseBlockDoc(inner, fieldPath(path, key), depth+1)
	if err != nil {
		return ParsedBlock{}, err
	}
	if depth == 0 || pb.Form == FormBlock {
		pb.Form = form
	}
	if err := claimHash(&pb, obj, path); err != nil {
		return ParsedBlock{}, err
	}
	return pb, nil
}

// claimHash records the "hash" member of obj, if any, as pb's claimed
// hash. Every level of a document that states a hash must state the same
// one; a disagreement is an error wrapping ErrMismatch.
func claimHash(pb *ParsedBlock, obj map[string]json.RawMessage, path string) error {
	raw, ok := obj["hash"]
	if !ok {
		return nil
	}
	s, err := jsonString(raw, fieldPath(path, "hash"))
	if err != nil {
		return err
	}
	h, err := ParseHash(s)
	if err != nil {
		return withPath(path, "hash", err)
	}
	if pb.HasClaimedHash && pb.ClaimedHash != h {
		return parseErr(fieldPath(path, "hash"), ErrMismatch, "the document states two different hashes")
	}
	pb.ClaimedHash, pb.HasClaimedHash = h, true
	return nil
}

// UnmarshalJSON parses a bare block object (see ParseBlockJSON for the
// rules); b is unchanged on error.
func (b *StateBlock) UnmarshalJSON(data []byte) error {
	obj, err := decodeObject(bytes.TrimSpace(data))
	if err != nil {
		return objectErr("", err)
	}
	pb, err := parseBlockObject(obj, "")
	if err != nil {
		return err
	}
	*b = pb.Block
	return nil
}

func parseBlockObject(obj map[string]json.RawMessage, path string) (ParsedBlock, error) {
	str := func(key string, required bool) (string, bool, error) {
		raw, ok := obj[key]
		if !ok {
			if required {
				return "", false, parseErr(fieldPath(path, key), ErrMissing, "")
			}
			return "", false, nil
		}
		s, err := jsonString(raw, fieldPath(path, key))
		return s, true, err
	}
	typ, _, err := str("type", true)
	if err != nil {
		return ParsedBlock{}, err
	}
	if typ != "state" {
		return ParsedBlock{}, parseErr(fieldPath(path, "type"), ErrNotStateBlock, "type is "+strconv.Quote(truncate(typ)))
	}
	var pb ParsedBlock
	b := &pb.Block

	fields := []struct {
		key   string
		parse func(string) error
	}{
		{"account", func(s string) (err error) { b.Account, err = ParseAccount(s); return }},
		{"previous", func(s string) (err error) { b.Previous, err = ParseHash(s); return }},
		{"representative", func(s string) (err error) { b.Representative, err = ParseAccount(s); return }},
		{"balance", func(s string) (err error) { b.Balance, err = parseRaw("balance", s); return }},
		{"link", func(s string) (err error) { b.Link, err = ParseHash(s); return }},
	}
	for _, f := range fields {
		s, _, err := str(f.key, true)
		if err != nil {
			return ParsedBlock{}, err
		}
		if err := f.parse(s); err != nil {
			return ParsedBlock{}, withPath(path, f.key, err)
		}
	}
	if s, ok, err := str("link_as_account", false); err != nil {
		return ParsedBlock{}, err
	} else if ok {
		k, err := ParseAddress(s)
		if err != nil {
			return ParsedBlock{}, withPath(path, "link_as_account", err)
		}
		if Hash(k) != b.Link {
			return ParsedBlock{}, parseErr(fieldPath(path, "link_as_account"), ErrMismatch, "does not encode link")
		}
	}
	if s, ok, err := str("signature", false); err != nil {
		return ParsedBlock{}, err
	} else if ok {
		if b.Signature, err = ParseSignature(s); err != nil {
			return ParsedBlock{}, withPath(path, "signature", err)
		}
		pb.HasSignature = true
	}
	if s, ok, err := str("work", false); err != nil {
		return ParsedBlock{}, err
	} else if ok {
		if b.Work, err = ParseWork(s); err != nil {
			return ParsedBlock{}, withPath(path, "work", err)
		}
		pb.HasWork = true
	}
	if err := claimHash(&pb, obj, path); err != nil {
		return ParsedBlock{}, err
	}
	return pb, nil
}

// decodeObject decodes one JSON object into its members, refusing
// duplicate keys and trailing data.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, parseErr("", ErrSyntax, jsonDetail(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, parseErr("", ErrSyntax, "not a JSON object")
	}
	obj := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, parseErr("", ErrSyntax, jsonDetail(err))
		}
		key, ok := tok.(string)
		if !ok {
			return nil, parseErr("", ErrSyntax, "object key is not a string")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, parseErr(key, ErrSyntax, jsonDetail(err))
		}
		if _, dup := obj[key]; dup {
			return nil, parseErr(key, ErrSyntax, "duplicate key")
		}
		obj[key] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, parseErr("", ErrSyntax, jsonDetail(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, parseErr("", ErrSyntax, "trailing data after the JSON object")
	}
	return obj, nil
}

func jsonString(raw json.RawMessage, field string) (string, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '"' {
		return "", parseErr(field, ErrSyntax, "must be a JSON string")
	}
	var s string
	if err := json.Unmarshal(t, &s); err != nil {
		return "", parseErr(field, ErrSyntax, "malformed JSON string")
	}
	return s, nil
}

func jsonDetail(err error) string {
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	case errors.As(err, &se):
		return "malformed JSON at offset " + strconv.FormatInt(se.Offset, 10)
	}
	return "malformed JSON"
}

// orBlock returns path, or "block" for the top level.
func orBlock(path string) string {
	if path == "" {
		return "block"
	}
	return path
}

func fieldPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// withPath sets a *ParseError's field to path.key when the parser did not
// name one, and prefixes path otherwise.
func withPath(path, key string, err error) error {
	var pe *ParseError
	if !errors.As(err, &pe) {
		return err
	}
	cp := *pe
	switch {
	case cp.Field == "" || cp.Field == key || isLeafName(cp.Field):
		cp.Field = fieldPath(path, key)
	default:
		cp.Field = fieldPath(path, cp.Field)
	}
	return &cp
}

// objectErr places a decodeObject error under path: at the member it
// names, or at path.block for the object as a whole.
func objectErr(path string, err error) error {
	var pe *ParseError
	if !errors.As(err, &pe) {
		return err
	}
	cp := *pe
	if cp.Field == "" {
		cp.Field = fieldPath(path, "block")
	} else {
		cp.Field = fieldPath(path, cp.Field)
	}
	return &cp
}

// isLeafName reports whether f is one of the generic field names the
// scalar parsers use, which the JSON field name replaces.
func isLeafName(f string) bool {
	switch f {
	case "hash", "public_key", "signature", "work", "account", "address", "amount", "balance":
		return true
	}
	return false
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// blockWire is the node's JSON form of a state block, in the node's key order.
type blockWire struct {
	Type           string `json:"type"`
	Account        string `json:"account"`
	Previous       string `json:"previous"`
	Representative string `json:"representative"`
	Balance        string `json:"balance"`
	Link           string `json:"link"`
	LinkAsAccount  string `json:"link_as_account"`
	Signature      string `json:"signature"`
	Work           string `json:"work"`
}

func (b *StateBlock) wire() blockWire {
	return blockWire{
		Type:           "state",
		Account:        b.Account.Address(),
		Previous:       b.Previous.String(),
		Representative: b.Representative.Address(),
		Balance:        b.Balance.String(),
		Link:           b.Link.String(),
		LinkAsAccount:  PublicKey(b.Link).Address(),
		Signature:      b.Signature.String(),
		Work:           b.Work.String(),
	}
}

// MarshalJSON prints b as the node does: every field a string, hex in
// uppercase except "work", accounts as nano_ addresses, and
// "link_as_account" beside "link".
func (b StateBlock) MarshalJSON() ([]byte, error) {
	return json.Marshal(b.wire())
}

// ProcessRequest returns the body of a node "process" RPC for b. With
// jsonBlock true the block is a JSON object and "json_block" is "true";
// otherwise the block is a JSON string, as older clients send it. subtype,
// unless SubtypeUnknown, is sent so the node checks it.
func ProcessRequest(b *StateBlock, subtype Subtype, jsonBlock bool) ([]byte, error) {
	type request struct {
		Action    string `json:"action"`
		JSONBlock string `json:"json_block,omitempty"`
		Subtype   string `json:"subtype,omitempty"`
		Block     any    `json:"block"`
	}
	req := request{Action: "process"}
	if subtype != SubtypeUnknown {
		req.Subtype = subtype.String()
	}
	if jsonBlock {
		req.JSONBlock = "true"
		req.Block = b.wire()
	} else {
		inner, err := json.MarshalIndent(b.wire(), "", "    ")
		if err != nil {
			return nil, err
		}
		req.Block = string(inner) + "\n"
	}
	return json.Marshal(req)
}
