package coldbridge

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// fixTime is the creation time of the fixtures' frames.
var fixTime = time.Date(2026, 11, 25, 10, 30, 0, 123_000_000, time.UTC)

// fixKey returns a deterministic 32-byte value for label.
func fixKey(label string) []byte {
	var seed [32]byte
	copy(seed[:], label)
	return seed[:]
}

// fixSendRequest returns a realistic send request: an intent with a
// request id of the given form, a signed head block and two approvals by
// real Ed25519 keys, no template.
func fixSendRequest(tb testing.TB, id string) *pb.BridgeRequest {
	tb.Helper()
	var seed nano.Seed
	copy(seed[:], fixKey("wallet seed"))
	priv := nano.DeriveKey(&seed, 3)
	account := priv.PublicKey()
	balance, err := nano.ParseAmount("250000000000000000000000000000000") // 250 XNO
	if err != nil {
		tb.Fatal(err)
	}
	head := nano.StateBlock{
		Account:        account,
		Previous:       nano.Hash(fixKey("previous block")),
		Representative: nano.PublicKey(fixKey("representative")),
		Balance:        balance,
		Link:           nano.Hash(fixKey("some source")),
	}
	h := head.Hash()
	head.Signature = nano.Sign(&priv, h[:])
	in := &pb.Intent{
		RequestId:     id,
		Kind:          pb.IntentKind_INTENT_KIND_SEND,
		Account:       account[:],
		AmountRaw:     "12345678901234567890123456789012", // 12.3… XNO
		Destination:   fixKey("destination"),
		ExpiresAtUnix: fixTime.Add(time.Hour).Unix(),
	}
	req := &pb.BridgeRequest{
		Sign: &pb.SignRequest{
			Intent: in,
			Head:   pb.BlockFromNano(&head),
		},
		Attempt: 1,
	}
	for _, label := range []string{"withdrawal service", "human approver"} {
		a, err := intent.Approve(ed25519.NewKeyFromSeed(fixKey(label)), in)
		if err != nil {
			tb.Fatal(err)
		}
		req.Sign.Approvals = append(req.Sign.Approvals, a)
	}
	return req
}

