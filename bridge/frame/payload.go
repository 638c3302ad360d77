package frame

import (
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Payloads (FRAMES.md, "Payloads"): each frame type carries one protobuf
// message of proto/nanokms/v1/bridge.proto.
//
//	request   BridgeRequest   header id = sign.intent.request_id
//	response  BridgeResponse  header id = sign.request_id
//	refusal   BridgeRefusal   header id = the refused request's id
//	heartbeat Heartbeat       header id = the sender ("relay", "gateway")
//
// Marshalling is deterministic so that a resend of the same message is
// byte-for-byte the same payload.

var marshalOpts = proto.MarshalOptions{Deterministic: true}

// NewRequestFrame returns the request frame for req, created at now. The
// frame's request id is req.Sign.Intent.RequestId. It fails with a
// *FrameError (ErrCodeRequestID, ErrCodePayload or ErrCodeLength) when
// that id is not a valid request id or the message does not fit a frame.
func NewRequestFrame(req *pb.BridgeRequest, now time.Time) (*Frame, error) {
	return newFrame(TypeRequest, req.GetSign().GetIntent().GetRequestId(), req, now)
}

// NewResponseFrame returns the response frame for resp, created at now.
// The frame's request id is resp.Sign.RequestId.
func NewResponseFrame(resp *pb.BridgeResponse, now time.Time) (*Frame, error) {
	return newFrame(TypeResponse, resp.GetSign().GetRequestId(), resp, now)
}

// NewRefusalFrame returns the refusal frame answering requestID, created
// at now.
func NewRefusalFrame(requestID string, ref *pb.BridgeRefusal, now time.Time) (*Frame, error) {
	return newFrame(TypeRefusal, requestID, ref, now)
}

// NewHeartbeatFrame returns a heartbeat frame, created at now, whose
// request id is hb.Sender (so a file bridge keeps one heartbeat file per
// sender, each replacing the last).
func NewHeartbeatFrame(hb *pb.Heartbeat, now time.Time) (*Frame, error) {
	return newFrame(TypeHeartbeat, hb.GetSender(), hb, now)
}

func newFrame(t FrameType, id string, m proto.Message, now time.Time) (*Frame, error) {
	if !ValidRequestID(id) {
		return nil, requestIDErr(id)
	}
	payload, err := marshalOpts.Marshal(m)
	if err != nil {
		return nil, Errorf(ErrCodePayload, "%v", err)
	}
	if len(payload) > MaxPayload {
		return nil, Errorf(ErrCodeLength, "%d bytes", len(payload))
	}
	return &Frame{Type: t, RequestID: id, Created: now.Truncate(time.Millisecond), Payload: payload}, nil
}

// DecodePayload unmarshals f's payload as its type's message: a
// *BridgeRequest, *BridgeResponse, *BridgeRefusal or *Heartbeat. For a
// request or a response it also checks that the request id inside the
// payload is the header's. Errors are *FrameError with ErrCodePayload (the
// payload does not decode, or lacks the message that carries the id),
// ErrCodeMismatch (another request id) or ErrCodeType.
func DecodePayload(f *Frame) (proto.Message, error) {
	var (
		m  proto.Message
		id func() string
	)
	switch f.Type {
	case TypeRequest:
		r := new(pb.BridgeRequest)
		m, id = r, func() string { return r.GetSign().GetIntent().GetRequestId() }
	case TypeResponse:
		r := new(pb.BridgeResponse)
		m, id = r, func() string { return r.GetSign().GetRequestId() }
	case TypeRefusal:
		m = new(pb.BridgeRefusal)
	case TypeHeartbeat:
		m = new(pb.Heartbeat)
	default:
		return nil, Errorf(ErrCodeType, "%d", uint8(f.Type))
	}
	if err := proto.Unmarshal(f.Payload, m); err != nil {
		return nil, Errorf(ErrCodePayload, "%s: %v", f.Type, err)
	}
	if id != nil {
		got := id()
		if got == "" {
			return nil, Errorf(ErrCodePayload, "%s: no request id in the payload", f.Type)
		}
		if got != f.RequestID {
			return nil, Errorf(ErrCodeMismatch, "payload request id %q, header %q", truncateID(got), f.RequestID)
		}
	}
	return m, nil
}

// truncateID shortens an untrusted id for an error message.
func truncateID(s string) string {
	if len(s) > MaxRequestID {
		return s[:MaxRequestID] + "…"
	}
	return s
}
