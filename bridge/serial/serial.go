package serial

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.bug.st/serial"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
)

// The serial transport (FRAMES.md, "Serial transport"): each frame is
// COBS-encoded and sent as 0x00 ‖ COBS(frame) ‖ 0x00, 8N1, no flow
// control. The receiver collects bytes up to a 0x00, decodes them and
// checks the frame; anything bad is dropped up to the next 0x00, which is
// how it resynchronises after noise. The leading 0x00 ends whatever
// garbage (or half-sent frame) came before.

// DefaultBaud is the line speed unless told otherwise.
const DefaultBaud = 115200

// DefaultSerialReadTimeout is how long one read of the port waits before
// ReadFrame looks at its context again.
const DefaultSerialReadTimeout = 100 * time.Millisecond

// MaxSerialFrameLength bounds the bytes between two delimiters: the COBS
// encoding of a MaxFrameLength frame. A longer run is dropped whole.
const MaxSerialFrameLength = frame.MaxFrameLength + frame.MaxFrameLength/254 + 1

// paceSlack is how far a paced writer may fall behind the line clock and
// still catch up: sleeps overshoot and a loaded host deschedules the
// writer, and a real UART's transmit buffer would have kept sending
// meanwhile. A line idle for longer starts afresh, so over any window
// longer than paceSlack the writer never beats the line rate.
const paceSlack = 100 * time.Millisecond

// SerialOptions configures a serial transport.
type SerialOptions struct {
	// Baud is the line speed; 0 means DefaultBaud.
	Baud int
	// Pace paces writes to Baud/10 bytes per second (8N1: ten bit times a
	// byte) even on a real serial port, whose UART does that anyway.
	// Writes to a pseudo-terminal (a device under /dev/pts, such as either
	// end of a socat null-modem pair) are paced unless NoPace is set: a
	// pseudo-terminal ignores the baud rate and would otherwise deliver
	// frames as fast as memory copies them.
	Pace bool
	// NoPace turns pacing off, even on a pseudo-terminal (for tests and
	// benchmarks that want the raw speed).
	NoPace bool
	// OnReject is told of every frame the reader drops (name "serial"),
	// and of every Received it is asked to Reject.
	OnReject frame.RejectFunc
	// ReadTimeout is how long one read of the port waits before ReadFrame
	// looks at its context again; 0 means DefaultSerialReadTimeout.
	ReadTimeout time.Duration
}

// Serial is a frame transport over a serial line: both a FrameWriter and
// a FrameReader. WriteFrame is safe for concurrent use (frames are never
// interleaved); ReadFrame may be called from one goroutine at a time. The
// Received frames it returns need no settling: Done does nothing and
// Reject only reports to OnReject (a serial line keeps nothing to move).
type Serial struct {
	port     serial.Port
	device   string
	onReject frame.RejectFunc
	closed   chan struct{}
	once     sync.Once

	// write side
	wmu      sync.Mutex
	pace     bool
	baud     int
	chunk    int       // bytes written at a time when pacing
	lineFree time.Time // when the line will have sent everything written so far
	wbuf     []byte

	// read side
	rmu  sync.Mutex
	dec  streamDecoder
	buf  [4096]byte
	rbuf []byte // read from the port, not yet scanned (aliases buf)
}

// OpenSerial opens device (e.g. "/dev/ttyUSB0") at opts.Baud, 8N1, raw,
// without flow control.
func OpenSerial(device string, opts SerialOptions) (*Serial, error) {
	baud := opts.Baud
	if baud == 0 {
		baud = DefaultBaud
	}
	if baud < 0 {
		return nil, fmt.Errorf("serial: serial %s: baud %d", device, baud)
	}
	timeout := opts.ReadTimeout
	if timeout <= 0 {
		timeout = DefaultSerialReadTimeout
	}
	port, err := serial.Open(device, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, fmt.Errorf("serial: opening serial %s: %w", device, err)
	}
	if err := port.SetReadTimeout(timeout); err != nil {
		port.Close()
		return nil, fmt.Errorf("serial: serial %s: %w", device, err)
	}
	s := &Serial{
		port:     port,
		device:   device,
		onReject: opts.OnReject,
		closed:   make(chan struct{}),
		pace:     !opts.NoPace && (opts.Pace || IsPseudoTerminal(device)),
		baud:     baud,
		chunk:    max(16, baud/10/200), // 5 ms of line time
	}
	return s, nil
}

// Present reports whether the line's device is there now: nil if its
// path (a link such as /dev/serial/by-id/..., followed) names a
// character device. An unplugged USB adapter's node and links go away:
// the error then wraps fs.ErrNotExist. It does not touch the line.
func (s *Serial) Present() error {
	fi, err := os.Stat(s.device)
	if err != nil {
		return fmt.Errorf("serial: %w", err)
	}
	if fi.Mode()&os.ModeCharDevice == 0 {
		return fmt.Errorf("serial: %s is not a character device (%s)", s.device, fi.Mode().Type())
	}
	return nil
}

// IsPseudoTerminal reports whether device (after following symbolic
// links) is a pseudo-terminal's subsidiary end under /dev/pts.
func IsPseudoTerminal(device string) bool {
	p, err := filepath.EvalSymlinks(device)
	if err != nil {
		return false
	}
	return strings.HasPrefix(p, "/dev/pts/")
}

// Device returns the device the transport was opened on.
func (s *Serial) Device() string { return s.device }

// Paced reports whether writes are paced to the baud rate.
func (s *Serial) Paced() bool { return s.pace }

