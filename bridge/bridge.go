package bridge

import (
	"context"
	"errors"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/serial"
)

// Side is which end of the bridge a medium is opened for.
type Side int

// The two ends.
const (
	Cold Side = iota // the relay: reads requests, writes answers
	Hot              // the gateway: writes requests, reads answers
)

// Medium is an opened bridge end.
type Medium struct {
	Writer  frame.FrameWriter
	Reader  frame.FrameReader
	close   func() error
	present func() error
}

// Present reports whether the medium is there now (a readiness check): a
// file medium's two directories beneath its root (filemedium.CheckDir:
// nothing followed, made or moved), a serial line's device
// (serial.Serial.Present). It returns nil if so, or what is missing
// (wrapping fs.ErrNotExist when something is). ctx is not needed by the
// checks, which make a few system calls and no I/O on the frames.
func (m *Medium) Present(context.Context) error {
	if m.present == nil {
		return errors.New("bridge: the medium is not open")
	}
	return m.present()
}

// Close releases the medium; it is safe to call more than once.
func (m *Medium) Close() error {
	if m.close == nil {
		return nil
	}
	err := m.close()
	m.close = nil
	return err
}

// OpenMedium opens the medium cfg describes for side. A file medium's
// directories are created (mode 0700) when missing; a bad entry where one
// belongs (a symbolic link, a file) is set aside, reported to onError and
// replaced by a directory, so that no planted entry stops the side from
// starting. onReject is told of every refused frame; onError of what a
// file medium rides out (FileReaderOptions.OnError, FileWriterOptions.OnError).
func Open(cfg Config, side Side, onReject frame.RejectFunc, onError func(error)) (*Medium, error) {
	types := sideTypes(side)
	switch cfg.Kind {
	case "file":
		report := onError
		if report == nil {
			report = func(error) {}
		}
		for _, dir := range []string{cfg.Inbound, cfg.Outbound} {
			if err := filemedium.PrepareDir(cfg.Root, dir, report); err != nil {
				return nil, err
			}
		}
		w, err := filemedium.OpenFileWriter(cfg.Outbound, filemedium.FileWriterOptions{Root: cfg.Root, OnError: onError})
		if err != nil {
			return nil, err
		}
		r, err := filemedium.NewFileReader(cfg.Inbound, filemedium.FileReaderOptions{
			MaxAge: cfg.MaxAge, MaxFutureSkew: cfg.MaxFutureSkew, PollInterval: cfg.PollInterval,
			OnReject: onReject, OnError: onError, Types: types, Root: cfg.Root,
		})
		if err != nil {
			return nil, err
		}
		present := func() error {
			for _, dir := range []string{cfg.Inbound, cfg.Outbound} {
				if err := filemedium.CheckDir(cfg.Root, dir); err != nil {
					return err
				}
			}
			return nil
		}
		return &Medium{Writer: w, Reader: r, close: r.Close, present: present}, nil
	case "serial":
		s, err := serial.OpenSerial(cfg.Device, serial.SerialOptions{Baud: cfg.Baud, Pace: cfg.Pace, OnReject: onReject})
		if err != nil {
			return nil, err
		}
		return &Medium{Writer: s, Reader: &typeFilter{r: s, types: types, onReject: onReject}, close: s.Close, present: s.Present}, nil
	}
	return nil, errors.New("bridge: bridge.kind must be file or serial")
}

// sideTypes returns the frame types side reads.
func sideTypes(side Side) []frame.FrameType {
	if side == Hot {
		return []frame.FrameType{frame.TypeResponse, frame.TypeRefusal, frame.TypeHeartbeat}
	}
	return []frame.FrameType{frame.TypeRequest, frame.TypeHeartbeat}
}

// FilterTypes returns a reader of r's frames that drops, reporting each to
// onReject, those of types side does not read (Open does this for a
// serial line).
func FilterTypes(r frame.FrameReader, side Side, onReject frame.RejectFunc) frame.FrameReader {
	return &typeFilter{r: r, types: sideTypes(side), onReject: onReject}
}

// typeFilter drops frames of types this side does not take (a serial line
// carries both directions' types only by mistake or malice).
type typeFilter struct {
	r        frame.FrameReader
	types    []frame.FrameType
	onReject frame.RejectFunc
}

func (t *typeFilter) ReadFrame(ctx context.Context) (*frame.Received, error) {
	for {
		rec, err := t.r.ReadFrame(ctx)
		if err != nil {
			return nil, err
		}
		for _, ty := range t.types {
			if rec.Frame.Type == ty {
				return rec, nil
			}
		}
		if t.onReject != nil {
			t.onReject(rec.Name, frame.Errorf(frame.ErrCodeType, "a %s frame does not belong on this side", rec.Frame.Type))
		}
	}
}
