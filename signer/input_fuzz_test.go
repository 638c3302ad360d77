package signer

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// wireSeeds are encodings of the signer's requests, valid and not.
func wireSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	valid, err := proto.Marshal(&pb.SignRequest{
		Intent: &pb.Intent{RequestId: "req-1", Kind: pb.IntentKind_INTENT_KIND_SEND, Account: make([]byte, 32),
			AmountRaw: "1", Destination: make([]byte, 32), ExpiresAtUnix: 1},
		Head:      &pb.Block{Account: make([]byte, 32), Balance: make([]byte, 16), Work: 7},
		Approvals: []*pb.Approval{{PublicKey: make([]byte, 32), Signature: make([]byte, 64)}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	badIntent := appendRawString(appendRawString(nil, 1, strings.Repeat("a", 63)+"\xc3"), 4, "1\xff")
	badID := protowire.AppendBytes(protowire.AppendTag(append([]byte(nil), valid...), 1, protowire.BytesType), badIntent)
	deep := []byte{}
	for i := 0; i < 40; i++ { // Intent inside SignRequest, as deep as it goes
		deep = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), deep)
	}
	return [][]byte{
		nil, valid, badID, badIntent, deep,
		appendRawString(nil, 1, "wallet\xff"),
		appendRawString(nil, 99, "\xff"), // an unknown field is kept as it is
		{0x0a, 0x05, 0x0a, 0x01},         // truncated
		protowire.AppendTag(nil, 1, protowire.StartGroupType),
	}
}

// FuzzValidUTF8Wire checks validUTF8Wire on any bytes, for the signer's
// request messages: it never panics; what protobuf decodes it leaves
// unchanged; what it returns decodes without a UTF-8 error wherever the
// input's only fault was UTF-8, and is left unchanged by a second pass.
func FuzzValidUTF8Wire(f *testing.F) {
	for _, s := range wireSeeds(f) {
		f.Add(s)
	}
	descs := []protoreflect.MessageDescriptor{
		(&pb.SignRequest{}).ProtoReflect().Descriptor(),
		(&pb.AdoptAccountRequest{}).ProtoReflect().Descriptor(),
		(&pb.Intent{}).ProtoReflect().Descriptor(),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, md := range descs {
			out, changed, err := validUTF8Wire(data, md, 0)
			strict := proto.Unmarshal(data, newOf(md)) == nil
			if strict && (err != nil || changed || !bytes.Equal(out, data)) {
				t.Fatalf("%s: a message protobuf decodes was changed (%v, %v)", md.FullName(), changed, err)
			}
			if err != nil {
				continue
			}
			again, changedAgain, err := validUTF8Wire(out, md, 0)
			if err != nil || changedAgain || !bytes.Equal(again, out) {
				t.Fatalf("%s: a second pass changed the output (%v, %v)", md.FullName(), changedAgain, err)
			}
			m := newOf(md)
			if err := newLenientCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, m); err == nil && !strict && !changed {
				t.Fatalf("%s: the codec decoded what protobuf refuses without fixing anything", md.FullName())
			}
		}
	})
}

func newOf(md protoreflect.MessageDescriptor) proto.Message {
	switch md.FullName() {
	case "nanokms.v1.SignRequest":
		return &pb.SignRequest{}
	case "nanokms.v1.AdoptAccountRequest":
		return &pb.AdoptAccountRequest{}
	}
	return &pb.Intent{}
}

// FuzzCallerText checks quoteInput and boundedText on any string: the
// results are valid UTF-8 and bounded; a short string quotes back to
// itself; a valid string within the bound is kept as it is.
func FuzzCallerText(f *testing.F) {
	for _, s := range []string{"", "req-1", strings.Repeat("a", 63) + "é", strings.Repeat("a", 63) + "\xc3", "\xff\xfe", strings.Repeat("😀", 40), "a\x00b\nc", strings.Repeat("\x80", 100)} {
		f.Add(s, 64)
	}
	f.Add("€", 1)
	f.Add("\xff", 2)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 4096 {
			max %= 4097
			if max < 0 {
				max = -max
			}
		}
		q := quoteInput(s)
		if !utf8.ValidString(q) || len(q) > 4*maxQuoted+40 {
			t.Fatalf("quoteInput(%q) = %q: not bounded UTF-8", s, q)
		}
		if len(s) <= maxQuoted {
			if u, err := strconv.Unquote(q); err != nil || u != s {
				t.Fatalf("quoteInput(%q) = %q does not quote back (%q, %v)", s, q, u, err)
			}
		} else {
			end := strings.LastIndex(q, "… (")
			u, err := strconv.Unquote(q[:end])
			if err != nil || !strings.HasPrefix(s, u) || len(u) < maxQuoted-utf8.UTFMax {
				t.Fatalf("quoteInput(%q) = %q: the quoted part is not a prefix of the input (%q, %v)", s, q, u, err)
			}
		}
		b := boundedText(s, max)
		if !utf8.ValidString(b) || len(b) > max {
			t.Fatalf("boundedText(%q, %d) = %q: not bounded UTF-8", s, max, b)
		}
		if utf8.ValidString(s) && len(s) <= max && b != s {
			t.Fatalf("boundedText(%q, %d) = %q changed a valid string", s, max, b)
		}
		if utf8.ValidString(s) && !strings.HasPrefix(s, b) {
			t.Fatalf("boundedText(%q, %d) = %q is not a prefix of the valid input", s, max, b)
		}
	})
}