// fixRequestFrame returns fixSendRequest(id) as a frame created at created.
func fixRequestFrame(tb testing.TB, id string, created time.Time) *Frame {
	tb.Helper()
	f, err := NewRequestFrame(fixSendRequest(tb, id), created)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// fixResponse returns a response to id: a signed send block.
func fixResponse(id string) *pb.BridgeResponse {
	blk := &pb.Block{
		Account: fixKey("account"), Previous: fixKey("head"), Representative: fixKey("representative"),
		Balance: make([]byte, 16), Link: fixKey("destination"), Signature: bytes.Repeat([]byte{7}, 64),
	}
	blk.Balance[15] = 42
	return &pb.BridgeResponse{Sign: &pb.SignResponse{RequestId: id, Block: blk, Hash: fixKey("hash"), Subtype: "send", AuditSeq: 9}}
}

func mustMarshal(tb testing.TB, f *Frame) []byte {
	tb.Helper()
	b, err := f.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func sameFrame(a, b *Frame) bool {
	return a.Type == b.Type && a.RequestID == b.RequestID && a.Created.Equal(b.Created) && bytes.Equal(a.Payload, b.Payload)
}

func wantCode(tb testing.TB, err error, code WireError) {
	tb.Helper()
	var fe *FrameError
	if !errors.As(err, &fe) {
		tb.Fatalf("error %v is not a *FrameError (want %s)", err, code)
	}
	if fe.Code != code {
		tb.Fatalf("error %v: code %s, want %s", err, fe.Code, code)
	}
	if !errors.Is(err, &FrameError{Code: code}) {
		tb.Fatalf("errors.Is(%v, code %s) is false", err, code)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	hb, err := NewHeartbeatFrame(&pb.Heartbeat{Sender: "relay", Seq: 5, Queued: 1}, fixTime)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := NewResponseFrame(fixResponse("r-1"), fixTime)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := NewRefusalFrame("r-2", &pb.BridgeRefusal{Reason: pb.RefusalReason_REFUSAL_REASON_EXPIRED, Detail: "too late", Code: "FAILED_PRECONDITION"}, fixTime)
	if err != nil {
		t.Fatal(err)
	}
	frames := []*Frame{fixRequestFrame(t, "r-0", fixTime), resp, ref, hb,
		{Type: TypeRefusal, RequestID: strings.Repeat("x", MaxRequestID), Created: time.UnixMilli(-1)},
		{Type: TypeRequest, RequestID: "a.b_c-d-E9", Created: time.UnixMilli(1<<62 + 3), Payload: bytes.Repeat([]byte{0}, MaxPayload)},
	}
	for _, f := range frames {
		t.Run(f.Type.String()+"/"+f.RequestID[:min(len(f.RequestID), 10)], func(t *testing.T) {
			b := mustMarshal(t, f)
			g, err := DecodeFrame(b)
			if err != nil {
				t.Fatal(err)
			}
			if !sameFrame(f, g) {
				t.Fatalf("round trip changed the frame: %+v → %+v", f, g)
			}
			if !bytes.Equal(mustMarshal(t, g), b) {
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
				if _, err := DecodePayload(g); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestDecodeFrameErrors(t *testing.T) {
	good := mustMarshal(t, &Frame{Type: TypeHeartbeat, RequestID: "relay", Created: fixTime, Payload: []byte{8, 1}})
	// good: magic 0-3, version 4, type 5, id length 6, id 7-11, created 12-19, length 20-23, payload 24-25, CRC 26-29.
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	withCRC := func(b []byte) []byte {
		n := len(b) - 4
		return append(b[:n], crcBytes(b[:n])...)
	}
	cases := []struct {
		name string
		in   []byte
		code WireError
	}{
		{"empty", nil, ErrCodeTruncated},
		{"short header", good[:10], ErrCodeTruncated},
		{"magic", edit(func(b []byte) []byte { b[0] = 'X'; return withCRC(b) }), ErrCodeMagic},
		{"version 0", edit(func(b []byte) []byte { b[4] = 0; return withCRC(b) }), ErrCodeVersion},
		{"version 2", edit(func(b []byte) []byte { b[4] = 2; return withCRC(b) }), ErrCodeVersion},
		{"type 0", edit(func(b []byte) []byte { b[5] = 0; return withCRC(b) }), ErrCodeType},
		{"type 5", edit(func(b []byte) []byte { b[5] = 5; return withCRC(b) }), ErrCodeType},
		{"id length 0", edit(func(b []byte) []byte { b[6] = 0; return withCRC(b) }), ErrCodeRequestID},
		{"id length 65", edit(func(b []byte) []byte { b[6] = 65; return withCRC(b) }), ErrCodeRequestID},
		{"id length past the end", edit(func(b []byte) []byte { b[6] = 60; return withCRC(b) }), ErrCodeTruncated},
		{"id slash", edit(func(b []byte) []byte { b[8] = '/'; return withCRC(b) }), ErrCodeRequestID},
		{"id dot dot", withCRC(append(append([]byte(Magic), 1, 4, 2, '.', '.'), make([]byte, 16)...)), ErrCodeRequestID},
		{"id beginning with a dot", edit(func(b []byte) []byte { b[7] = '.'; return withCRC(b) }), ErrCodeRequestID},
		{"payload too long", edit(func(b []byte) []byte { b[21] = 0x01; return withCRC(b) }), ErrCodeLength},
		{"payload length past the end", edit(func(b []byte) []byte { b[23] = 3; return withCRC(b) }), ErrCodeTruncated},
		{"missing CRC byte", good[:len(good)-1], ErrCodeTruncated},
		{"trailing byte", append(append([]byte(nil), good...), 0), ErrCodeTrailing},
		{"CRC", edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrCodeChecksum},
		{"payload bit", edit(func(b []byte) []byte { b[24] ^= 0x80; return b }), ErrCodeChecksum},
		{"created bit", edit(func(b []byte) []byte { b[15] ^= 0x02; return b }), ErrCodeChecksum},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := DecodeFrame(c.in)
			if f != nil {
				t.Fatalf("decoded %+v", f)
			}
			wantCode(t, err, c.code)
		})
	}
	if _, err := DecodeFrame(good); err != nil {
		t.Fatalf("the unedited frame: %v", err)
	}
}

func crcBytes(b []byte) []byte {
	c := crc32.Checksum(b, castagnoli)
	return []byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)}
}

func TestMarshalRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		f    Frame
		code WireError
	}{
		{"type", Frame{Type: 9, RequestID: "a"}, ErrCodeType},
		{"empty id", Frame{Type: TypeRequest}, ErrCodeRequestID},
		{"long id", Frame{Type: TypeRequest, RequestID: strings.Repeat("a", 65)}, ErrCodeRequestID},
		{"space in id", Frame{Type: TypeRequest, RequestID: "a b"}, ErrCodeRequestID},
		{"id beginning with a dot", Frame{Type: TypeRequest, RequestID: ".wd-1"}, ErrCodeRequestID},
		{"id like a temporary file", Frame{Type: TypeRequest, RequestID: ".tmp-wd-1"}, ErrCodeRequestID},
		{"dot id", Frame{Type: TypeHeartbeat, RequestID: "."}, ErrCodeRequestID},
		{"payload", Frame{Type: TypeRequest, RequestID: "a", Payload: make([]byte, MaxPayload+1)}, ErrCodeLength},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.f.MarshalBinary()
			if b != nil {
				t.Fatal("returned bytes")
			}
			wantCode(t, err, c.code)
		})
	}
}

