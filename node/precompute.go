package node

import (
	"container/list"
	"context"
	"sync"

	"github.com/nanokms/nanokms/nano"
)

// PrecomputerOptions configure a Precomputer. The zero value gives the
// defaults.
type PrecomputerOptions struct {
	// Max bounds the roots held (pending or ready); the oldest is dropped,
	// and its generation cancelled, to make room. 0 means 64.
	Max int
	// Concurrency bounds the generations running at once; 0 means 1 (a
	// CPU provider already uses every core).
	Concurrency int
}

// Precomputer computes work ahead of need: as soon as an account's
// frontier is known, the work for its next block (root = the frontier, or
// the account key before the open block) is generated in the background,
// keyed by root. Take and Get hand it out only when it validates at the
// threshold asked for. It is safe for concurrent use.
type Precomputer struct {
	provider WorkProvider
	max      int
	sem      chan struct{}
	ctx      context.Context
	stop     context.CancelFunc

	mu      sync.Mutex
	entries map[nano.Hash]*pcEntry
	order   *list.List // of nano.Hash, oldest at the back
}

type pcEntry struct {
	threshold uint64
	done      chan struct{}
	work      nano.Work // set before done is closed
	err       error
	cancel    context.CancelFunc
	elem      *list.Element
}

// NewPrecomputer returns a Precomputer that generates with provider.
func NewPrecomputer(provider WorkProvider, opts PrecomputerOptions) *Precomputer {
	if opts.Max <= 0 {
		opts.Max = 64
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Precomputer{
		provider: provider, max: opts.Max, sem: make(chan struct{}, opts.Concurrency),
		ctx: ctx, stop: stop, entries: make(map[nano.Hash]*pcEntry), order: list.New(),
	}
}

// Precompute starts generating work over root at threshold, unless work at
// that threshold or above is already held or being generated.
func (p *Precomputer) Precompute(root nano.Hash, threshold uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return
	}
	if e, ok := p.entries[root]; ok {
		if e.threshold >= threshold && !failed(e) {
			return
		}
		p.removeLocked(root, e)
	}
	ctx, cancel := context.WithCancel(p.ctx)
	e := &pcEntry{threshold: threshold, done: make(chan struct{}), cancel: cancel}
	e.elem = p.order.PushFront(root)
	p.entries[root] = e
	for p.order.Len() > p.max {
		oldest := p.order.Back().Value.(nano.Hash)
		p.removeLocked(oldest, p.entries[oldest])
	}
	go func() {
		defer close(e.done)
		defer cancel()
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			e.err = ctx.Err()
			return
		}
		defer func() { <-p.sem }()
		e.work, e.err = p.provider.Generate(ctx, root, threshold)
		if e.err == nil && !nano.ValidateWork(root, e.work, threshold) {
			e.err = ErrInvalidWork
		}
	}()
}

// failed reports whether e finished without work.
func failed(e *pcEntry) bool {
	select {
	case <-e.done:
		return e.err != nil
	default:
		return false
	}
}

func (p *Precomputer) removeLocked(root nano.Hash, e *pcEntry) {
	e.cancel()
	p.order.Remove(e.elem)
	delete(p.entries, root)
}

// Take returns the work held for root if it is ready and validates at
// threshold, and forgets it. Otherwise it returns false (and forgets a
// generation that failed).
func (p *Precomputer) Take(root nano.Hash, threshold uint64) (nano.Work, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.entries[root]
	if !ok {
		return 0, false
	}
	select {
	case <-e.done:
	default:
		return 0, false
	}
	if e.err != nil {
		p.removeLocked(root, e)
		return 0, false
	}
	if !nano.ValidateWork(root, e.work, threshold) {
		return 0, false
	}
	p.removeLocked(root, e)
	return e.work, true
}

// Get returns work over root at threshold: the precomputed work if it is
// ready and valid, the result of a generation in progress at a threshold
// at least as high (waiting for it), or else newly generated work from
// the provider.
func (p *Precomputer) Get(ctx context.Context, root nano.Hash, threshold uint64) (nano.Work, error) {
	if w, ok := p.Take(root, threshold); ok {
		return w, nil
	}
	p.mu.Lock()
	e, ok := p.entries[root]
	p.mu.Unlock()
	if ok && e.threshold >= threshold {
		select {
		case <-e.done:
			if w, ok := p.Take(root, threshold); ok {
				return w, nil
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	w, err := p.provider.Generate(ctx, root, threshold)
	if err != nil {
		return 0, err
	}
	if !nano.ValidateWork(root, w, threshold) {
		return 0, ErrInvalidWork
	}
	return w, nil
}

// Len returns how many roots are held.
func (p *Precomputer) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// Close cancels every generation and forgets everything.
func (p *Precomputer) Close() {
	p.stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for root, e := range p.entries {
		p.removeLocked(root, e)
	}
}
