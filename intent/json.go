package intent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// The JSON form of an intent (docs/PROTOCOL.md, "Intent JSON") is what a
// person reads before approving or signing: accounts as nano_ addresses,
// the amount in raw and in XNO, the source hash in hex. It is a view of
// the intent, not what approvals sign: they sign the canonical bytes,
// which the same intent has whichever JSON form it came in.

// MaxJSONLen bounds the JSON form UnmarshalJSON reads.
const MaxJSONLen = 64 << 10

// ErrMismatch is returned (wrapped in an *Error naming amount_xno) when an
// intent's JSON form states the amount in raw and in XNO and the two
// disagree.
var ErrMismatch = errors.New("fields disagree")

// jsonIntent is the JSON form MarshalJSON writes, in its key order.
type jsonIntent struct {
	RequestID      string `json:"request_id"`
	Kind           string `json:"kind"`
	Account        string `json:"account"`
	AmountRaw      string `json:"amount_raw,omitempty"`
	AmountXNO      string `json:"amount_xno,omitempty"`
	Destination    string `json:"destination,omitempty"`
	SourceHash     string `json:"source_hash,omitempty"`
	Representative string `json:"representative,omitempty"`
	ExpiresAtUnix  int64  `json:"expires_at_unix"`
}

// MarshalJSON returns p's JSON form: "kind" is send, receive or change;
// "account", "destination" and "representative" are nano_ addresses;
// "amount_raw" is the amount in raw and "amount_xno" the same amount in
// XNO (both decimal strings, exact); "source_hash" is 64 uppercase hex
// digits; "expires_at_unix" is a number. Absent fields are left out.
func (p Parsed) MarshalJSON() ([]byte, error) {
	out := jsonIntent{
		RequestID:     p.RequestID,
		Kind:          kindName(p.Kind),
		Account:       p.Account.Address(),
		ExpiresAtUnix: p.ExpiresAtUnix,
	}
	if p.flags&hasAmount != 0 {
		out.AmountRaw, out.AmountXNO = p.Amount.String(), p.Amount.XNO()
	}
	if p.flags&hasDestination != 0 {
		out.Destination = p.Destination.Address()
	}
	if p.flags&hasSource != 0 {
		out.SourceHash = p.Source.String()
	}
	if p.flags&hasRepresentative != 0 {
		out.Representative = p.Representative.Address()
	}
	return json.Marshal(out)
}

// MarshalJSON validates in (Parse) and returns its JSON form (see
// Parsed.MarshalJSON), indented by two spaces, with a final newline.
func MarshalJSON(in *pb.Intent) ([]byte, error) {
	p, err := Parse(in)
	if err != nil {
		return nil, err
	}
	compact, err := p.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, compact, "", "  "); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// Fields of the JSON form.
const (
	jRequestID = iota
	jKind
	jAccount
	jAmountRaw
	jAmountXNO
	jDestination
	jSourceHash
	jRepresentative
	jExpires
	jFields
)

// jsonNames are the fields' names, as errors give them.
var jsonNames = [jFields]string{"request_id", "kind", "account", "amount_raw", "amount_xno",
	"destination", "source_hash", "representative", "expires_at_unix"}

// jsonKeys are the keys accepted for each field: the snake_case names
// and the protobuf JSON mapping's lowerCamelCase ones.
var jsonKeys = func() map[string]int {
	m := map[string]int{}
	for i, n := range jsonNames {
		m[n] = i
		parts := strings.Split(n, "_")
		for j := 1; j < len(parts); j++ {
			parts[j] = strings.ToUpper(parts[j][:1]) + parts[j][1:]
		}
		m[strings.Join(parts, "")] = i
	}
	return m
}()

