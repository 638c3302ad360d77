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

// BatchWriter is a FrameWriter that can put several frames on the medium
// at the cost of one: a file medium writes and syncs each frame's file,
// renames them all into place and syncs the directory once.
type BatchWriter interface {
	FrameWriter
	// WriteFrames writes fs in order and returns once the first n are
	// durably on the medium. On an error the frames after the first n are
	// not on the medium (a file medium leaves none of them under its
	// name, and none half-written); err says why.
	WriteFrames(ctx context.Context, fs []*Frame) (n int, err error)
}

// WriteAll writes fs to w: in one batch when w is a BatchWriter, else one
// WriteFrame after the other. It returns how many of fs, from the first,
// are durably on the medium, and the error that stopped the rest.
func WriteAll(ctx context.Context, w FrameWriter, fs []*Frame) (int, error) {
	if len(fs) == 0 {
		return 0, nil
	}
	if bw, ok := w.(BatchWriter); ok {
		return bw.WriteFrames(ctx, fs)
	}
	for i, f := range fs {
		if err := w.WriteFrame(ctx, f); err != nil {
			return i, err
		}
	}
	return len(fs), nil
}

// BatchReader is a FrameReader that hands out, and settles, all the
// frames waiting at once: a file medium lists its directory once for
// them and moves them all into done/ with one sync of each directory.
type BatchReader interface {
	FrameReader
	// ReadFrames blocks as ReadFrame does until a frame is there, then
	// returns it and the others ready with it, at most max (max < 1
	// means 1).
	ReadFrames(ctx context.Context, max int) ([]*Received, error)
	// DoneAll marks recs handled, as Done does each of them. Frames it
	// could not settle stay where they are (read again later, as after a
	// crash); only a failure that stops the medium is returned.
	DoneAll(recs []*Received) error
}

// ReadBatch returns the next frames from r: up to max at once when r is a
// BatchReader, else the one ReadFrame returns.
func ReadBatch(ctx context.Context, r FrameReader, max int) ([]*Received, error) {
	if br, ok := r.(BatchReader); ok {
		return br.ReadFrames(ctx, max)
	}
	rec, err := r.ReadFrame(ctx)
	if err != nil {
		return nil, err
	}
	return []*Received{rec}, nil
}

// DoneAll settles recs, frames r handed out, as handled: at once when r
// is a BatchReader, else one Done after the other (the first error
// stops it).
func DoneAll(r FrameReader, recs []*Received) error {
	if len(recs) == 0 {
		return nil
	}
	if br, ok := r.(BatchReader); ok {
		return br.DoneAll(recs)
	}
	for _, rec := range recs {
		if err := rec.Done(); err != nil {
			return err
		}
	}
	return nil
}
