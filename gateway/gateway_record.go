package gateway

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// The gateway's durable record of one request, as stored in the requests
// bucket. Records are written in the binary form:
//
//	0x02 ‖ uvarint n ‖ view (n bytes) ‖ uvarint m ‖ wire (m bytes) ‖
//	digest (32 bytes) ‖ varint last sent (Unix ns, 0: never) ‖
//	flags (1 byte: bit 0 gathered) ‖ uvarint recoveries
//
// where view is the pb.Request the API shows and wire the
// pb.BridgeRequest written to the bridge, both protobuf. Records of
// earlier versions are JSON objects (gwRecord), read as before; a record
// is rewritten in the binary form when it next changes. (A gateway of an
// earlier version cannot read a record in the binary form.)

// recordFormat starts a record in the binary form (a JSON record starts
// with '{').
const recordFormat = 2

// gwRecord is the JSON form of a record, the first one.
type gwRecord struct {
	// View is the pb.Request the API shows.
	View []byte `json:"view"`
	// Wire is the pb.BridgeRequest written to the bridge.
	Wire []byte `json:"wire"`
	// Digest is the intent's digest (idempotency).
	Digest [32]byte `json:"digest"`
	// LastSent is when the request was last written to the bridge (Unix ns; 0: never).
	LastSent int64 `json:"last_sent"`
	// Gathered is true once Wire holds the head and source blocks.
	Gathered bool `json:"gathered"`
	// Recoveries counts requeues after a PENDING_BLOCK refusal.
	Recoveries int `json:"recoveries,omitempty"`
}

// entry is a decoded record.
type entry struct {
	view       *pb.Request
	wire       *pb.BridgeRequest
	digest     [32]byte
	lastSent   time.Time
	gathered   bool
	recoveries int
}

// errCorruptRecord is wrapped by the error of a record that does not
// decode.
var errCorruptRecord = errors.New("gateway: corrupt gateway record")

func decodeRecord(data []byte) (*entry, error) {
	if len(data) > 0 && data[0] == '{' {
		return decodeJSONRecord(data)
	}
	corrupt := func(what string) (*entry, error) { return nil, fmt.Errorf("%w: %s", errCorruptRecord, what) }
	if len(data) == 0 || data[0] != recordFormat {
		return corrupt("unknown format")
	}
	b := data[1:]
	field := func() ([]byte, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, false
		}
		f := b[k : k+int(n)]
		b = b[k+int(n):]
		return f, true
	}
	view, ok := field()
	if !ok {
		return corrupt("view")
	}
	wire, ok := field()
	if !ok {
		return corrupt("wire")
	}
	e := &entry{view: new(pb.Request), wire: new(pb.BridgeRequest)}
	if len(b) < len(e.digest) {
		return corrupt("digest")
	}
	copy(e.digest[:], b)
	b = b[len(e.digest):]
	lastSent, k := binary.Varint(b)
	if k <= 0 {
		return corrupt("last sent")
	}
	b = b[k:]
	if len(b) < 1 || b[0]&^1 != 0 {
		return corrupt("flags")
	}
	e.gathered = b[0]&1 != 0
	b = b[1:]
	recoveries, k := binary.Uvarint(b)
	if k <= 0 || recoveries > 1<<20 {
		return corrupt("recoveries")
	}
	if len(b) != k {
		return corrupt("trailing bytes")
	}
	e.recoveries = int(recoveries)
	if lastSent != 0 {
		e.lastSent = time.Unix(0, lastSent)
	}
	if err := proto.Unmarshal(view, e.view); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorruptRecord, err)
	}
	if err := proto.Unmarshal(wire, e.wire); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorruptRecord, err)
	}
	return e, nil
}

func decodeJSONRecord(data []byte) (*entry, error) {
	var r gwRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorruptRecord, err)
	}
	e := &entry{view: new(pb.Request), wire: new(pb.BridgeRequest), digest: r.Digest, gathered: r.Gathered, recoveries: r.Recoveries}
	if err := proto.Unmarshal(r.View, e.view); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorruptRecord, err)
	}
	if err := proto.Unmarshal(r.Wire, e.wire); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorruptRecord, err)
	}
	if r.LastSent != 0 {
		e.lastSent = time.Unix(0, r.LastSent)
	}
	return e, nil
}

// encodeRecord returns e in the binary form.
func encodeRecord(e *entry) ([]byte, error) {
	view, err := proto.Marshal(e.view)
	if err != nil {
		return nil, err
	}
	wire, err := proto.Marshal(e.wire)
	if err != nil {
		return nil, err
	}
	if e.recoveries < 0 {
		return nil, fmt.Errorf("gateway: %d recoveries", e.recoveries)
	}
	out := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(view)+len(wire)+len(e.digest)+binary.MaxVarintLen64+1+binary.MaxVarintLen64)
	out = append(out, recordFormat)
	out = binary.AppendUvarint(out, uint64(len(view)))
	out = append(out, view...)
	out = binary.AppendUvarint(out, uint64(len(wire)))
	out = append(out, wire...)
	out = append(out, e.digest[:]...)
	var last int64
	if !e.lastSent.IsZero() {
		last = e.lastSent.UnixNano()
	}
	out = binary.AppendVarint(out, last)
	var flags byte
	if e.gathered {
		flags = 1
	}
	out = append(out, flags)
	return binary.AppendUvarint(out, uint64(e.recoveries)), nil
}