// TestEveryPrefixAndBitFlip checks that no proper prefix of a real frame,
// and no single bit flip anywhere in it, decodes.
func TestEveryPrefixAndBitFlip(t *testing.T) {
	b := mustMarshal(t, fixRequestFrame(t, "withdrawal-2026-0001", fixTime))
	for n := range len(b) {
		if _, err := DecodeFrame(b[:n]); err == nil {
			t.Fatalf("prefix of %d bytes decoded", n)
		}
	}
	for i := range len(b) {
		for bit := range 8 {
			c := append([]byte(nil), b...)
			c[i] ^= 1 << bit
			if _, err := DecodeFrame(c); err == nil {
				t.Fatalf("flip of bit %d of byte %d decoded", bit, i)
			}
		}
	}
}

// TestSendRequestSize is the size target: a send with two approvals is at
// most 700 bytes on the wire, as a file and as a COBS-encoded serial frame.
func TestSendRequestSize(t *testing.T) {
	const target = 700
	f := fixRequestFrame(t, "withdrawal-2026-0001", fixTime) // a 20-character request id
	b := mustMarshal(t, f)
	wire, err := AppendSerialFrame(nil, f)
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
	// The budget assumes the largest amount: 39 digits.
	req := fixSendRequest(t, "withdrawal-2026-0001")
	req.Sign.Intent.AmountRaw = "340282366920938463463374607431768211455"
	req.Attempt = 1 << 31
	f, err = NewRequestFrame(req, fixTime)
	if err != nil {
		t.Fatal(err)
	}
	if wire, _ := AppendSerialFrame(nil, f); len(wire) > target {
		t.Errorf("largest send: serial frame is %d bytes, want ≤ %d", len(wire), target)
	}
}

