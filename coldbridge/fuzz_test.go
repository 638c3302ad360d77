package coldbridge

// Fuzz targets for what reads untrusted bytes: the frame decoder, COBS,
// the serial stream splitter, the payload decoder and the file medium's
// name parsers (which names are its temporary files, which entries it set
// aside). Each is seeded with
// real frames (frametest.SendRequest and friends) and edge cases; inputs the
// fuzzer kept are in testdata/fuzz/<target>. Without -fuzz, `go test`
// runs every seed as a unit test.
//
//	go test ./coldbridge -run XXX -fuzz '^FuzzDecodeFrame$' -fuzztime 30s

import (
	"strings"
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
		good := heartbeat(t, "after-noise", 1, time.UnixMilli(1))
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
		if frame.ValidRequestID(name) {
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
