package serial

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
	"github.com/nanokms/nanokms/bridge/serial/serialtest"
)

// A serial test line is two serial ends with a proxy between them that
// copies bytes from the writer's end to the reader's end and can damage
// them on the way:
//
//	writer ─▶ pty A ─▶ proxy (noise) ─▶ pty B ─▶ reader
//
// The ends are the subsidiary sides of pseudo-terminals, opened with
// OpenSerial; the proxy holds the other sides (pty masters, or the far
// ends of socat null-modem pairs).

// noise says what the proxy does to each byte; the rates are per byte.
type noise struct {
	flip, drop, dup, garbage float64
	seed                     uint64
}

// proxy copies from src to dst, applying its noise while noisy is set.
type proxy struct {
	src   io.Reader
	dst   io.Writer
	noise noise
	noisy atomic.Bool

	mu       sync.Mutex
	cond     *sync.Cond
	consumed int64 // bytes read from src
	err      error
}

func startProxy(t testing.TB, src io.Reader, dst io.Writer, n noise) *proxy {
	t.Helper()
	p := &proxy{src: src, dst: dst, noise: n}
	p.cond = sync.NewCond(&p.mu)
	go p.run()
	return p
}

func (p *proxy) run() {
	rng := rand.New(rand.NewPCG(p.noise.seed, 99))
	buf := make([]byte, 4096)
	var out []byte
	for {
		n, err := p.src.Read(buf)
		out = out[:0]
		for _, c := range buf[:n] {
			if !p.noisy.Load() {
				out = append(out, c)
				continue
			}
			if rng.Float64() < p.noise.garbage {
				for range 1 + rng.IntN(16) {
					out = append(out, byte(rng.IntN(256)))
				}
			}
			switch r := rng.Float64(); {
			case r < p.noise.drop:
				continue
			case r < p.noise.drop+p.noise.flip:
				c ^= 1 << rng.IntN(8)
			case r < p.noise.drop+p.noise.flip+p.noise.dup:
				out = append(out, c)
			}
			out = append(out, c)
		}
		if len(out) > 0 {
			if _, werr := p.dst.Write(out); werr != nil && err == nil {
				err = werr
			}
		}
		p.mu.Lock()
		p.consumed += int64(n)
		if err != nil {
			p.err = err
		}
		p.cond.Broadcast()
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// waitConsumed blocks until the proxy has passed on total bytes.
func (p *proxy) waitConsumed(t *testing.T, total int64) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.consumed < total && p.err == nil {
		p.cond.Wait()
	}
	if p.consumed < total {
		t.Fatalf("proxy stopped after %d of %d bytes: %v", p.consumed, total, p.err)
	}
}

// serialLine is a writer end, a proxy and a reader end.
type serialLine struct {
	w, r    *Serial
	proxy   *proxy
	rejects *frametest.RejectLog
}

// mustPTYLine builds writer ─▶ pty A ─▶ proxy ─▶ pty B ─▶ reader.
func mustPTYLine(t testing.TB, opts SerialOptions, n noise) *serialLine {
	t.Helper()
	mA, sA := serialtest.MustPTYPair(t)
	mB, sB := serialtest.MustPTYPair(t)
	return mustLine(t, sA.Name(), sB.Name(), mA, mB, opts, n)
}

// mustLine opens the two ends and starts the proxy from fromWriter to
// toReader.
func mustLine(t testing.TB, writerDev, readerDev string, fromWriter io.Reader, toReader io.Writer, opts SerialOptions, n noise) *serialLine {
	t.Helper()
	l := &serialLine{rejects: &frametest.RejectLog{}}
	var err error
	if l.w, err = OpenSerial(writerDev, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.w.Close() })
	ropts := opts
	ropts.OnReject = l.rejects.Record
	if l.r, err = OpenSerial(readerDev, ropts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.r.Close() })
	l.proxy = startProxy(t, fromWriter, toReader, n)
	return l
}

// readFrame reads one frame or fails the test after 20 s.
func (l *serialLine) readFrame(t testing.TB) *frame.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := l.r.ReadFrame(ctx)
	if err != nil {
		t.Fatalf("ReadFrame: %v", err)
	}
	if rec.Name != "serial" {
		t.Fatalf("name %q", rec.Name)
	}
	if err := rec.Done(); err != nil {
		t.Fatal(err)
	}
	return rec.Frame
}

func (l *serialLine) writeFrame(t testing.TB, f *frame.Frame) int64 {
	t.Helper()
	if err := l.w.WriteFrame(context.Background(), f); err != nil {
		t.Fatalf("WriteFrame: %v", err)
	}
	wire, _ := AppendSerialFrame(nil, f)
	return int64(len(wire))
}