func TestDecodePayload(t *testing.T) {
	req := fixSendRequest(t, "r-1")
	f, err := NewRequestFrame(req, fixTime)
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodePayload(f)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m, req) {
		t.Fatal("request payload changed")
	}
	if !f.Created.Equal(fixTime) {
		t.Fatalf("created %v", f.Created)
	}

	resp, err := NewResponseFrame(fixResponse("r-1"), fixTime)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := DecodePayload(resp); err != nil || m.(*pb.BridgeResponse).GetSign().GetSubtype() != "send" {
		t.Fatalf("response: %v %v", m, err)
	}

	// Another request id inside the payload than in the header.
	lie := *f
	lie.RequestID = "r-2"
	_, err = DecodePayload(&lie)
	wantCode(t, err, ErrCodeMismatch)
	lie = *resp
	lie.RequestID = "r-2"
	_, err = DecodePayload(&lie)
	wantCode(t, err, ErrCodeMismatch)

	// A payload that is not protobuf, and one of the wrong message.
	_, err = DecodePayload(&Frame{Type: TypeRequest, RequestID: "r-1", Payload: []byte{0xFF, 0xFF}})
	wantCode(t, err, ErrCodePayload)
	_, err = DecodePayload(&Frame{Type: TypeRequest, RequestID: "r-1", Payload: nil})
	wantCode(t, err, ErrCodePayload) // no request id
	_, err = DecodePayload(&Frame{Type: TypeResponse, RequestID: "r-1", Payload: f.Payload})
	if err == nil {
		t.Fatal("a request payload decoded as a response")
	}
	_, err = DecodePayload(&Frame{Type: 7, RequestID: "r-1"})
	wantCode(t, err, ErrCodeType)

	// Refusals and heartbeats carry no request id of their own.
	ref, err := NewRefusalFrame("r-3", &pb.BridgeRefusal{Code: CodeRelayMalformed}, fixTime)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := DecodePayload(ref); err != nil || m.(*pb.BridgeRefusal).GetCode() != CodeRelayMalformed {
		t.Fatalf("refusal: %v %v", m, err)
	}

	// Constructors refuse ids that cannot be framed.
	bad := fixSendRequest(t, "r")
	bad.Sign.Intent.RequestId = "no spaces allowed"
	_, err = NewRequestFrame(bad, fixTime)
	wantCode(t, err, ErrCodeRequestID)
	bad.Sign.Intent.RequestId = ".hidden"
	_, err = NewRequestFrame(bad, fixTime)
	wantCode(t, err, ErrCodeRequestID)
	_, err = NewRefusalFrame(".hidden", &pb.BridgeRefusal{}, fixTime)
	wantCode(t, err, ErrCodeRequestID)
	_, err = NewHeartbeatFrame(&pb.Heartbeat{}, fixTime)
	wantCode(t, err, ErrCodeRequestID)
	_, err = NewRefusalFrame("r", &pb.BridgeRefusal{Detail: strings.Repeat("x", MaxPayload)}, fixTime)
	wantCode(t, err, ErrCodeLength)
}

func TestFileNames(t *testing.T) {
	f := &Frame{Type: TypeResponse, RequestID: "w.2026:1"}
	if got := FileName(f); got != "w.2026:1.response.nkb" {
		t.Fatalf("FileName = %q", got)
	}
	if err := CheckFileName("w.2026:1.response.nkb", f); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"w.2026:1.request.nkb", "w.2026.response.nkb", "x.nkb", "w.2026:1.response.nkb.nkb"} {
		wantCode(t, CheckFileName(name, f), ErrCodeFileName)
	}
	for in, want := range map[string]string{
		"a.request.nkb":           "a.request.nkb",
		"a.request~2.nkb":         "a.request.nkb",
		"a.request~123.nkb":       "a.request.nkb",
		"a.request~0a1b2c3d.nkb":  "a.request~0a1b2c3d.nkb",
		"a.request~x.nkb":         "a.request~x.nkb",
		"a.request.nkb.reason":    "a.request.nkb.reason",
		"b~1.c.d.heartbeat~4.nkb": "b~1.c.d.heartbeat.nkb",
	} {
		if got := QuarantineBase(in); got != want {
			t.Errorf("QuarantineBase(%q) = %q, want %q", in, got, want)
		}
	}
	for typ := TypeRequest; typ <= TypeHeartbeat; typ++ {
		if got, ok := ParseFrameType(typ.String()); !ok || got != typ {
			t.Errorf("ParseFrameType(%q) = %v, %v", typ, got, ok)
		}
	}
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
	f, err := NewHeartbeatFrame(&pb.Heartbeat{Sender: "relay", Seq: 7, Queued: 2}, time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	wantFrame := mustMarshal(t, f)
	wantSerial, err := AppendSerialFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	if got := block("vector-frame"); !bytes.Equal(got, wantFrame) {
		t.Errorf("FRAMES.md frame vector:\n got %x\nwant %x", got, wantFrame)
	}
	if got := block("vector-serial"); !bytes.Equal(got, wantSerial) {
		t.Errorf("FRAMES.md serial vector:\n got %x\nwant %x", got, wantSerial)
	}
	g, err := DecodeFrame(wantFrame)
	if err != nil || !sameFrame(f, g) {
		t.Fatalf("vector does not decode: %v", err)
	}
}
