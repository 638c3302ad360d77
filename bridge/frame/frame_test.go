package frame_test

import (
	"bytes"
	"encoding/hex"
	"github.com/nanokms/nanokms/bridge/serial"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

func TestFrameRoundTrip(t *testing.T) {
	hb, err := frame.NewHeartbeatFrame(&pb.Heartbeat{Sender: "relay", Seq: 5, Queued: 1}, frametest.Time)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := frame.NewResponseFrame(frametest.Response("r-1"), frametest.Time)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := frame.NewRefusalFrame("r-2", &pb.BridgeRefusal{Reason: pb.RefusalReason_REFUSAL_REASON_EXPIRED, Detail: "too late", Code: "FAILED_PRECONDITION"}, frametest.Time)
	if err != nil {
		t.Fatal(err)
	}
	frames := []*frame.Frame{frametest.RequestFrame(t, "r-0", frametest.Time), resp, ref, hb,
		{Type: frame.TypeRefusal, RequestID: strings.Repeat("x", frame.MaxRequestID), Created: time.UnixMilli(-1)},
		{Type: frame.TypeRequest, RequestID: "a.b_c-d-E9", Created: time.UnixMilli(1<<62 + 3), Payload: bytes.Repeat([]byte{0}, frame.MaxPayload)},
	}
	for _, f := range frames {
		t.Run(f.Type.String()+"/"+f.RequestID[:min(len(f.RequestID), 10)], func(t *testing.T) {
			b := frametest.MustMarshal(t, f)
			g, err := frame.DecodeFrame(b)
			if err != nil {
				t.Fatal(err)
			}
			if !frametest.SameFrame(f, g) {
				t.Fatalf("round trip changed the frame: %+v → %+v", f, g)
			}
			if !bytes.Equal(frametest.MustMarshal(t, g), b) {
				t.Fatal("re-encoding differs")
			}
			// The payload is a copy.
			if len(b) > 40 {
				b[len(b)-5] ^= 0xFF
				if len(g.Payload) > 0 && g.Payload[len(g.Payload)-1] == b[len(b)-5] {
					t.Fatal("payload aliases the input")
				}
			}
			// The payload decodes as its type's message.
			if len(f.Payload) > 0 && f.Payload[0] != 0 {
				if _, err := frame.DecodePayload(g); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestDecodeFrameErrors(t *testing.T) {
	good := frametest.MustMarshal(t, &frame.Frame{Type: frame.TypeHeartbeat, RequestID: "relay", Created: frametest.Time, Payload: []byte{8, 1}})
	// good: magic 0-3, version 4, type 5, id length 6, id 7-11, created 12-19, length 20-23, payload 24-25, CRC 26-29.
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	withCRC := func(b []byte) []byte {
		n := len(b) - 4
		return append(b[:n], frametest.CRC(b[:n])...)
	}
	cases := []struct {
		name string
		in   []byte
		code frame.WireError
	}{
		{"empty", nil, frame.ErrCodeTruncated},
		{"short header", good[:10], frame.ErrCodeTruncated},
		{"magic", edit(func(b []byte) []byte { b[0] = 'X'; return withCRC(b) }), frame.ErrCodeMagic},
		{"version 0", edit(func(b []byte) []byte { b[4] = 0; return withCRC(b) }), frame.ErrCodeVersion},
		{"version 2", edit(func(b []byte) []byte { b[4] = 2; return withCRC(b) }), frame.ErrCodeVersion},
		{"type 0", edit(func(b []byte) []byte { b[5] = 0; return withCRC(b) }), frame.ErrCodeType},
		{"type 5", edit(func(b []byte) []byte { b[5] = 5; return withCRC(b) }), frame.ErrCodeType},
		{"id length 0", edit(func(b []byte) []byte { b[6] = 0; return withCRC(b) }), frame.ErrCodeRequestID},
		{"id length 65", edit(func(b []byte) []byte { b[6] = 65; return withCRC(b) }), frame.ErrCodeRequestID},
		{"id length past the end", edit(func(b []byte) []byte { b[6] = 60; return withCRC(b) }), frame.ErrCodeTruncated},
		{"id slash", edit(func(b []byte) []byte { b[8] = '/'; return withCRC(b) }), frame.ErrCodeRequestID},
		{"id dot dot", withCRC(append(append([]byte(frame.Magic), 1, 4, 2, '.', '.'), make([]byte, 16)...)), frame.ErrCodeRequestID},
		{"id beginning with a dot", edit(func(b []byte) []byte { b[7] = '.'; return withCRC(b) }), frame.ErrCodeRequestID},
		{"payload too long", edit(func(b []byte) []byte { b[21] = 0x01; return withCRC(b) }), frame.ErrCodeLength},
		{"payload length past the end", edit(func(b []byte) []byte { b[23] = 3; return withCRC(b) }), frame.ErrCodeTruncated},
		{"missing CRC byte", good[:len(good)-1], frame.ErrCodeTruncated},
		{"trailing byte", append(append([]byte(nil), good...), 0), frame.ErrCodeTrailing},
		{"CRC", edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), frame.ErrCodeChecksum},
		{"payload bit", edit(func(b []byte) []byte { b[24] ^= 0x80; return b }), frame.ErrCodeChecksum},
		{"created bit", edit(func(b []byte) []byte { b[15] ^= 0x02; return b }), frame.ErrCodeChecksum},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := frame.DecodeFrame(c.in)
			if f != nil {
				t.Fatalf("decoded %+v", f)
			}
			frametest.WantCode(t, err, c.code)
		})
	}
	if _, err := frame.DecodeFrame(good); err != nil {
		t.Fatalf("the unedited frame: %v", err)
	}
}

func TestMarshalRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		f    frame.Frame
		code frame.WireError
	}{
		{"type", frame.Frame{Type: 9, RequestID: "a"}, frame.ErrCodeType},
		{"empty id", frame.Frame{Type: frame.TypeRequest}, frame.ErrCodeRequestID},
		{"long id", frame.Frame{Type: frame.TypeRequest, RequestID: strings.Repeat("a", 65)}, frame.ErrCodeRequestID},
		{"space in id", frame.Frame{Type: frame.TypeRequest, RequestID: "a b"}, frame.ErrCodeRequestID},
		{"id beginning with a dot", frame.Frame{Type: frame.TypeRequest, RequestID: ".wd-1"}, frame.ErrCodeRequestID},
		{"id like a temporary file", frame.Frame{Type: frame.TypeRequest, RequestID: ".tmp-wd-1"}, frame.ErrCodeRequestID},
		{"dot id", frame.Frame{Type: frame.TypeHeartbeat, RequestID: "."}, frame.ErrCodeRequestID},
		{"payload", frame.Frame{Type: frame.TypeRequest, RequestID: "a", Payload: make([]byte, frame.MaxPayload+1)}, frame.ErrCodeLength},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.f.MarshalBinary()
			if b != nil {
				t.Fatal("returned bytes")
			}
			frametest.WantCode(t, err, c.code)
		})
	}
}

