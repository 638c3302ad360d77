package serial

// Fuzz targets for what reads untrusted bytes: the frame decoder, COBS,
// the serial stream splitter, the payload decoder and the file medium's
// name parsers (which names are its temporary files, which entries it set
// aside). Each is seeded with
// real frames (frametest.SendRequest and friends) and edge cases; inputs the
// fuzzer kept are in testdata/fuzz/<target>. Without -fuzz, `go test`
// runs every seed as a unit test.
//
//	go test ./bridge/serial -run XXX -fuzz '^FuzzSerialStream$' -fuzztime 2000x

import (
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
)

// FuzzSerialStream feeds arbitrary bytes, in arbitrary chunks, to the
// serial stream splitter: it must always make progress, never panic, and
// return only frames that pass DecodeFrame; a good frame sent after the
// noise (with its leading delimiter) must come out.
func FuzzSerialStream(f *testing.F) {
	for _, b := range frametest.SeedFrames(f) {
		wire := append([]byte{0}, frame.COBSEncode(nil, b)...)
		f.Add(append(wire, 0), uint8(7))
		f.Add(wire[:len(wire)/2], uint8(1))
	}
	f.Add([]byte{0, 0, 1, 1, 0}, uint8(0))
	f.Fuzz(func(t *testing.T, noise []byte, chunk uint8) {
		good := frametest.Heartbeat(t, "after-noise", 1, time.UnixMilli(1))
		stream := append(append([]byte(nil), noise...), mustMarshalSerial(t, good)...)
		var d streamDecoder
		step := int(chunk%32) + 1
		var last *frame.Frame
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
					if _, err := frame.DecodeFrame(frametest.MustMarshal(t, fr)); err != nil {
						t.Fatalf("returned a frame that does not decode: %v", err)
					}
					last = fr
				}
				p = p[n:]
			}
		}
		if last == nil || !frametest.SameFrame(last, good) {
			t.Fatal("the good frame after the noise was not read")
		}
	})
}
