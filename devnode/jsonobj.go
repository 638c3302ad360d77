package devnode

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/nanokms/nanokms/nano"
)

// member is one key of an object, in order.
type member struct {
	k string
	v any
}

// object is a JSON object whose keys keep their order, as the node's
// responses do.
type object []member

func (o object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(strconv.Quote(m.k))
		buf.WriteByte(':')
		v, err := marshal(m.v)
		if err != nil {
			return nil, err
		}
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// marshal encodes v compactly without HTML escaping.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// mustMarshal encodes values built here, which cannot fail to encode.
func mustMarshal(v any) []byte {
	b, err := marshal(v)
	if err != nil {
		panic("devnode: encoding a response: " + err.Error())
	}
	return b
}

// errorBody is the node's error response.
func errorBody(msg string) []byte {
	return mustMarshal(object{{"error", msg}})
}

// blockObject is a state block as the node prints it, key for key.
func blockObject(b *nano.StateBlock) object {
	return object{
		{"type", "state"},
		{"account", b.Account.Address()},
		{"previous", b.Previous.String()},
		{"representative", b.Representative.Address()},
		{"balance", b.Balance.String()},
		{"link", b.Link.String()},
		{"link_as_account", nano.PublicKey(b.Link).Address()},
		{"signature", b.Signature.String()},
		{"work", b.Work.String()},
	}
}

// blockString is the block as the node prints it inside a JSON string
// ("contents", "block"): indented by four spaces, with a final newline.
func blockString(b *nano.StateBlock) string {
	var out bytes.Buffer
	if err := json.Indent(&out, mustMarshal(blockObject(b)), "", "    "); err != nil {
		panic("devnode: indenting a block: " + err.Error())
	}
	out.WriteByte('\n')
	return out.String()
}

// hex16 prints a 64-bit difficulty or work value as the node does: 16
// lowercase hex digits.
func hex16(v uint64) string {
	return nano.Work(v).String()
}
