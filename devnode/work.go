package devnode

import (
	"context"
	"strconv"
	"sync"

	"github.com/nanokms/nanokms/nano"
)

// workRegistry tracks work generations in flight so that work_cancel can
// stop them.
type workRegistry struct {
	mu   sync.Mutex
	jobs map[nano.Hash]map[*workJob]struct{}
}

type workJob struct {
	cancel    context.CancelFunc
	cancelled bool
}

func newWorkRegistry() *workRegistry {
	return &workRegistry{jobs: make(map[nano.Hash]map[*workJob]struct{})}
}

// start registers a generation for root; done unregisters it and reports
// whether work_cancel stopped it.
func (r *workRegistry) start(ctx context.Context, root nano.Hash) (context.Context, func() bool) {
	ctx, cancel := context.WithCancel(ctx)
	j := &workJob{cancel: cancel}
	r.mu.Lock()
	if r.jobs[root] == nil {
		r.jobs[root] = make(map[*workJob]struct{})
	}
	r.jobs[root][j] = struct{}{}
	r.mu.Unlock()
	return ctx, func() bool {
		cancel()
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.jobs[root], j)
		if len(r.jobs[root]) == 0 {
			delete(r.jobs, root)
		}
		return j.cancelled
	}
}

// cancel stops every generation in flight for root.
func (r *workRegistry) cancel(root nano.Hash) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for j := range r.jobs[root] {
		j.cancelled = true
		j.cancel()
	}
}

const two64 = 18446744073709551616.0

// distance is 2^64 − d as a float (the expected number of hashes for
// difficulty d, times 2^64 / 2^64).
func distance(d uint64) float64 {
	if d == 0 {
		return two64
	}
	return float64(-d)
}

// toMultiplier is how much harder d is than base.
func toMultiplier(d, base uint64) float64 {
	return distance(base) / distance(d)
}

// fromMultiplier is the difficulty m times harder than base.
func fromMultiplier(m float64, base uint64) uint64 {
	r := distance(base) / m
	switch {
	case r >= two64:
		return 0
	case r < 1:
		return ^uint64(0)
	}
	return -uint64(r)
}

// formatMultiplier prints a multiplier as the node does: fixed, 15 decimals.
func formatMultiplier(m float64) string {
	return strconv.FormatFloat(m, 'f', 15, 64)
}

// maxGenerateMultiplier bounds work_generate, as the node's
// max_work_generate_multiplier does.
const maxGenerateMultiplier = 64
