package node

import (
	"fmt"
	"strconv"

	"github.com/nanokms/nanokms/nano"
)

// ActiveDifficulty is the node's view of the work difficulty on the
// network (the active_difficulty RPC and WebSocket topic).
type ActiveDifficulty struct {
	// NetworkMinimum and NetworkCurrent are the base threshold and the
	// current trended difficulty. Before V21 the base is the epoch-1
	// threshold, for every block; since V21 it is the send/change one.
	NetworkMinimum, NetworkCurrent uint64
	// NetworkReceiveMinimum and NetworkReceiveCurrent are the same for
	// receive blocks (V21+); zero when the node did not print them.
	NetworkReceiveMinimum, NetworkReceiveCurrent uint64
	// Multiplier is the node's own NetworkCurrent/NetworkMinimum ratio, as
	// printed; informational (Raise computes its own).
	Multiplier float64
}

// MaxMultiplier caps how far the node's active difficulty may raise a
// threshold (the node's own default max_work_generate_multiplier): a node
// reporting an absurd difficulty cannot make nanokms work forever.
const MaxMultiplier = 64

// Current returns the current threshold for a block of subtype s as the
// node reports it: NetworkReceiveCurrent for receive, open and epoch
// blocks when printed, NetworkCurrent otherwise.
func (d ActiveDifficulty) Current(s nano.Subtype) uint64 {
	if isReceiveClass(s) && d.NetworkReceiveMinimum != 0 {
		return d.NetworkReceiveCurrent
	}
	return d.NetworkCurrent
}

// Raise returns base raised by the node's active difficulty for a block of
// subtype s: base scaled by the ratio between the current and minimum
// difficulty the node reports for that kind of block (capped at
// MaxMultiplier), and never below the node's current difficulty when base
// is the node's minimum. It never returns less than base.
func (d ActiveDifficulty) Raise(base uint64, s nano.Subtype) uint64 {
	lo, cur := d.NetworkMinimum, d.NetworkCurrent
	if isReceiveClass(s) && d.NetworkReceiveMinimum != 0 {
		lo, cur = d.NetworkReceiveMinimum, d.NetworkReceiveCurrent
	}
	if lo == 0 || cur <= lo || base == 0 {
		return base
	}
	// The multiplier of difficulty t over base b is (2^64 − b)/(2^64 − t).
	m := float64(-lo) / float64(-cur)
	if m > MaxMultiplier {
		m = MaxMultiplier
	}
	raised := -uint64(float64(-base) / m)
	if base == lo && cur > raised && float64(-lo)/float64(-cur) <= MaxMultiplier {
		raised = cur
	}
	return max(base, raised)
}

func isReceiveClass(s nano.Subtype) bool {
	return s == nano.SubtypeReceive || s == nano.SubtypeOpen || s == nano.SubtypeEpoch
}

// DifficultySource reports the node's active difficulty, if known. *WS is
// one (from the active_difficulty topic).
type DifficultySource interface {
	Difficulty() (ActiveDifficulty, bool)
}

// WorkThresholds are a network's base work thresholds. The zero value
// means the live network's epoch-2 thresholds (nano.ThresholdSend,
// nano.ThresholdReceive); test and dev networks use lower ones.
type WorkThresholds struct {
	Send, Receive uint64
}

// For returns the base threshold for a block of subtype s.
func (t WorkThresholds) For(s nano.Subtype) uint64 {
	if t.Send == 0 && t.Receive == 0 {
		return s.WorkThreshold()
	}
	if isReceiveClass(s) {
		return t.Receive
	}
	return t.Send
}

// Threshold picks the work threshold for a block of subtype s: the base
// threshold for s, raised by the node's active difficulty when d knows it.
func Threshold(s nano.Subtype, base WorkThresholds, d DifficultySource) uint64 {
	t := base.For(s)
	if d != nil {
		if ad, ok := d.Difficulty(); ok {
			t = ad.Raise(t, s)
		}
	}
	return t
}

// difficultyWire is the JSON of an active_difficulty answer or message.
type difficultyWire struct {
	NetworkMinimum        *string `json:"network_minimum"`
	NetworkCurrent        *string `json:"network_current"`
	NetworkReceiveMinimum *string `json:"network_receive_minimum"`
	NetworkReceiveCurrent *string `json:"network_receive_current"`
	Multiplier            *string `json:"multiplier"`
}

func (w *difficultyWire) parse(action string) (ActiveDifficulty, error) {
	f := fields{action: action}
	d := ActiveDifficulty{
		NetworkMinimum:        f.difficulty("network_minimum", w.NetworkMinimum, true),
		NetworkCurrent:        f.difficulty("network_current", w.NetworkCurrent, true),
		NetworkReceiveMinimum: f.difficulty("network_receive_minimum", w.NetworkReceiveMinimum, false),
		NetworkReceiveCurrent: f.difficulty("network_receive_current", w.NetworkReceiveCurrent, false),
	}
	if f.err != nil {
		return ActiveDifficulty{}, f.err
	}
	if (w.NetworkReceiveMinimum == nil) != (w.NetworkReceiveCurrent == nil) {
		return ActiveDifficulty{}, fmt.Errorf("node: %s: %w: only one of network_receive_minimum and network_receive_current", action, ErrBadResponse)
	}
	if w.Multiplier != nil {
		m, err := strconv.ParseFloat(*w.Multiplier, 64)
		if err != nil {
			return ActiveDifficulty{}, fmt.Errorf("node: %s: %w: multiplier: %v", action, ErrBadResponse, err)
		}
		d.Multiplier = m
	}
	return d, nil
}
