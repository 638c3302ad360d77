package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/nanokms/nanokms/intent"
)

// Frame layout (FRAMES.md):
//
//	magic "NKBF" ‖ u8 version ‖ u8 type ‖ u8 id length ‖ id ‖
//	i64 created (Unix ms) ‖ u32 payload length ‖ payload ‖ u32 CRC-32C
//
// All integers are big-endian; the CRC covers every byte before it.
const (
	Magic          = "NKBF"
	Version        = 1
	MaxRequestID   = intent.MaxRequestIDLen
	MaxPayload     = 64 << 10
	HeaderLen      = 4 + 1 + 1 + 1 + 8 + 4 // without the id
	trailerLen     = 4
	MaxFrameLength = HeaderLen + MaxRequestID + MaxPayload + trailerLen
)

// FrameType is what a frame carries.
type FrameType uint8

// The frame types.
const (
	TypeRequest   FrameType = 1 // hot → cold: a BridgeRequest
	TypeResponse  FrameType = 2 // cold → hot: a BridgeResponse
	TypeRefusal   FrameType = 3 // cold → hot: a BridgeRefusal
	TypeHeartbeat FrameType = 4 // either way: a Heartbeat
)

// String returns the type's name as file names use it.
func (t FrameType) String() string {
	switch t {
	case TypeRequest:
		return "request"
	case TypeResponse:
		return "response"
	case TypeRefusal:
		return "refusal"
	case TypeHeartbeat:
		return "heartbeat"
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// ParseFrameType parses a type name as String prints it.
func ParseFrameType(s string) (FrameType, bool) {
	for t := TypeRequest; t <= TypeHeartbeat; t++ {
		if t.String() == s {
			return t, true
		}
	}
	return 0, false
}

// Frame is one unit on the bridge.
type Frame struct {
	Type      FrameType
	RequestID string    // as intent.CheckRequestID: 1–64 of [A-Za-z0-9._-], not beginning with '.'; for heartbeats, the sender
	Created   time.Time // when the sender made the frame (millisecond precision)
	Payload   []byte    // a protobuf message of the type's kind
}

// WireError is the closed set of reasons a frame is refused.
type WireError uint8

// The wire errors.
const (
	ErrCodeTruncated WireError = 1 // fewer bytes than the header and lengths say
	ErrCodeMagic     WireError = 2 // not "NKBF"
	ErrCodeVersion   WireError = 3 // a version this build does not read
	ErrCodeType      WireError = 4 // an unknown frame type
	ErrCodeRequestID WireError = 5 // empty, too long or with forbidden characters
	ErrCodeLength    WireError = 6 // payload length above MaxPayload
	ErrCodeChecksum  WireError = 7 // CRC-32C mismatch
	ErrCodeTrailing  WireError = 8 // bytes after the checksum
	ErrCodePayload   WireError = 9 // the payload does not decode as its type's message
	ErrCodeExpired   WireError = 10
	ErrCodeFuture    WireError = 11
	ErrCodeMismatch  WireError = 12 // the payload contradicts the header (e.g. another request id)
	ErrCodeFileName  WireError = 13 // a file name that does not match its frame
	ErrCodeCOBS      WireError = 14 // a serial frame whose COBS encoding is broken
)

var wireErrorNames = map[WireError]string{
	ErrCodeTruncated: "truncated", ErrCodeMagic: "bad magic", ErrCodeVersion: "unsupported version",
	ErrCodeType: "unknown type", ErrCodeRequestID: "bad request id", ErrCodeLength: "payload too long",
	ErrCodeChecksum: "checksum mismatch", ErrCodeTrailing: "trailing bytes", ErrCodePayload: "bad payload",
	ErrCodeExpired: "expired", ErrCodeFuture: "from the future", ErrCodeMismatch: "payload contradicts header",
	ErrCodeFileName: "file name does not match the frame", ErrCodeCOBS: "bad COBS encoding",
}

// String returns the error's name.
func (c WireError) String() string {
	if s, ok := wireErrorNames[c]; ok {
		return s
	}
	return fmt.Sprintf("wire error %d", uint8(c))
}

// FrameError reports a refused frame. Branch on Code.
type FrameError struct {
	Code   WireError
	Detail string
}

// Error implements error.
func (e *FrameError) Error() string {
	if e.Detail == "" {
		return "frame: frame refused: " + e.Code.String()
	}
	return "frame: frame refused: " + e.Code.String() + ": " + e.Detail
}

// Is matches another *FrameError with the same code.
func (e *FrameError) Is(target error) bool {
	var t *FrameError
	return errors.As(target, &t) && t.Code == e.Code
}

func Errorf(c WireError, format string, a ...any) error {
	return &FrameError{Code: c, Detail: fmt.Sprintf(format, a...)}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ValidRequestID reports whether id may appear in a frame (and a file
// name): the rule is intent.CheckRequestID's, the one rule for request
// ids on both sides of the bridge.
func ValidRequestID(id string) bool {
	return intent.CheckRequestID(id) == nil
}

// requestIDErr returns the *FrameError (ErrCodeRequestID) for an id
// ValidRequestID refuses, saying why. The id itself is quoted.
func requestIDErr(id string) error {
	detail := "invalid"
	var ie *intent.Error
	if errors.As(intent.CheckRequestID(id), &ie) {
		detail = ie.Msg
	}
	return Errorf(ErrCodeRequestID, "%q: %s", id, detail)
}

// MarshalBinary encodes f. It fails for a frame that DecodeFrame would refuse.
func (f *Frame) MarshalBinary() ([]byte, error) {
	if f.Type < TypeRequest || f.Type > TypeHeartbeat {
		return nil, Errorf(ErrCodeType, "%d", f.Type)
	}
	if !ValidRequestID(f.RequestID) {
		return nil, requestIDErr(f.RequestID)
	}
	if len(f.Payload) > MaxPayload {
		return nil, Errorf(ErrCodeLength, "%d bytes", len(f.Payload))
	}
	out := make([]byte, 0, HeaderLen+len(f.RequestID)+len(f.Payload)+trailerLen)
	out = append(out, Magic...)
	out = append(out, Version, byte(f.Type), byte(len(f.RequestID)))
	out = append(out, f.RequestID...)
	out = binary.BigEndian.AppendUint64(out, uint64(f.Created.UnixMilli()))
	out = binary.BigEndian.AppendUint32(out, uint32(len(f.Payload)))
	out = append(out, f.Payload...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli)), nil
}

// DecodeFrame decodes exactly one frame from b. Every length is checked
// against b and its bound before anything is allocated or copied; the
// checksum is checked before the frame is returned. Errors are
// *FrameError. The payload is a copy: b may be reused.
func DecodeFrame(b []byte) (*Frame, error) {
	if len(b) < HeaderLen+trailerLen {
		return nil, Errorf(ErrCodeTruncated, "%d bytes", len(b))
	}
	if string(b[:4]) != Magic {
		return nil, Errorf(ErrCodeMagic, "")
	}
	if b[4] != Version {
		return nil, Errorf(ErrCodeVersion, "version %d", b[4])
	}
	typ := FrameType(b[5])
	if typ < TypeRequest || typ > TypeHeartbeat {
		return nil, Errorf(ErrCodeType, "%d", b[5])
	}
	idLen := int(b[6])
	if idLen == 0 || idLen > MaxRequestID {
		return nil, Errorf(ErrCodeRequestID, "length %d", idLen)
	}
	if len(b) < HeaderLen+idLen+trailerLen {
		return nil, Errorf(ErrCodeTruncated, "%d bytes", len(b))
	}
	id := string(b[7 : 7+idLen])
	if !ValidRequestID(id) {
		return nil, requestIDErr(id)
	}
	p := 7 + idLen
	created := int64(binary.BigEndian.Uint64(b[p:]))
	plen := binary.BigEndian.Uint32(b[p+8:])
	if plen > MaxPayload {
		return nil, Errorf(ErrCodeLength, "%d bytes", plen)
	}
	body := p + 12
	end := body + int(plen)
	if len(b) < end+trailerLen {
		return nil, Errorf(ErrCodeTruncated, "payload says %d bytes, %d present", plen, max(0, len(b)-body-trailerLen))
	}
	if len(b) > end+trailerLen {
		return nil, Errorf(ErrCodeTrailing, "%d bytes", len(b)-end-trailerLen)
	}
	if got, want := crc32.Checksum(b[:end], castagnoli), binary.BigEndian.Uint32(b[end:]); got != want {
		return nil, Errorf(ErrCodeChecksum, "")
	}
	return &Frame{
		Type:      typ,
		RequestID: id,
		Created:   time.UnixMilli(created),
		Payload:   append([]byte(nil), b[body:end]...),
	}, nil
}
