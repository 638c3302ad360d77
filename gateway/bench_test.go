package gateway

// Benchmarks of the bridge (docs/BENCHMARKS.md, section "bridge"):
//
//	go test ./gateway -run XXX -bench . -benchtime 200x -count 3
//
// BenchmarkFileBridge moves realistic send requests (two approvals) through
// a FileWriter and a FileReader on one directory, on disk and on tmpfs;
// BenchmarkSerialBridge moves them over two pseudo-terminals at 115200 and
// 921600 baud, paced and not, and reports the line-rate limit that the
// frame size implies (baud/10 bytes per second ÷ bytes per request).

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
	"github.com/nanokms/nanokms/bridge/serial"
	"github.com/nanokms/nanokms/bridge/serial/serialtest"
)

// benchRequests returns n distinct request frames and their mean size.
func benchRequests(b *testing.B, n int) []*frame.Frame {
	b.Helper()
	req := frametest.SendRequest(b, "withdrawal-2026-0000")
	frames := make([]*frame.Frame, n)
	for i := range frames {
		req.Sign.Intent.RequestId = fmt.Sprintf("withdrawal-2026-%04d", i%10000)
		if i >= 10000 {
			req.Sign.Intent.RequestId = fmt.Sprintf("withdrawal-%09d", i)
		}
		f, err := frame.NewRequestFrame(req, frametest.Time.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		frames[i] = f
	}
	return frames
}

func BenchmarkFileBridge(b *testing.B) {
	media := []struct{ name, dir string }{{"disk", ""}, {"tmpfs", "/dev/shm"}}
	for _, m := range media {
		b.Run(m.name, func(b *testing.B) {
			if m.dir != "" {
				if _, err := os.Stat(m.dir); err != nil {
					b.Fatalf("%s: %v", m.dir, err)
				}
			}
			dir, err := os.MkdirTemp(m.dir, "gateway-bench-")
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(dir)
			w, err := filemedium.NewFileWriter(dir)
			if err != nil {
				b.Fatal(err)
			}
			r, err := filemedium.NewFileReader(dir, filemedium.FileReaderOptions{PollInterval: time.Millisecond, MaxFutureSkew: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			frames := benchRequests(b, b.N)
			size := len(frametest.MustMarshal(b, frames[0]))
			ctx := context.Background()
			b.ResetTimer()
			errc := make(chan error, 1)
			go func() {
				for _, f := range frames {
					if err := w.WriteFrame(ctx, f); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			for range frames {
				rec, err := r.ReadFrame(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := rec.Done(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			b.ReportMetric(float64(size), "bytes/req")
		})
	}
}

func BenchmarkSerialBridge(b *testing.B) {
	for _, baud := range []int{115200, 921600} {
		for _, paced := range []bool{true, false} {
			name := fmt.Sprintf("baud=%d/paced=%v", baud, paced)
			b.Run(name, func(b *testing.B) {
				mA, sA := serialtest.MustPTYPair(b)
				mB, sB := serialtest.MustPTYPair(b)
				opts := serial.SerialOptions{Baud: baud, NoPace: !paced}
				w, err := serial.OpenSerial(sA.Name(), opts)
				if err != nil {
					b.Fatal(err)
				}
				defer w.Close()
				r, err := serial.OpenSerial(sB.Name(), opts)
				if err != nil {
					b.Fatal(err)
				}
				defer r.Close()
				go io.Copy(mB, mA) // the cable
				frames := benchRequests(b, b.N)
				wire := serialLen(b, frames[0])
				ctx := context.Background()
				b.ResetTimer()
				errc := make(chan error, 1)
				go func() {
					for _, f := range frames {
						if err := w.WriteFrame(ctx, f); err != nil {
							errc <- err
							return
						}
					}
					errc <- nil
				}()
				for range frames {
					if _, err := r.ReadFrame(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
				rate := float64(b.N) / b.Elapsed().Seconds()
				limit := float64(baud) / 10 / float64(wire)
				b.ReportMetric(rate, "req/s")
				b.ReportMetric(float64(wire), "bytes/req")
				b.ReportMetric(limit, "limit-req/s")
				b.ReportMetric(100*rate/limit, "%limit")
			})
		}
	}
}

// serialLen is the length of f on a serial line.
func serialLen(tb testing.TB, f *frame.Frame) int {
	tb.Helper()
	b, err := serial.AppendSerialFrame(nil, f)
	if err != nil {
		tb.Fatal(err)
	}
	return len(b)
}
