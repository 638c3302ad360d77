package bridge

import (
	"errors"
	"log/slog"

	"github.com/nanokms/nanokms/bridge/filemedium"
)

// Reporter is told what the medium refused and what went wrong on it
// (the relay's and the gateway's metrics).
type Reporter interface {
	FrameRejected(name string, err error)
	MediumError(err error)
}

// OpenReported is Open with the reports every role makes: a refused
// frame logged as a warning, an entry that does not belong on the medium
// as an error, any other medium failure as a warning, each also told to
// r.
func OpenReported(cfg Config, side Side, log *slog.Logger, r Reporter) (*Medium, error) {
	return Open(cfg, side,
		func(name string, err error) {
			log.Warn("frame refused", "file", name, "error", err.Error())
			r.FrameRejected(name, err)
		},
		func(err error) {
			if errors.Is(err, filemedium.ErrBadEntry) {
				log.Error("bridge medium: an entry that does not belong", "error", err.Error())
			} else {
				log.Warn("bridge medium", "error", err.Error())
			}
			r.MediumError(err)
		})
}
