package gateway

import (
	"context"
	"errors"
	"syscall"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/gateway/leader"
	"github.com/nanokms/nanokms/internal/health"
)

// Writes that fail. The gateway keeps running when its state file or the
// bridge medium cannot be written: what it could not record or write
// stays as it was (a bbolt commit is all or nothing; a frame file appears
// only whole), the loops retry with a capped backoff, the gateway reports
// itself not ready (Health: the gRPC health service NOT_SERVING, /readyz
// 503), and all goes on once writes succeed again.

// ErrStoreFull is wrapped by the error of a write to the gateway's state
// file that failed for lack of space (ENOSPC or EDQUOT): nothing of it was
// recorded. Submit returns it (ResourceExhausted). A write to the medium
// that fails for lack of space wraps ErrMediumFull: a request frame leaves
// nothing under a frame's name, and an answer that cannot be settled stays
// where it was and is read again.
var ErrStoreFull = errors.New("the gateway's state store is full")

// Where the gateway's writes can fail (WriteHealth, ObserveWriteFault).
const (
	WriteTargetStore    = "store"    // the state file
	WriteTargetOutbound = "outbound" // request frames written to the medium
	WriteTargetInbound  = "inbound"  // answers settled on the medium (moved to done/ or quarantine/)
)

// writeTargets is the order WriteHealth reports the targets in.
var writeTargets = []string{WriteTargetStore, WriteTargetOutbound, WriteTargetInbound}

// isNoSpace reports whether err is a write failing for lack of space.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// isFull reports whether err is a failure the gateway rides out: a full
// state file or medium, or a state database out of reach.
func isFull(err error) bool {
	return errors.Is(err, ErrStoreFull) || errors.Is(err, filemedium.ErrMediumFull) || errors.Is(err, ErrStoreUnavailable)
}

// WriteHealth returns nil while the gateway's writes succeed, or the
// errors of the targets whose last write failed (wrapping ErrStoreFull or
// ErrMediumFull when for lack of space), and a channel closed at the next
// change.
func (g *Gateway) WriteHealth() (<-chan struct{}, error) {
	g.faultMu.Lock()
	defer g.faultMu.Unlock()
	var errs []error
	for _, target := range writeTargets {
		if err := g.faults[target]; err != nil {
			errs = append(errs, err)
		}
	}
	return g.faultChanged, errors.Join(errs...)
}

// setFault records the outcome of a write to target: err, or nil when it
// succeeded. A change is logged, told to the observer and to WriteHealth's
// channel; a failing state file starts the probe.
func (g *Gateway) setFault(target string, err error) {
	g.faultMu.Lock()
	was := g.faults[target]
	if err != nil {
		g.faults[target] = err
	} else {
		delete(g.faults, target)
	}
	changed := (was == nil) != (err == nil)
	if changed {
		close(g.faultChanged)
		g.faultChanged = make(chan struct{})
	}
	g.faultMu.Unlock()
	if !changed {
		return
	}
	if err != nil {
		g.log.Error("writes fail; the gateway reports NOT_SERVING until they succeed", "target", target, "error", err.Error())
		if target == WriteTargetStore {
			select {
			case g.probeKick <- struct{}{}:
			default:
			}
		}
	} else {
		g.log.Info("writes succeed again", "target", target)
	}
	if g.onWriteFault != nil {
		g.onWriteFault(target, err)
	}
}

// fault returns the last failure of writes to target, or nil.
func (g *Gateway) fault(target string) error {
	g.faultMu.Lock()
	defer g.faultMu.Unlock()
	return g.faults[target]
}

// probeLoop finds out when the state file takes writes again after they
// failed, with nothing else to write (a refused submission is not retried
// by the gateway): with a capped backoff it probes the store until a
// commit succeeds, which clears the fault.
func (g *Gateway) probeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.probeKick:
		}
		var pace retryBackoff
		for {
			err := g.fault(WriteTargetStore)
			if err == nil {
				break
			}
			if !sleepCtx(ctx, pace.next()) {
				return
			}
			if err := g.store.probe(errors.Is(err, ErrStoreFull)); err != nil {
				g.log.Debug("the state file does not take writes yet", "error", err.Error())
			}
		}
	}
}

// Health is the gateway's readiness (package health), which ServeCustody's
// gRPC health service and /readyz (the command serves Health().Handler()
// on the metrics listener) both report: ready when every check passes.
//
//   - "store": the state file takes writes (the last commit did not fail);
//   - "medium": the bridge medium is there (Options.MediumCheck) and the
//     last writes of request frames and of settled answers did not fail;
//   - "node", with Options.NodeCheck: the node answers now;
//   - "election", with Options.Elector: the leader election reaches the
//     database (a gateway that loses it stops driving the medium).
//
// The write faults are states the gateway keeps (WriteHealth's channel
// wakes the monitor); the medium's presence and the node are probed when
// /readyz is asked and every few seconds while ServeCustody runs the
// monitor.
func (g *Gateway) Health() *health.Monitor { return g.health }

// readiness returns the checks of Health.
func (g *Gateway) readiness(medium, node func(context.Context) error, e *leader.Elector) []health.Check {
	changed := func() <-chan struct{} { ch, _ := g.WriteHealth(); return ch }
	checks := []health.Check{
		{Name: "store", Probe: func(context.Context) error { return g.fault(WriteTargetStore) }, Changed: changed},
		{Name: "medium", Probe: func(ctx context.Context) error {
			if medium != nil {
				if err := medium(ctx); err != nil {
					return err
				}
			}
			return errors.Join(g.fault(WriteTargetOutbound), g.fault(WriteTargetInbound))
		}, Changed: changed},
	}
	if node != nil {
		checks = append(checks, health.Check{Name: "node", Probe: node})
	}
	if e != nil {
		checks = append(checks, electionCheck(e))
	}
	return checks
}
