package frame

import (
	"context"
	"errors"
)

// FrameWriter puts frames on the medium. WriteFrame returns only when the
// frame is durably on the medium (file: renamed into place and the
// directory synced; serial: written to the port).
type FrameWriter interface {
	WriteFrame(ctx context.Context, f *Frame) error
}

// FrameReader takes checked frames off the medium, in order. Frames that
// fail the checks are quarantined (file) or dropped (serial) by the reader
// itself, with their reason reported to its OnReject callback; they are
// never returned. ReadFrame blocks until a frame arrives or ctx is done.
type FrameReader interface {
	ReadFrame(ctx context.Context) (*Received, error)
}

// Received is a checked frame and the means to settle it. The consumer
// calls exactly one of Done or Reject once it has acted on the frame
// (for a request: once the answer is written), so that a crash before that
// leaves the frame to be read again.
type Received struct {
	Frame *Frame
	// Name says where the frame came from: a file name, or "serial".
	Name string

	done   func() error
	reject func(reason string) error
}

// NewReceived returns a Received settled by done and reject (either may be
// nil for a medium that keeps nothing, such as a serial line).
func NewReceived(f *Frame, name string, done func() error, reject func(reason string) error) *Received {
	return &Received{Frame: f, Name: name, done: done, reject: reject}
}

// Done marks the frame handled (a file moves to done/).
func (r *Received) Done() error {
	if r.done == nil {
		return nil
	}
	return r.done()
}

// Reject quarantines the frame with reason (a file moves to quarantine/
// with a .reason file beside it).
func (r *Received) Reject(reason string) error {
	if r.reject == nil {
		return nil
	}
	return r.reject(reason)
}

// RejectFunc receives every frame a reader refuses: its name and why.
type RejectFunc func(name string, err error)

// ErrClosed is returned by a transport after Close.
var ErrClosed = errors.New("frame: transport closed")
