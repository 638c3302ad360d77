package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// WorkProvider finds proof of work. Generate returns a nonce whose value
// over root is at least threshold, checked locally with nano.ValidateWork
// whatever produced it; it returns an error wrapping ErrInvalidWork or
// ErrNoWork when none was found, or the context's error.
type WorkProvider interface {
	Generate(ctx context.Context, root nano.Hash, threshold uint64) (nano.Work, error)
}

// NodeWork generates work with the node's work_generate (which may use
// the node's work peers), passing the threshold as the difficulty.
type NodeWork struct {
	Client *Client
}

// Generate asks the node for work.
func (p NodeWork) Generate(ctx context.Context, root nano.Hash, threshold uint64) (nano.Work, error) {
	return p.Client.WorkGenerate(ctx, root, threshold)
}

// CPUWork generates work on this host's CPU with nano.GenerateWork.
type CPUWork struct {
	Options nano.WorkOptions
}

// Generate searches for work.
func (p CPUWork) Generate(ctx context.Context, root nano.Hash, threshold uint64) (nano.Work, error) {
	r, err := nano.GenerateWork(ctx, root, threshold, p.Options)
	if err != nil {
		if errors.Is(err, nano.ErrNoWork) {
			return 0, fmt.Errorf("node: cpu work: %w: %w", ErrNoWork, err)
		}
		return 0, fmt.Errorf("node: cpu work: %w", err)
	}
	if !nano.ValidateWork(root, r.Work, threshold) {
		return 0, fmt.Errorf("node: cpu work: %w", ErrInvalidWork)
	}
	return r.Work, nil
}

// ServerWork races several work servers (nano-work-server, or nodes),
// which speak the node's work_generate and work_cancel JSON. Every server
// is asked at once; the first answer that validates locally wins, and the
// others are sent work_cancel. An answer that does not validate is
// refused and the race goes on.
type ServerWork struct {
	Servers []*Client
	// CancelTimeout bounds each work_cancel; 0 means 5 s.
	CancelTimeout time.Duration
	// Log receives refused answers; nil discards.
	Log *slog.Logger
}

// Generate runs the race.
func (p *ServerWork) Generate(ctx context.Context, root nano.Hash, threshold uint64) (nano.Work, error) {
	if len(p.Servers) == 0 {
		return 0, fmt.Errorf("node: work servers: %w: none configured", ErrNoWork)
	}
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	race, stop := context.WithCancel(ctx)
	defer stop()
	type answer struct {
		i   int
		w   nano.Work
		err error
	}
	answers := make(chan answer, len(p.Servers))
	for i, s := range p.Servers {
		go func() {
			w, err := s.WorkGenerate(race, root, threshold)
			answers <- answer{i, w, err}
		}()
	}
	var errs []error
	for range p.Servers {
		a := <-answers
		if a.err == nil && nano.ValidateWork(root, a.w, threshold) {
			stop()
			p.cancelOthers(root, a.i)
			return a.w, nil
		}
		if a.err == nil {
			a.err = ErrInvalidWork
		}
		if race.Err() == nil {
			log.Warn("node: work server failed", "server", a.i, "err", a.err)
		}
		errs = append(errs, fmt.Errorf("server %d: %w", a.i, a.err))
	}
	if ctx.Err() != nil {
		return 0, fmt.Errorf("node: work servers: %w", ctx.Err())
	}
	return 0, fmt.Errorf("node: work servers: %w: %w", ErrNoWork, errors.Join(errs...))
}

// cancelOthers sends work_cancel to every server but the winner, in the
// background.
func (p *ServerWork) cancelOthers(root nano.Hash, winner int) {
	timeout := p.CancelTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	for i, s := range p.Servers {
		if i == winner {
			continue
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			_ = s.WorkCancel(ctx, root)
		}()
	}
}