// TestEveryPrefixAndBitFlip checks that no proper prefix of a real frame,
// and no single bit flip anywhere in it, decodes.
func TestEveryPrefixAndBitFlip(t *testing.T) {
	b := frametest.MustMarshal(t, frametest.RequestFrame(t, "withdrawal-2026-0001", frametest.Time))
	for n := range len(b) {
		if _, err := frame.DecodeFrame(b[:n]); err == nil {
			t.Fatalf("prefix of %d bytes decoded", n)
		}
	}
	for i := range len(b) {
		for bit := range 8 {
			c := append([]byte(nil), b...)
			c[i] ^= 1 << bit
			if _, err := frame.DecodeFrame(c); err == nil {
				t.Fatalf("flip of bit %d of byte %d decoded", bit, i)
			}
		}
	}
}

// TestSendRequestSize is the size target: a send with two approvals is at
// most 700 bytes on the wire, as a file and as a COBS-encoded serial frame.
func TestSendRequestSize(t *testing.T) {
	const target = 700
	f := frametest.RequestFrame(t, "withdrawal-2026-0001", frametest.Time) // a 20-character request id
	b := frametest.MustMarshal(t, f)
	wire, err := serial.AppendSerialFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("send with two approvals: payload %d bytes, frame (file) %d bytes, serial %d bytes", len(f.Payload), len(b), len(wire))
	if len(b) > target {
		t.Errorf("frame is %d bytes, want ≤ %d", len(b), target)
	}
	if len(wire) > target {
		t.Errorf("serial frame is %d bytes, want ≤ %d", len(wire), target)
	}
	// The budget assumes the largest amount (39 digits), attempt count and
	// leader epoch.
	req := frametest.SendRequest(t, "withdrawal-2026-0001")
	req.Sign.Intent.AmountRaw = "340282366920938463463374607431768211455"
	req.Attempt = 1 << 31
	req.LeaderEpoch = 1<<64 - 1 // the largest leader epoch: 10 bytes of varint
	f, err = frame.NewRequestFrame(req, frametest.Time)
	if err != nil {
		t.Fatal(err)
	}
	if wire, _ := serial.AppendSerialFrame(nil, f); len(wire) > target {
		t.Errorf("largest send: serial frame is %d bytes, want ≤ %d", len(wire), target)
	}
}

