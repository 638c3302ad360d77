// Package frametest holds the fixtures of the bridge's tests: realistic
// request and response frames built the one way production builds them
// (the frame constructors), and assertions on frames and their errors.
// It is for tests only: no production package imports it.
package frametest

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"hash/crc32"
	"sync"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Time is the creation time of the fixtures' frames.
var Time = time.Date(2026, 11, 25, 10, 30, 0, 123_000_000, time.UTC)

// Key returns a deterministic 32-byte value for label.
func Key(label string) []byte {
	var seed [32]byte
	copy(seed[:], label)
	return seed[:]
}

// SendRequest returns a realistic send request: an intent with a
// request id of the given form, a signed head block and two approvals by
// real Ed25519 keys, no template.
func SendRequest(tb testing.TB, id string) *pb.BridgeRequest {
	tb.Helper()
	var seed nano.Seed
	copy(seed[:], Key("wallet seed"))
	priv := nano.DeriveKey(&seed, 3)
	account := priv.PublicKey()
	balance, err := nano.ParseAmount("250000000000000000000000000000000") // 250 XNO
	if err != nil {
		tb.Fatal(err)
	}
	head := nano.StateBlock{
		Account:        account,
		Previous:       nano.Hash(Key("previous block")),
		Representative: nano.PublicKey(Key("representative")),
		Balance:        balance,
		Link:           nano.Hash(Key("some source")),
	}
	h := head.Hash()
	head.Signature = nano.Sign(&priv, h[:])
	in := &pb.Intent{
		RequestId:     id,
		Kind:          pb.IntentKind_INTENT_KIND_SEND,
		Account:       account[:],
		AmountRaw:     "12345678901234567890123456789012", // 12.3… XNO
		Destination:   Key("destination"),
		ExpiresAtUnix: Time.Add(time.Hour).Unix(),
	}
	req := &pb.BridgeRequest{
		Sign: &pb.SignRequest{
			Intent: in,
			Head:   pb.BlockFromNano(&head),
		},
		Attempt: 1,
	}
	for _, label := range []string{"withdrawal service", "human approver"} {
		a, err := intent.Approve(ed25519.NewKeyFromSeed(Key(label)), in)
		if err != nil {
			tb.Fatal(err)
		}
		req.Sign.Approvals = append(req.Sign.Approvals, a)
	}
	return req
}

// RequestFrame returns SendRequest(id) as a frame created at created.
func RequestFrame(tb testing.TB, id string, created time.Time) *frame.Frame {
	tb.Helper()
	f, err := frame.NewRequestFrame(SendRequest(tb, id), created)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// Response returns a response to id: a signed send block.
func Response(id string) *pb.BridgeResponse {
	blk := &pb.Block{
		Account: Key("account"), Previous: Key("head"), Representative: Key("representative"),
		Balance: make([]byte, 16), Link: Key("destination"), Signature: bytes.Repeat([]byte{7}, 64),
	}
	blk.Balance[15] = 42
	return &pb.BridgeResponse{Sign: &pb.SignResponse{RequestId: id, Block: blk, Hash: Key("hash"), Subtype: "send", AuditSeq: 9}}
}

// MustMarshal encodes f, failing the test on error.
func MustMarshal(tb testing.TB, f *frame.Frame) []byte {
	tb.Helper()
	b, err := f.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// SameFrame reports whether a and b are the same frame.
func SameFrame(a, b *frame.Frame) bool {
	return a.Type == b.Type && a.RequestID == b.RequestID && a.Created.Equal(b.Created) && bytes.Equal(a.Payload, b.Payload)
}

// WantCode fails the test unless err is a *frame.FrameError with code.
func WantCode(tb testing.TB, err error, code frame.WireError) {
	tb.Helper()
	var fe *frame.FrameError
	if !errors.As(err, &fe) {
		tb.Fatalf("error %v is not a *FrameError (want %s)", err, code)
	}
	if fe.Code != code {
		tb.Fatalf("error %v: code %s, want %s", err, fe.Code, code)
	}
	if !errors.Is(err, &frame.FrameError{Code: code}) {
		tb.Fatalf("errors.Is(%v, code %s) is false", err, code)
	}
}

// CRC returns the big-endian CRC-32C (Castagnoli) of b, as a frame's
// trailer carries it: for tests that forge frames byte by byte.
func CRC(b []byte) []byte {
	c := crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
	return []byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)}
}

// SeedFrames returns encodings (fuzz seeds) of one frame of each type.
func SeedFrames(tb testing.TB) [][]byte {
	tb.Helper()
	resp, _ := frame.NewResponseFrame(Response("r-1"), Time)
	ref, _ := frame.NewRefusalFrame("r-2", &pb.BridgeRefusal{Reason: pb.RefusalReason_REFUSAL_REASON_EXPIRED, Detail: "late"}, Time)
	hb, _ := frame.NewHeartbeatFrame(&pb.Heartbeat{Sender: "relay", Seq: 7, Queued: 2}, Time)
	var out [][]byte
	for _, f := range []*frame.Frame{RequestFrame(tb, "withdrawal-2026-0001", Time), resp, ref, hb} {
		out = append(out, MustMarshal(tb, f))
	}
	return out
}

// RejectLog records what a reader refused (its Record is a RejectFunc).
type RejectLog struct {
	mu    sync.Mutex
	names []string
	errs  []error
}

// Record records a refused frame.
func (l *RejectLog) Record(name string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.names = append(l.names, name)
	l.errs = append(l.errs, err)
}

// Take returns and forgets what was recorded.
func (l *RejectLog) Take() ([]string, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, e := l.names, l.errs
	l.names, l.errs = nil, nil
	return n, e
}

// Heartbeat returns a heartbeat frame from sender.
func Heartbeat(t *testing.T, sender string, seq uint64, created time.Time) *frame.Frame {
	t.Helper()
	f, err := frame.NewHeartbeatFrame(&pb.Heartbeat{Sender: sender, Seq: seq}, created)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
