package frame_test

// Fuzz targets for what reads untrusted bytes here: the frame decoder,
// COBS and the payload decoder, seeded with real frames
// (frametest.SeedFrames) and edge cases; inputs the fuzzer kept are in
// testdata/fuzz/<target>. Without -fuzz, `go test` runs every seed.
//
//	go test ./bridge/frame -run XXX -fuzz '^FuzzDecodeFrame$' -fuzztime 2000x

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

func FuzzDecodeFrame(f *testing.F) {
	for _, b := range frametest.SeedFrames(f) {
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(append(append([]byte(nil), b...), 0))
	}
	f.Add([]byte(frame.Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := frame.DecodeFrame(b)
		if err != nil {
			var fe *frame.FrameError
			if fr != nil || !errors.As(err, &fe) {
				t.Fatalf("DecodeFrame returned %v, %v", fr, err)
			}
			return
		}
		// Round trip: what decodes re-encodes to the same bytes.
		again, err := fr.MarshalBinary()
		if err != nil {
			t.Fatalf("a decoded frame does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
		if !frame.ValidRequestID(fr.RequestID) || filemedium.CheckFileName(filemedium.FileName(fr), fr) != nil {
			t.Fatalf("decoded an unusable request id %q", fr.RequestID)
		}
		// The payload is checked only as far as it goes; it must not panic.
		_, _ = frame.DecodePayload(fr)
	})
}

func FuzzCOBS(f *testing.F) {
	for _, b := range frametest.SeedFrames(f) {
		f.Add(b)
		f.Add(frame.COBSEncode(nil, b))
	}
	f.Add(append(make([]byte, 300), 1))
	f.Add(bytes.Repeat([]byte{0xFF}, 600))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Encoding: no zero, bounded overhead, and it decodes back.
		enc := frame.COBSEncode(nil, b)
		if bytes.IndexByte(enc, 0) >= 0 {
			t.Fatal("the encoding holds a zero")
		}
		if len(enc) > len(b)+len(b)/254+1 {
			t.Fatalf("encoding of %d bytes is %d bytes", len(b), len(enc))
		}
		dec, err := frame.COBSDecode(nil, enc)
		if err != nil || !bytes.Equal(dec, b) {
			t.Fatalf("round trip: %v", err)
		}
		// Decoding arbitrary bytes: no panic; what decodes is stable.
		dec, err = frame.COBSDecode(nil, b)
		if err != nil {
			var fe *frame.FrameError
			if !errors.As(err, &fe) || fe.Code != frame.ErrCodeCOBS {
				t.Fatalf("COBSDecode error %v", err)
			}
			return
		}
		if len(dec) > len(b) {
			t.Fatalf("decoding grew %d bytes to %d", len(b), len(dec))
		}
		again, err := frame.COBSDecode(nil, frame.COBSEncode(nil, dec))
		if err != nil || !bytes.Equal(again, dec) {
			t.Fatalf("decode → encode → decode changed the bytes: %v", err)
		}
	})
}

func FuzzDecodePayload(f *testing.F) {
	for _, b := range frametest.SeedFrames(f) {
		fr, _ := frame.DecodeFrame(b)
		f.Add(uint8(fr.Type), fr.RequestID, fr.Payload)
	}
	// Requests with a leader epoch (BridgeRequest.leader_epoch): a usual
	// one, the largest, and a truncated varint.
	for _, epoch := range []uint64{5, 1<<64 - 1} {
		req := frametest.SendRequest(f, "r-epoch")
		req.LeaderEpoch = epoch
		fr, err := frame.NewRequestFrame(req, frametest.Time)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(fr.Type), fr.RequestID, fr.Payload)
		f.Add(uint8(fr.Type), fr.RequestID, append(append([]byte(nil), fr.Payload...), 0x18, 0xff))
	}
	f.Fuzz(func(t *testing.T, typ uint8, id string, payload []byte) {
		m, err := frame.DecodePayload(&frame.Frame{Type: frame.FrameType(typ), RequestID: id, Payload: payload})
		if err != nil {
			var fe *frame.FrameError
			if m != nil || !errors.As(err, &fe) {
				t.Fatalf("DecodePayload returned %v, %v", m, err)
			}
			return
		}
		// A request decodes to a frame that carries the same epoch.
		if req, ok := m.(*pb.BridgeRequest); ok {
			again, err := frame.NewRequestFrame(req, frametest.Time)
			if err != nil {
				return // an id DecodePayload does not check (the header's, checked by DecodeFrame)
			}
			back, err := frame.DecodePayload(again)
			if err != nil || back.(*pb.BridgeRequest).GetLeaderEpoch() != req.GetLeaderEpoch() {
				t.Fatalf("a request does not round-trip its leader epoch %d: %v", req.GetLeaderEpoch(), err)
			}
		}
	})
}
