package signer

import (
	"errors"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// lenientCodec is the signer's gRPC codec: protobuf, except that a
// request whose string fields are not UTF-8 is decoded with each such
// field's bad bytes replaced by U+FFFD, instead of failing in the gRPC
// layer as Internal before the signer sees it. The signer then refuses
// the request by its own rules (no request id, wallet label or amount
// holds U+FFFD), as InvalidArgument naming the field, and a refused
// Sign is recorded in the audit chain like any other refusal.
type lenientCodec struct{ base encoding.CodecV2 }

func newLenientCodec() lenientCodec { return lenientCodec{base: encoding.GetCodecV2(grpcproto.Name)} }

func (c lenientCodec) Name() string { return c.base.Name() }

func (c lenientCodec) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

func (c lenientCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.base.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	fixed, changed, ferr := validUTF8Wire(data.Materialize(), m.ProtoReflect().Descriptor(), 0)
	if ferr != nil || !changed {
		return err
	}
	if uerr := proto.Unmarshal(fixed, m); uerr != nil {
		return err
	}
	return nil
}

// maxWireDepth bounds how deep validUTF8Wire follows nested messages.
const maxWireDepth = 32

var errWire = errors.New("signer: malformed protobuf")

// validUTF8Wire returns the protobuf encoding b of a message described by
// md with the bytes that are not UTF-8 in its string fields (and those of
// its nested messages) replaced by U+FFFD; changed says whether anything
// was replaced. Every other byte is copied as it is. It fails on an
// encoding that does not parse, or that nests deeper than maxWireDepth.
func validUTF8Wire(b []byte, md protoreflect.MessageDescriptor, depth int) (out []byte, changed bool, err error) {
	if depth > maxWireDepth {
		return nil, false, errWire
	}
	out = make([]byte, 0, len(b))
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false, errWire
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, false, errWire
		}
		field := b[:n+m]
		b = b[n+m:]
		fd := md.Fields().ByNumber(num)
		if fd == nil || typ != protowire.BytesType {
			out = append(out, field...)
			continue
		}
		v, _ := protowire.ConsumeBytes(field[n:])
		switch fd.Kind() {
		case protoreflect.StringKind:
			if utf8.Valid(v) {
				out = append(out, field...)
				continue
			}
			out = protowire.AppendTag(out, num, typ)
			out = protowire.AppendString(out, strings.ToValidUTF8(string(v), "\uFFFD"))
			changed = true
		case protoreflect.MessageKind:
			inner, innerChanged, err := validUTF8Wire(v, fd.Message(), depth+1)
			if err != nil {
				return nil, false, err
			}
			if !innerChanged {
				out = append(out, field...)
				continue
			}
			out = protowire.AppendTag(out, num, typ)
			out = protowire.AppendBytes(out, inner)
			changed = true
		default:
			out = append(out, field...)
		}
	}
	return out, changed, nil
}
