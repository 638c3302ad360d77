package coldbridge

// Fuzz targets for what reads untrusted bytes: the frame decoder, COBS,
// the serial stream splitter, the payload decoder and the file medium's
// name parsers (which names are its temporary files, which entries it set
// aside). Each is seeded with
// real frames (fixSendRequest and friends) and edge cases; inputs the
// fuzzer kept are in testdata/fuzz/<target>. Without -fuzz, `go test`
// runs every seed as a unit test.
//
//	go test ./coldbridge -run XXX -fuzz '^FuzzDecodeFrame$' -fuzztime 100000x

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// fuzzSeedFrames returns encodings of one frame of each type.
func fuzzSeedFrames(tb testing.TB) [][]byte {
	tb.Helper()
	resp, _ := NewResponseFrame(fixResponse("r-1"), fixTime)
	ref, _ := NewRefusalFrame("r-2", &pb.BridgeRefusal{Reason: pb.RefusalReason_REFUSAL_REASON_EXPIRED, Detail: "late"}, fixTime)
	hb, _ := NewHeartbeatFrame(&pb.Heartbeat{Sender: "relay", Seq: 7, Queued: 2}, fixTime)
	var out [][]byte
	for _, f := range []*Frame{fixRequestFrame(tb, "withdrawal-2026-0001", fixTime), resp, ref, hb} {
		out = append(out, mustMarshal(tb, f))
	}
	return out
}

func FuzzDecodeFrame(f *testing.F) {
	for _, b := range fuzzSeedFrames(f) {
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(append(append([]byte(nil), b...), 0))
	}
	f.Add([]byte(Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			var fe *FrameError
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
		if !ValidRequestID(fr.RequestID) || CheckFileName(FileName(fr), fr) != nil {
			t.Fatalf("decoded an unusable request id %q", fr.RequestID)
		}
		// The payload is checked only as far as it goes; it must not panic.
		_, _ = DecodePayload(fr)
	})
}

func FuzzCOBS(f *testing.F) {
	for _, b := range fuzzSeedFrames(f) {
		f.Add(b)
		f.Add(COBSEncode(nil, b))
	}
	f.Add(append(make([]byte, 300), 1))
	f.Add(bytes.Repeat([]byte{0xFF}, 600))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Encoding: no zero, bounded overhead, and it decodes back.
		enc := COBSEncode(nil, b)
		if bytes.IndexByte(enc, 0) >= 0 {
			t.Fatal("the encoding holds a zero")
		}
		if len(enc) > len(b)+len(b)/254+1 {
			t.Fatalf("encoding of %d bytes is %d bytes", len(b), len(enc))
		}
		dec, err := COBSDecode(nil, enc)
		if err != nil || !bytes.Equal(dec, b) {
			t.Fatalf("round trip: %v", err)
		}
		// Decoding arbitrary bytes: no panic; what decodes is stable.
		dec, err = COBSDecode(nil, b)
		if err != nil {
			var fe *FrameError
			if !errors.As(err, &fe) || fe.Code != ErrCodeCOBS {
				t.Fatalf("COBSDecode error %v", err)
			}
			return
		}
		if len(dec) > len(b) {
			t.Fatalf("decoding grew %d bytes to %d", len(b), len(dec))
		}
		again, err := COBSDecode(nil, COBSEncode(nil, dec))
		if err != nil || !bytes.Equal(again, dec) {
			t.Fatalf("decode → encode → decode changed the bytes: %v", err)
		}
	})
}

// FuzzSerialStream feeds arbitrary bytes, in arbitrary chunks, to the
// serial stream splitter: it must always make progress, never panic, and
// return only frames that pass DecodeFrame; a good frame sent after the
// noise (with its leading delimiter) must come out.
func FuzzSerialStream(f *testing.F) {
	for _, b := range fuzzSeedFrames(f) {
		wire := append([]byte{0}, COBSEncode(nil, b)...)
		f.Add(append(wire, 0), uint8(7))
		f.Add(wire[:len(wire)/2], uint8(1))
	}
	f.Add([]byte{0, 0, 1, 1, 0}, uint8(0))
	f.Fuzz(func(t *testing.T, noise []byte, chunk uint8) {
		good := heartbeat(t, "after-noise", 1, time.UnixMilli(1))
		stream := append(append([]byte(nil), noise...), mustMarshalSerial(t, good)...)
		var d streamDecoder
		step := int(chunk%32) + 1
		var last *Frame
		for off := 0; off < len(stream); off += step {
			p := stream[off:min(off+step, len(stream))]
			for len(p) > 0 {
				n, fr, err := d.scan(p)
				if n <= 0 || n > len(p) {
					t.Fatalf("scan consumed %d of %d bytes", n, len(p))
				}
				if fr != nil && err != nil {
					t.Fatal("a frame and an error")
				}
				if fr != nil {
					if _, err := DecodeFrame(mustMarshal(t, fr)); err != nil {
						t.Fatalf("returned a frame that does not decode: %v", err)
					}
					last = fr
				}
				p = p[n:]
			}
		}
		if last == nil || !sameFrame(last, good) {
			t.Fatal("the good frame after the noise was not read")
		}
	})
}

func FuzzDecodePayload(f *testing.F) {
	for _, b := range fuzzSeedFrames(f) {
		fr, _ := DecodeFrame(b)
		f.Add(uint8(fr.Type), fr.RequestID, fr.Payload)
	}
	f.Fuzz(func(t *testing.T, typ uint8, id string, payload []byte) {
		m, err := DecodePayload(&Frame{Type: FrameType(typ), RequestID: id, Payload: payload})
		if err != nil {
			var fe *FrameError
			if m != nil || !errors.As(err, &fe) {
				t.Fatalf("DecodePayload returned %v, %v", m, err)
			}
		}
	})
}

// FuzzMediumNames: parseTempName accepts exactly the names tempName
// makes (and so a writer removes nothing else), parseSetAside exactly the
// names setAside makes; neither ever accepts a frame's name, and a valid
// request id always round-trips through a temporary name.
func FuzzMediumNames(f *testing.F) {
	for _, s := range []string{".tmp-wd-1-0123456789abcdef", ".tmp-0123456789abcdef", ".tmp--0123456789abcdef",
		".tmp-.x-0123456789abcdef", ".tmp-wd-1-0123456789ABCDEF", ".tmp-wd-1-0123456789abcde", "done.bad-0123456789abcdef",
		".bad-0123456789abcdef", "to-hot.bad-0123456789abcdeg", "a.request.nkb", "wd-1", "relay"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if id, ok := parseTempName(name); ok {
			rnd := name[len(name)-16:]
			want := tempPrefix + rnd
			if id != "" {
				want = tempPrefix + id + "-" + rnd
			}
			if want != name || strings.HasSuffix(name, FileSuffix) || !validName(name) {
				t.Fatalf("parseTempName(%q) = %q: not a name tempName makes", name, id)
			}
		}
		if orig, ok := parseSetAside(name); ok {
			if orig+setAsideMark+name[len(name)-16:] != name || strings.HasSuffix(name, FileSuffix) || !validName(orig) {
				t.Fatalf("parseSetAside(%q) = %q: not a name setAside makes", name, orig)
			}
		}
		if ValidRequestID(name) {
			tmp := tempName(name)
			if id, ok := parseTempName(tmp); !ok || id != name {
				t.Fatalf("tempName(%q) = %q parses as %q, %v", name, tmp, id, ok)
			}
			if _, ok := parseTempName(name + ".request" + FileSuffix); ok {
				t.Fatalf("the frame name of %q parses as a temporary file", name)
			}
		}
	})
}