// AppendSerialFrame appends f as it goes on a serial line — 0x00 ‖
// COBS(frame) ‖ 0x00 — to dst.
func AppendSerialFrame(dst []byte, f *frame.Frame) ([]byte, error) {
	data, err := f.MarshalBinary()
	if err != nil {
		return dst, err
	}
	dst = append(dst, 0)
	dst = frame.COBSEncode(dst, data)
	return append(dst, 0), nil
}

// LineTime returns how long n bytes take on a line of baud (8N1: ten bit
// times a byte).
func LineTime(n, baud int) time.Duration {
	return time.Duration(int64(n) * 10 * int64(time.Second) / int64(baud))
}

// WriteFrame encodes f and writes it to the port, paced if pacing is on.
// It returns once the last byte is handed to the port's driver. If ctx
// ends in the middle of a paced frame, the rest is not sent: the receiver
// drops the partial frame when the next one's leading 0x00 arrives.
func (s *Serial) WriteFrame(ctx context.Context, f *frame.Frame) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.isClosed() {
		return frame.ErrClosed
	}
	wire, err := AppendSerialFrame(s.wbuf[:0], f)
	if err != nil {
		return err
	}
	s.wbuf = wire
	if !s.pace {
		return s.write(wire)
	}
	for len(wire) > 0 {
		if err := s.waitUntil(ctx, s.lineFree); err != nil {
			return err
		}
		chunk := wire[:min(len(wire), s.chunk)]
		start := s.lineFree
		if now := time.Now(); now.Sub(start) > paceSlack {
			start = now // the line was idle: no credit for the idle time
		}
		if err := s.write(chunk); err != nil {
			return err
		}
		s.lineFree = start.Add(LineTime(len(chunk), s.baud))
		wire = wire[len(chunk):]
	}
	return nil
}

// write writes all of p to the port.
func (s *Serial) write(p []byte) error {
	for len(p) > 0 {
		n, err := s.port.Write(p)
		if s.isClosed() {
			return frame.ErrClosed
		}
		if err != nil {
			return fmt.Errorf("serial: writing to %s: %w", s.device, err)
		}
		if n == 0 {
			return fmt.Errorf("serial: writing to %s: %w", s.device, io.ErrShortWrite)
		}
		p = p[n:]
	}
	return nil
}

// waitUntil sleeps until t, ctx's end or Close.
func (s *Serial) waitUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return frame.ErrClosed
	}
}

// ReadFrame returns the next frame that passes DecodeFrame's checks.
// Everything else between delimiters is dropped and reported to OnReject.
// It blocks until a frame arrives, ctx is done (ctx.Err()), or the
// transport is closed (ErrClosed).
func (s *Serial) ReadFrame(ctx context.Context) (*frame.Received, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for {
		for len(s.rbuf) > 0 {
			n, f, err := s.dec.scan(s.rbuf)
			s.rbuf = s.rbuf[n:]
			if err != nil {
				s.reject(err)
				continue
			}
			if f != nil {
				return frame.NewReceived(f, "serial", nil, func(reason string) error {
					s.reject(&filemedium.RejectedError{Reason: reason})
					return nil
				}), nil
			}
		}
		if s.isClosed() {
			return nil, frame.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := s.port.Read(s.buf[:])
		if s.isClosed() {
			return nil, frame.ErrClosed
		}
		if err != nil {
			var pe *serial.PortError
			if errors.As(err, &pe) && pe.Code() == serial.PortClosed {
				return nil, frame.ErrClosed
			}
			return nil, fmt.Errorf("serial: reading from %s: %w", s.device, err)
		}
		s.rbuf = s.buf[:n] // n == 0: the read timed out
	}
}

func (s *Serial) reject(err error) {
	if s.onReject != nil {
		s.onReject("serial", err)
	}
}

func (s *Serial) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// Close closes the port and makes a blocked ReadFrame (and a paced
// WriteFrame waiting for the line) return ErrClosed. It is idempotent. A
// write the driver itself blocks (a pseudo-terminal nobody reads) is not
// interrupted.
func (s *Serial) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		err = s.port.Close()
	})
	return err
}

// streamDecoder splits a byte stream at 0x00 delimiters and decodes each
// run as a COBS-encoded frame. A run longer than MaxSerialFrameLength is
// dropped (reported once) up to the next delimiter.
type streamDecoder struct {
	acc        []byte // the current run
	discarding bool   // the current run overflowed
	scratch    []byte
}

// scan consumes p up to and including the first delimiter that ends a
// non-empty run (or all of p). It returns the bytes consumed, and the
// decoded frame or the reason the run was dropped (both nil when p ran
// out, or a run overflowed without a new report).
func (d *streamDecoder) scan(p []byte) (n int, f *frame.Frame, err error) {
	for n < len(p) {
		i := bytes.IndexByte(p[n:], 0)
		end := len(p)
		if i >= 0 {
			end = n + i
		}
		seg := p[n:end]
		if !d.discarding {
			if len(d.acc)+len(seg) > MaxSerialFrameLength {
				d.acc = d.acc[:0]
				d.discarding = true
				err = frame.Errorf(frame.ErrCodeLength, "more than %d bytes between delimiters", MaxSerialFrameLength)
			} else {
				d.acc = append(d.acc, seg...)
			}
		}
		if i < 0 {
			return len(p), nil, err
		}
		n = end + 1
		if d.discarding {
			d.discarding = false
			if err != nil {
				return n, nil, err
			}
			continue
		}
		if len(d.acc) == 0 {
			continue // back-to-back delimiters
		}
		f, err = d.decode()
		d.acc = d.acc[:0]
		return n, f, err
	}
	return n, nil, err
}

func (d *streamDecoder) decode() (*frame.Frame, error) {
	var err error
	d.scratch, err = frame.COBSDecode(d.scratch[:0], d.acc)
	if err != nil {
		return nil, err
	}
	return frame.DecodeFrame(d.scratch)
}