// UnmarshalJSON decodes an intent's JSON form: the one MarshalJSON writes,
// or the protobuf JSON mapping of nanokms.v1.Intent that nanokms wrote
// before it (base64 bytes, enum names, int64 as a string), or any mix of
// the two:
//
//   - keys in snake_case or lowerCamelCase, each at most once; no other key;
//   - "kind": send, receive, change, an IntentKind name or number;
//   - "account", "destination", "representative": a nano_ (or xrb_)
//     address, 64 hex digits, or base64 of the key;
//   - "source_hash": 64 hex digits, or base64;
//   - "amount_raw": a decimal string of raw; "amount_xno": a decimal
//     string of XNO (at most 30 decimal places). With both they must be
//     the same amount (an *Error naming amount_xno wrapping ErrMismatch);
//     with "amount_xno" alone the amount is its value in raw;
//   - "expires_at_unix": an integer, as a number or a decimal string;
//   - null is an absent field.
//
// It does not validate the intent (lengths, which fields each kind has):
// Parse does. Errors are *Error naming the field; they repeat nothing of
// the input but the amounts of an ErrMismatch (an unknown key is quoted
// only when short and printable).
func UnmarshalJSON(data []byte) (*pb.Intent, error) {
	if len(data) > MaxJSONLen {
		return nil, malformed("json", fmt.Sprintf("over %d bytes", MaxJSONLen))
	}
	raw, err := jsonMembers(data)
	if err != nil {
		return nil, err
	}
	in := new(pb.Intent)
	if in.RequestId, _, err = jsonStr(raw, jRequestID); err != nil {
		return nil, err
	}
	if in.Kind, err = jsonKind(raw[jKind]); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		field int
		dst   *[]byte
	}{{jAccount, &in.Account}, {jDestination, &in.Destination}, {jRepresentative, &in.Representative}, {jSourceHash, &in.SourceHash}} {
		s, ok, err := jsonStr(raw, f.field)
		if err != nil {
			return nil, err
		}
		if !ok || s == "" {
			continue
		}
		if *f.dst, err = jsonKey(f.field, s); err != nil {
			return nil, err
		}
	}
	if in.AmountRaw, err = jsonAmount(raw); err != nil {
		return nil, err
	}
	if in.ExpiresAtUnix, err = jsonInt64(raw[jExpires]); err != nil {
		return nil, err
	}
	return in, nil
}

// jsonMembers decodes one JSON object into the fields' raw values,
// refusing unknown and repeated keys and trailing data.
func jsonMembers(data []byte) ([jFields]json.RawMessage, error) {
	var raw [jFields]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	syntax := func(err error) error {
		var se *json.SyntaxError
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return malformed("json", "truncated")
		case errors.As(err, &se):
			return malformed("json", "malformed at offset "+strconv.FormatInt(se.Offset, 10))
		}
		return malformed("json", "malformed")
	}
	tok, err := dec.Token()
	if err != nil {
		return raw, syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return raw, malformed("json", "not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return raw, syntax(err)
		}
		key, _ := tok.(string)
		f, ok := jsonKeys[key]
		if !ok {
			name := key
			if len(name) > 32 || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r > '~' }) {
				name = "(a key not shown)"
			}
			return raw, malformed(strconv.Quote(name), "unknown field")
		}
		if raw[f] != nil {
			return raw, malformed(jsonNames[f], "given twice")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return raw, syntax(err)
		}
		raw[f] = v
	}
	if _, err := dec.Token(); err != nil {
		return raw, syntax(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return raw, malformed("json", "data after the JSON object")
	}
	return raw, nil
}

// isNull reports an absent or null value.
func isNull(v json.RawMessage) bool { return v == nil || string(bytes.TrimSpace(v)) == "null" }

// jsonStr returns field f as a string, and whether it was given.
func jsonStr(raw [jFields]json.RawMessage, f int) (string, bool, error) {
	v := raw[f]
	if isNull(v) {
		return "", false, nil
	}
	var s string
	if t := bytes.TrimSpace(v); len(t) == 0 || t[0] != '"' || json.Unmarshal(t, &s) != nil {
		return "", false, malformed(jsonNames[f], "must be a JSON string")
	}
	return s, true, nil
}