func TestDecodePayload(t *testing.T) {
	req := frametest.SendRequest(t, "r-1")
	f, err := frame.NewRequestFrame(req, frametest.Time)
	if err != nil {
		t.Fatal(err)
	}
	m, err := frame.DecodePayload(f)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m, req) {
		t.Fatal("request payload changed")
	}
	if !f.Created.Equal(frametest.Time) {
		t.Fatalf("created %v", f.Created)
	}

	resp, err := frame.NewResponseFrame(frametest.Response("r-1"), frametest.Time)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := frame.DecodePayload(resp); err != nil || m.(*pb.BridgeResponse).GetSign().GetSubtype() != "send" {
		t.Fatalf("response: %v %v", m, err)
	}

	// Another request id inside the payload than in the header.
	lie := *f
	lie.RequestID = "r-2"
	_, err = frame.DecodePayload(&lie)
	frametest.WantCode(t, err, frame.ErrCodeMismatch)
	lie = *resp
	lie.RequestID = "r-2"
	_, err = frame.DecodePayload(&lie)
	frametest.WantCode(t, err, frame.ErrCodeMismatch)

	// A payload that is not protobuf, and one of the wrong message.
	_, err = frame.DecodePayload(&frame.Frame{Type: frame.TypeRequest, RequestID: "r-1", Payload: []byte{0xFF, 0xFF}})
	frametest.WantCode(t, err, frame.ErrCodePayload)
	_, err = frame.DecodePayload(&frame.Frame{Type: frame.TypeRequest, RequestID: "r-1", Payload: nil})
	frametest.WantCode(t, err, frame.ErrCodePayload) // no request id
	_, err = frame.DecodePayload(&frame.Frame{Type: frame.TypeResponse, RequestID: "r-1", Payload: f.Payload})
	if err == nil {
		t.Fatal("a request payload decoded as a response")
	}
	_, err = frame.DecodePayload(&frame.Frame{Type: 7, RequestID: "r-1"})
	frametest.WantCode(t, err, frame.ErrCodeType)

	// Refusals and heartbeats carry no request id of their own.
	ref, err := frame.NewRefusalFrame("r-3", &pb.BridgeRefusal{Code: string(frame.RefusalRelayMalformed)}, frametest.Time)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := frame.DecodePayload(ref); err != nil || m.(*pb.BridgeRefusal).GetCode() != string(frame.RefusalRelayMalformed) {
		t.Fatalf("refusal: %v %v", m, err)
	}

	// Constructors refuse ids that cannot be framed.
	bad := frametest.SendRequest(t, "r")
	bad.Sign.Intent.RequestId = "no spaces allowed"
	_, err = frame.NewRequestFrame(bad, frametest.Time)
	frametest.WantCode(t, err, frame.ErrCodeRequestID)
	bad.Sign.Intent.RequestId = ".hidden"
	_, err = frame.NewRequestFrame(bad, frametest.Time)
	frametest.WantCode(t, err, frame.ErrCodeRequestID)
	_, err = frame.NewRefusalFrame(".hidden", &pb.BridgeRefusal{}, frametest.Time)
	frametest.WantCode(t, err, frame.ErrCodeRequestID)
	_, err = frame.NewHeartbeatFrame(&pb.Heartbeat{}, frametest.Time)
	frametest.WantCode(t, err, frame.ErrCodeRequestID)
	_, err = frame.NewRefusalFrame("r", &pb.BridgeRefusal{Detail: strings.Repeat("x", frame.MaxPayload)}, frametest.Time)
	frametest.WantCode(t, err, frame.ErrCodeLength)
}

// TestSpecVector checks the worked example in FRAMES.md against the code,
// so that the spec and the implementation cannot drift apart.
func TestSpecVector(t *testing.T) {
	spec, err := os.ReadFile("FRAMES.md")
	if err != nil {
		t.Fatal(err)
	}
	block := func(name string) []byte {
		t.Helper()
		re := regexp.MustCompile("(?s)<!-- " + name + " -->\\s*```\\n(.*?)```")
		m := re.FindSubmatch(spec)
		if m == nil {
			t.Fatalf("FRAMES.md has no %s block", name)
		}
		var hexDigits strings.Builder
		for _, line := range strings.Split(string(m[1]), "\n") {
			line, _, _ = strings.Cut(line, "#")
			hexDigits.WriteString(strings.Join(strings.Fields(line), ""))
		}
		b, err := hex.DecodeString(hexDigits.String())
		if err != nil {
			t.Fatalf("%s block: %v", name, err)
		}
		return b
	}
	f, err := frame.NewHeartbeatFrame(&pb.Heartbeat{Sender: "relay", Seq: 7, Queued: 2}, time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	wantFrame := frametest.MustMarshal(t, f)
	wantSerial, err := serial.AppendSerialFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	if got := block("vector-frame"); !bytes.Equal(got, wantFrame) {
		t.Errorf("FRAMES.md frame vector:\n got %x\nwant %x", got, wantFrame)
	}
	if got := block("vector-serial"); !bytes.Equal(got, wantSerial) {
		t.Errorf("FRAMES.md serial vector:\n got %x\nwant %x", got, wantSerial)
	}
	g, err := frame.DecodeFrame(wantFrame)
	if err != nil || !frametest.SameFrame(f, g) {
		t.Fatalf("vector does not decode: %v", err)
	}
}