// goWrite writes frames on the writer end in a goroutine of its own and
// returns a channel that yields its result (nil, or the first error) once
// it has returned. The test receives from it before it ends: the writer
// goroutine never touches t, and it is done before the test's cleanup
// closes the line under it. (If the test fails first, the goroutine ends
// with ErrClosed when the cleanup closes the writer end.)
func (l *serialLine) goWrite(frames ...*frame.Frame) <-chan error {
	return goWriteTo(l.w, frames...)
}

// goWriteTo is goWrite on any serial end.
func goWriteTo(s *Serial, frames ...*frame.Frame) <-chan error {
	done := make(chan error, 1)
	go func() {
		for _, f := range frames {
			if err := s.WriteFrame(context.Background(), f); err != nil {
				done <- fmt.Errorf("WriteFrame %s %q: %w", f.Type, f.RequestID, err)
				return
			}
		}
		done <- nil
	}()
	return done
}

// mustWritten waits for a goWrite and fails the test if it failed.
func mustWritten(t testing.TB, done <-chan error) {
	t.Helper()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSerialPTYClean(t *testing.T) {
	l := mustPTYLine(t, SerialOptions{Baud: 921600, NoPace: true}, noise{})
	frames := []*frame.Frame{frametest.RequestFrame(t, "req-1", frametest.Time), frametest.Heartbeat(t, "gateway", 1, frametest.Time)}
	resp, _ := frame.NewResponseFrame(frametest.Response("req-1"), frametest.Time)
	frames = append(frames, resp)
	// A payload full of zeros and 0xFF runs exercises COBS's long blocks.
	frames = append(frames, &frame.Frame{Type: frame.TypeRefusal, RequestID: "zeros", Created: frametest.Time, Payload: append(make([]byte, 600), bytes.Repeat([]byte{0xFF}, 600)...)})
	written := l.goWrite(frames...)
	for _, f := range frames {
		if g := l.readFrame(t); !frametest.SameFrame(f, g) {
			t.Fatalf("read %s %s, want %s %s", g.Type, g.RequestID, f.Type, f.RequestID)
		}
	}
	mustWritten(t, written)
	if names, errs := l.rejects.Take(); len(names) != 0 {
		t.Fatalf("a clean line rejected %v", errs)
	}
}

// TestSerialNoise sends frames through a proxy that flips bits, drops
// and duplicates bytes and injects garbage, in rounds: a noisy burst, then
// one clean frame. Every frame that arrives must be exactly one that was
// sent (a damaged frame is never accepted), and the clean frame after
// each burst must arrive (the reader resynchronises).
func TestSerialNoise(t *testing.T) {
	l := mustPTYLine(t, SerialOptions{Baud: 921600, NoPace: true}, noise{flip: 0.001, drop: 0.0005, dup: 0.0005, garbage: 0.0005, seed: 1})
	runNoiseRounds(t, l, 12, 8)
}

func runNoiseRounds(t *testing.T, l *serialLine, rounds, burst int) {
	t.Helper()
	runNoiseRoundsFrom(t, l, rounds, burst, 0)
}

// runNoiseRoundsFrom is runNoiseRounds on a line whose proxy has already
// passed on written bytes.
func runNoiseRoundsFrom(t *testing.T, l *serialLine, rounds, burst int, written int64) {
	t.Helper()
	sent := map[string]bool{} // encodings of every frame sent
	received := make(chan *frame.Frame, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	readerDone := make(chan error, 1)
	var reader sync.WaitGroup
	defer func() { cancel(); reader.Wait() }() // the reader ends before the line is closed
	reader.Go(func() {
		for {
			rec, err := l.r.ReadFrame(ctx)
			if err != nil {
				readerDone <- err
				return
			}
			select {
			case received <- rec.Frame:
			case <-ctx.Done():
				return
			}
		}
	})
	damaged := 0
	for round := range rounds {
		// A noisy burst: frames of varied sizes, some of which are damaged.
		l.proxy.noisy.Store(true)
		for i := range burst {
			req := frametest.SendRequest(t, "noisy-"+itoa(round)+"-"+itoa(i))
			req.Sign.Intent.AmountRaw = strings.Repeat("9", 1+i*4)
			f, err := frame.NewRequestFrame(req, frametest.Time.Add(time.Duration(round*burst+i)*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			sent[string(frametest.MustMarshal(t, f))] = true
			written += l.writeFrame(t, f)
		}
		l.proxy.waitConsumed(t, written) // the burst has passed the proxy
		l.proxy.noisy.Store(false)
		clean := frametest.Heartbeat(t, "clean-"+itoa(round), uint64(round), frametest.Time)
		sent[string(frametest.MustMarshal(t, clean))] = true
		written += l.writeFrame(t, clean)
		// Everything up to the clean frame: only frames that were sent.
		for {
			var g *frame.Frame
			select {
			case g = <-received:
			case err := <-readerDone:
				t.Fatalf("reader stopped: %v", err)
			case <-time.After(20 * time.Second):
				t.Fatalf("round %d: the clean frame did not arrive", round)
			}
			if !sent[string(frametest.MustMarshal(t, g))] {
				t.Fatalf("round %d: accepted a frame that was never sent: %s %q", round, g.Type, g.RequestID)
			}
			if g.RequestID == clean.RequestID {
				break
			}
			damaged-- // one more noisy frame got through intact
		}
		damaged += burst
	}
	names, errs := l.rejects.Take()
	t.Logf("%d rounds of %d noisy frames: %d lost to noise, %d drops reported", rounds, burst, damaged, len(names))
	if damaged == 0 {
		t.Fatal("the noise damaged nothing: the test tests nothing")
	}
	for _, err := range errs {
		var fe *frame.FrameError
		if !errors.As(err, &fe) {
			t.Fatalf("drop reported as %v, not a *FrameError", err)
		}
	}
}

func itoa(i int) string { return string(rune('a'+i/26%26)) + string(rune('a'+i%26)) }

// TestSerialGarbageAndOverflow: a run longer than any frame is dropped
// whole (reported once) and the next frame is read.
func TestSerialGarbageAndOverflow(t *testing.T) {
	mA, sA := serialtest.MustPTYPair(t)
	mB, sB := serialtest.MustPTYPair(t)
	_ = mA
	_ = sA
	rejects := &frametest.RejectLog{}
	r, err := OpenSerial(sB.Name(), SerialOptions{OnReject: rejects.Record, NoPace: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f := frametest.Heartbeat(t, "relay", 3, frametest.Time)
	wire, _ := AppendSerialFrame(nil, f)
	written := make(chan error, 1)
	go func() {
		junk := bytes.Repeat([]byte{0x55}, MaxSerialFrameLength+1000)
		junk = append(junk, 0, 0, 0, 'x', 'y', 0) // empty runs, and a short bad one
		junk = append(junk, wire[1:]...)          // a frame without its leading delimiter
		junk = append(junk, wire...)
		_, err := mB.Write(junk)
		written <- err
	}()
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		rec, err := r.ReadFrame(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if !frametest.SameFrame(rec.Frame, f) {
			t.Fatalf("read %+v", rec.Frame)
		}
	}
	mustWritten(t, written)
	_, errs := rejects.Take()
	if len(errs) != 2 {
		t.Fatalf("rejects %v, want the overflow and the short run", errs)
	}
	frametest.WantCode(t, errs[0], frame.ErrCodeLength)
	frametest.WantCode(t, errs[1], frame.ErrCodeCOBS)
}

func TestStreamDecoderSplits(t *testing.T) {
	var stream []byte
	var frames []*frame.Frame
	for i := range 20 {
		f := frametest.Heartbeat(t, "s"+itoa(i), uint64(i), frametest.Time)
		frames = append(frames, f)
		stream, _ = AppendSerialFrame(stream, f)
	}
	// Fed in every chunk size, the stream yields the same frames.
	for chunk := 1; chunk <= 64; chunk++ {
		var d streamDecoder
		var got []*frame.Frame
		for off := 0; off < len(stream); off += chunk {
			p := stream[off:min(off+chunk, len(stream))]
			for len(p) > 0 {
				n, f, err := d.scan(p)
				if err != nil {
					t.Fatalf("chunk %d: %v", chunk, err)
				}
				if f != nil {
					got = append(got, f)
				}
				p = p[n:]
			}
		}
		if len(got) != len(frames) {
			t.Fatalf("chunk %d: %d frames, want %d", chunk, len(got), len(frames))
		}
		for i := range got {
			if !frametest.SameFrame(got[i], frames[i]) {
				t.Fatalf("chunk %d: frame %d differs", chunk, i)
			}
		}
	}
}

func TestSerialCloseUnblocks(t *testing.T) {
	_, tty := serialtest.MustPTYPair(t)
	s, err := OpenSerial(tty.Name(), SerialOptions{ReadTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Paced() {
		t.Fatal("a pseudo-terminal is not paced by default")
	}
	errc := make(chan error)
	go func() {
		_, err := s.ReadFrame(context.Background())
		errc <- err
	}()
	// Close while ReadFrame waits in the port's read (or before it gets
	// there): either way it returns ErrClosed.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, frame.ErrClosed) {
		t.Fatalf("ReadFrame after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.WriteFrame(context.Background(), frametest.Heartbeat(t, "x", 1, frametest.Time)); !errors.Is(err, frame.ErrClosed) {
		t.Fatalf("WriteFrame after Close: %v", err)
	}
	if _, err := s.ReadFrame(context.Background()); !errors.Is(err, frame.ErrClosed) {
		t.Fatalf("ReadFrame after Close: %v", err)
	}
}

func TestSerialContext(t *testing.T) {
	_, tty := serialtest.MustPTYPair(t)
	s, err := OpenSerial(tty.Name(), SerialOptions{ReadTimeout: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := s.ReadFrame(ctx)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadFrame: %v", err)
	}
	if err := s.WriteFrame(ctx, frametest.Heartbeat(t, "x", 1, frametest.Time)); !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteFrame: %v", err)
	}
}

func TestSerialOpenErrors(t *testing.T) {
	if _, err := OpenSerial(filepath.Join(t.TempDir(), "no-such-tty"), SerialOptions{}); err == nil {
		t.Fatal("opened a missing device")
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := OpenSerial(file, SerialOptions{}); err == nil {
		t.Fatal("opened a regular file as a serial port")
	}
	_, tty := serialtest.MustPTYPair(t)
	if _, err := OpenSerial(tty.Name(), SerialOptions{Baud: -1}); err == nil {
		t.Fatal("accepted a negative baud rate")
	}
	if IsPseudoTerminal(file) || !IsPseudoTerminal(tty.Name()) {
		t.Fatal("IsPseudoTerminal is wrong")
	}
}

// TestSerialPacing checks that a paced writer never outruns the line: n
// frames at 115200 baud take at least their line time. Only that lower
// bound is asserted: a loaded machine makes the writer slower, never
// faster, so the bound holds however busy the host is (nothing here says
// how much longer than the line time it may take).
func TestSerialPacing(t *testing.T) {
	const baud = 115200
	l := mustPTYLine(t, SerialOptions{Baud: baud}, noise{})
	if !l.w.Paced() {
		t.Fatal("not paced")
	}
	f := frametest.RequestFrame(t, "withdrawal-2026-0001", frametest.Time)
	wire, _ := AppendSerialFrame(nil, f)
	const n = 10
	want := LineTime(n*len(wire), baud)
	frames := make([]*frame.Frame, n)
	for i := range frames {
		frames[i] = f
	}
	start := time.Now()
	written := l.goWrite(frames...)
	for range n {
		l.readFrame(t)
	}
	took := time.Since(start)
	// The writer has returned (its last write may return a little after
	// the reader has the bytes) before the cleanup closes the line.
	mustWritten(t, written)
	t.Logf("%d frames of %d bytes at %d baud: %v (line time %v)", n, len(wire), baud, took, want)
	// The last chunk of the last frame may arrive before its line time is
	// up (a write returns when the driver has the bytes). Every other
	// chunk waits for the line time of the bytes before it, counted from
	// the first write: a writer that fell behind catches up to that clock,
	// never past it, and one idle for over paceSlack restarts it later.
	if floor := want - LineTime(l.w.chunk, baud); took < floor {
		t.Fatalf("took %v, faster than the line allows (%v)", took, floor)
	}
}

// TestSerialSocat runs the noise rounds over two socat null-modem pairs,
// with the proxy in the middle on plain serial ports:
//
//	writer ─▶ a1 ═socat═ b1 ─▶ proxy ─▶ a2 ═socat═ b2 ─▶ reader
func TestSerialSocat(t *testing.T) {
	a1, b1 := serialtest.StartSocatPair(t)
	a2, b2 := serialtest.StartSocatPair(t)
	open := func(dev string) serial.Port {
		p, err := serial.Open(dev, &serial.Mode{BaudRate: 921600})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	mid1, mid2 := open(b1), open(a2)
	if !IsPseudoTerminal(a1) {
		t.Fatalf("%s is not seen as a pseudo-terminal", a1)
	}
	l := mustLine(t, a1, b2, mid1, mid2, SerialOptions{Baud: 921600, NoPace: true},
		noise{flip: 0.001, drop: 0.0005, dup: 0.0005, garbage: 0.0005, seed: 2})
	// A clean frame first, then the noise rounds.
	f := frametest.RequestFrame(t, "socat-clean", frametest.Time)
	written := l.goWrite(f)
	if g := l.readFrame(t); !frametest.SameFrame(g, f) {
		t.Fatal("the clean frame differs")
	}
	mustWritten(t, written)
	l.proxy.waitConsumed(t, int64(len(mustMarshalSerial(t, f))))
	runNoiseRoundsFrom(t, l, 6, 8, int64(len(mustMarshalSerial(t, f))))
}

func mustMarshalSerial(t testing.TB, f *frame.Frame) []byte {
	t.Helper()
	b, err := AppendSerialFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