// jsonKind decodes "kind".
func jsonKind(v json.RawMessage) (pb.IntentKind, error) {
	if isNull(v) {
		return pb.IntentKind_INTENT_KIND_UNSPECIFIED, nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		switch s {
		case "send":
			return pb.IntentKind_INTENT_KIND_SEND, nil
		case "receive":
			return pb.IntentKind_INTENT_KIND_RECEIVE, nil
		case "change":
			return pb.IntentKind_INTENT_KIND_CHANGE, nil
		}
		if k, ok := pb.IntentKind_value[s]; ok {
			return pb.IntentKind(k), nil
		}
		return 0, malformed("kind", "must be send, receive or change")
	}
	var n int32
	if json.Unmarshal(v, &n) != nil {
		return 0, malformed("kind", "must be send, receive or change")
	}
	return pb.IntentKind(n), nil
}

// jsonKey decodes a 32-byte key or hash given as an address (keys only),
// 64 hex digits or base64. A base64 value of another length is returned
// as it is, for Parse to refuse by its length.
func jsonKey(f int, s string) ([]byte, error) {
	name := jsonNames[f]
	if strings.HasPrefix(s, nano.AddressPrefix) || strings.HasPrefix(s, nano.LegacyAddressPrefix) {
		if f == jSourceHash {
			return nil, malformed(name, "is an address: want the send block's hash (64 hex digits)")
		}
		k, err := nano.ParseAddress(s)
		if err != nil {
			return nil, malformed(name, "not a valid address: "+nanoReason(err))
		}
		return k[:], nil
	}
	if len(s) == 2*nano.HashSize {
		h, err := nano.ParseHash(s)
		if err != nil {
			return nil, malformed(name, "64 characters but not hex")
		}
		return h[:], nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	if f == jSourceHash {
		return nil, malformed(name, "want 64 hex digits (or base64)")
	}
	return nil, malformed(name, "want a nano_ address (or 64 hex digits, or base64)")
}

// nanoReason is what a nano parse error says, without the field or value.
func nanoReason(err error) string {
	var pe *nano.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return "invalid"
}

// jsonAmount returns the amount in raw from "amount_raw" and "amount_xno".
func jsonAmount(raw [jFields]json.RawMessage) (string, error) {
	rawStr, _, err := jsonStr(raw, jAmountRaw)
	if err != nil {
		return "", err
	}
	xnoStr, hasXNO, err := jsonStr(raw, jAmountXNO)
	if err != nil {
		return "", err
	}
	if !hasXNO || xnoStr == "" {
		return rawStr, nil
	}
	x, err := nano.ParseXNO(xnoStr)
	if err != nil {
		return "", &Error{Field: "amount_xno", Msg: "not a decimal number of XNO (at most 30 decimal places, below 2^128 raw)", Err: ErrAmount}
	}
	if rawStr == "" {
		return x.String(), nil
	}
	r, err := nano.ParseAmount(rawStr)
	if err != nil {
		return "", &Error{Field: "amount_raw", Msg: "not a decimal number of raw below 2^128", Err: ErrAmount}
	}
	if r != x {
		return "", &Error{Field: "amount_xno", Err: ErrMismatch,
			Msg: fmt.Sprintf("%s XNO is %s raw, but amount_raw is %s raw (%s XNO)", x.XNO(), x, r, r.XNO())}
	}
	return rawStr, nil
}

// jsonInt64 decodes "expires_at_unix": a JSON integer, or a decimal
// string as the protobuf JSON mapping writes an int64.
func jsonInt64(v json.RawMessage) (int64, error) {
	if isNull(v) {
		return 0, nil
	}
	t := bytes.TrimSpace(v)
	if len(t) > 0 && t[0] == '"' {
		var s string
		if json.Unmarshal(t, &s) != nil {
			return 0, malformed("expires_at_unix", "must be an integer")
		}
		t = []byte(s)
	}
	n, err := strconv.ParseInt(string(t), 10, 64)
	if err != nil {
		return 0, malformed("expires_at_unix", "must be an integer of Unix seconds")
	}
	return n, nil
}
