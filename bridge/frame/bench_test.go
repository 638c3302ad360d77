package frame_test

import (
	"testing"

	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
)

func BenchmarkMarshalFrame(b *testing.B) {
	f := frametest.RequestFrame(b, "withdrawal-2026-0001", frametest.Time)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	data := frametest.MustMarshal(b, frametest.RequestFrame(b, "withdrawal-2026-0001", frametest.Time))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := frame.DecodeFrame(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCOBS(b *testing.B) {
	data := frametest.MustMarshal(b, frametest.RequestFrame(b, "withdrawal-2026-0001", frametest.Time))
	enc := frame.COBSEncode(nil, data)
	var buf []byte
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			buf = frame.COBSEncode(buf[:0], data)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if buf, err = frame.COBSDecode(buf[:0], enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
