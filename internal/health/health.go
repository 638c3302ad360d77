// Package health tells whether a nanokms role can do its job now, from
// readiness checks the role supplies, and serves the verdict over HTTP
// for load balancers and service managers: /healthz (alive) and /readyz
// (ready). A role that serves gRPC gives its gRPC health service the same
// verdict (Monitor.Ready has the shape grpcserve.Health.Follow takes), so
// that the two never disagree: NOT_SERVING exactly when /readyz fails.
//
// # Checks and the verdict
//
// A Check is one thing the role needs: the signer's token and state file,
// the relay's bridge medium and signer, the gateway's state file, medium
// and node. Its Probe says whether it holds now; a check kept as state by
// the role (a token that went away, a full state file) also gives a
// Changed channel, closed when the answer may have changed. A Monitor
// evaluates every check at once, each bounded by Options.Timeout (a probe
// that does not return in time fails as "no answer", and is not started
// again until it returns), and keeps the last verdict: ready when every
// check passes. It evaluates when asked (each /readyz request; concurrent
// requests share one evaluation), and Run evaluates at once, whenever a
// Changed channel closes, and every Options.Interval, so that the gRPC
// health service follows a dependency that fails while nobody asks.
//
// # The endpoints
//
// Handler serves exactly two paths, GET or HEAD (any other method is 405,
// any other path 404), as plain text, never cached:
//
//   - /healthz: 200 "alive" while the process runs and is not stopping, 503
//     "stopping" once it is. It does not look at the dependencies: a
//     process whose token or node is away is alive, and restarting it would
//     not bring them back.
//   - /readyz: evaluates the checks now; 200 "ready" when all pass, else
//     503 "not ready: NAME, ..." naming the failing checks; then one line
//     per check, "ok NAME" or "fail NAME: reason". While stopping: 503
//     "not ready: stopping".
//
// A reason is the probe's error as one line of at most 200 bytes (line
// breaks and control characters become spaces).
//
// # What this package must never do
//
// It links neither side of the air gap (nor any role's code): the roles
// import it. It serves nothing but these two paths (no metrics, no
// profiling) and never logs on its own (LogChanges logs to the logger a
// role gives it). It prints what a probe's error says: a
// role's probes must put no secret in their errors (no PIN, no key
// material, no request content).
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Defaults of Options.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 2 * time.Second
)

// maxReason bounds a reason in a response, in bytes.
const maxReason = 200

// Check is one thing a role needs to do its job.
type Check struct {
	// Name is a short lowercase word naming the check in responses
	// ("token", "state", "medium", "signer", "store", "node").
	Name string
	// Probe returns nil when the check holds now, or what is wrong; the
	// error's text is shown to whoever reads /readyz, so it must hold no
	// secret. It should return when ctx is done.
	Probe func(ctx context.Context) error
	// Changed, when set, returns a channel closed when Probe's answer may
	// have changed (a state the role keeps): Run evaluates at once then.
	Changed func() <-chan struct{}
}

// Result is one check's outcome in an evaluation.
type Result struct {
	Name string
	Err  error // nil: the check passed
}

// Report is the outcome of one evaluation: every check's result, in the
// order the checks were given.
type Report struct {
	Results []Result
}

// Ready reports whether the report has results and every check passed.
func (r Report) Ready() bool {
	if r.Results == nil {
		return false
	}
	for _, res := range r.Results {
		if res.Err != nil {
			return false
		}
	}
	return true
}

// Failing returns the names of the checks that failed.
func (r Report) Failing() []string {
	var names []string
	for _, res := range r.Results {
		if res.Err != nil {
			names = append(names, res.Name)
		}
	}
	return names
}

// Options tune a Monitor; the zero value gives the defaults.
type Options struct {
	// Interval is how often Run evaluates the checks when nothing changed;
	// 0 means DefaultInterval.
	Interval time.Duration
	// Timeout bounds each probe in an evaluation; 0 means DefaultTimeout.
	Timeout time.Duration
	// OnChange, when set, is told of each evaluation whose verdict (ready
	// or not, and which checks fail) differs from the one before, in
	// order (for the role's log). It must not block.
	OnChange func(Report)
}

// ErrNoAnswer is wrapped by the result of a probe that did not return
// within Options.Timeout (or has not returned since).
var ErrNoAnswer = errors.New("no answer")

// Monitor evaluates a role's checks and keeps the last verdict. Its
// methods are safe for concurrent use.
type Monitor struct {
	checks []Check
	opts   Options
	busy   []atomic.Bool // a check's probe has not returned yet

	mu        sync.Mutex
	last      Report
	ok        bool
	changed   chan struct{} // closed and replaced when ok changes, at the first evaluation, and when stopping is set
	running   *evaluation   // the evaluation in progress, or nil
	stopping  bool
	loop      bool // Run is running
	evalOrder sync.Mutex

	waiters atomic.Int64 // callers of Evaluate waiting on an evaluation (tests)
}

type evaluation struct {
	done   chan struct{}
	report Report
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,23}$`)

// NewMonitor returns a Monitor of checks, in the order responses list
// them. It panics if a check has no Probe or its Name is not a lowercase
// word of at most 24 characters, or two share a name (a bug in the role,
// not an operator's mistake). It evaluates nothing yet: until the first
// evaluation the monitor is not ready.
func NewMonitor(opts Options, checks ...Check) *Monitor {
	seen := make(map[string]bool)
	for _, c := range checks {
		if !nameRE.MatchString(c.Name) || seen[c.Name] {
			panic(fmt.Sprintf("health: bad or repeated check name %q", c.Name))
		}
		if c.Probe == nil {
			panic(fmt.Sprintf("health: check %q has no probe", c.Name))
		}
		seen[c.Name] = true
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	return &Monitor{checks: checks, opts: opts, busy: make([]atomic.Bool, len(checks)), changed: make(chan struct{})}
}

// Evaluate runs every check now and returns the report, which becomes the
// monitor's verdict. A call made while an evaluation is in progress waits
// for that one and returns its report. It returns ctx's error if ctx ends
// first (the evaluation goes on for the others).
func (m *Monitor) Evaluate(ctx context.Context) (Report, error) {
	m.mu.Lock()
	ev := m.running
	if ev == nil {
		ev = &evaluation{done: make(chan struct{})}
		m.running = ev
		go m.evaluate(ev)
	}
	m.mu.Unlock()
	m.waiters.Add(1)
	defer m.waiters.Add(-1)
	select {
	case <-ev.done:
		return ev.report, nil
	case <-ctx.Done():
		return Report{}, ctx.Err()
	}
}

// evaluate runs the probes of one evaluation, records the verdict and
// closes ev.done.
func (m *Monitor) evaluate(ev *evaluation) {
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.Timeout)
	defer cancel()
	results := make([]chan error, len(m.checks))
	report := Report{Results: make([]Result, len(m.checks))}
	for i, c := range m.checks {
		report.Results[i].Name = c.Name
		if !m.busy[i].CompareAndSwap(false, true) {
			report.Results[i].Err = fmt.Errorf("%w: an earlier probe has not returned", ErrNoAnswer)
			continue
		}
		ch := make(chan error, 1)
		results[i] = ch
		go func() {
			err := c.Probe(ctx)
			m.busy[i].Store(false)
			ch <- err
		}()
	}
	for i, ch := range results {
		if ch == nil {
			continue
		}
		select {
		case err := <-ch:
			report.Results[i].Err = err
		case <-ctx.Done():
			// The probe may still answer: take what it says if it has.
			select {
			case err := <-ch:
				report.Results[i].Err = err
			default:
				report.Results[i].Err = fmt.Errorf("%w within %s", ErrNoAnswer, m.opts.Timeout)
			}
		}
	}
	ev.report = report

	m.evalOrder.Lock()
	defer m.evalOrder.Unlock()
	m.mu.Lock()
	prev := m.last
	m.last = report
	if ok := report.Ready() && !m.stopping; ok != m.ok || prev.Results == nil {
		m.ok = ok
		close(m.changed)
		m.changed = make(chan struct{})
	}
	m.running = nil
	m.mu.Unlock()
	close(ev.done)
	if m.opts.OnChange != nil && !sameVerdict(prev, report) {
		m.opts.OnChange(report)
	}
}

// sameVerdict reports whether a and b say the same: both ready, or the
// same checks failing.
func sameVerdict(a, b Report) bool {
	if (a.Results == nil) != (b.Results == nil) || a.Ready() != b.Ready() {
		return false
	}
	fa, fb := a.Failing(), b.Failing()
	if len(fa) != len(fb) {
		return false
	}
	for i := range fa {
		if fa[i] != fb[i] {
			return false
		}
	}
	return true
}

// Last returns the report of the last evaluation (no results before the
// first).
func (m *Monitor) Last() Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// Ready reports the verdict of the last evaluation (false before the
// first, and once stopping) and a channel closed when it changes (and at
// the first evaluation): the shape grpcserve.Health.Follow takes.
func (m *Monitor) Ready() (ok bool, changed <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ok, m.changed
}

// SetStopping marks the process as stopping: /healthz and /readyz answer
// 503 and Ready false from now on.
func (m *Monitor) SetStopping() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopping {
		return
	}
	m.stopping = true
	if m.ok {
		m.ok = false
		close(m.changed)
		m.changed = make(chan struct{})
	}
}

// Stopping reports whether SetStopping was called.
func (m *Monitor) Stopping() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopping
}

// Run evaluates the checks at once, then whenever a check's Changed
// channel closes and every Options.Interval, until ctx ends; then it
// marks the monitor stopping. A second Run while one runs only waits for
// ctx.
func (m *Monitor) Run(ctx context.Context) {
	defer m.SetStopping()
	m.mu.Lock()
	if m.loop {
		m.mu.Unlock()
		<-ctx.Done()
		return
	}
	m.loop = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.loop = false
		m.mu.Unlock()
	}()
	for {
		// The channels are taken before the evaluation, so that a change
		// during it is not missed.
		var wake []<-chan struct{}
		for _, c := range m.checks {
			if c.Changed != nil {
				wake = append(wake, c.Changed())
			}
		}
		if _, err := m.Evaluate(ctx); err != nil {
			return
		}
		timer := time.NewTimer(m.opts.Interval)
		woken := make(chan struct{})
		stop := make(chan struct{})
		for _, w := range wake {
			go func() {
				select {
				case <-w:
					select {
					case woken <- struct{}{}:
					case <-stop:
					}
				case <-stop:
				}
			}()
		}
		select {
		case <-ctx.Done():
		case <-timer.C:
		case <-woken:
		}
		close(stop)
		timer.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}

// Handler returns the handler of /healthz and /readyz (see the package
// documentation).
func (m *Monitor) Handler() http.Handler {
	mux := http.NewServeMux()
	// A GET pattern matches HEAD too; other methods get 405 with Allow.
	mux.HandleFunc("GET /healthz", m.serveHealthz)
	mux.HandleFunc("GET /readyz", m.serveReadyz)
	return mux
}

func plainHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

func (m *Monitor) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	plainHeaders(w)
	if m.Stopping() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "stopping\n")
		return
	}
	fmt.Fprint(w, "alive\n")
}

func (m *Monitor) serveReadyz(w http.ResponseWriter, r *http.Request) {
	plainHeaders(w)
	if m.Stopping() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "not ready: stopping\n")
		return
	}
	report, err := m.Evaluate(r.Context())
	if err != nil {
		return // the client went away
	}
	var b strings.Builder
	code := http.StatusOK
	if report.Ready() {
		b.WriteString("ready\n")
	} else {
		code = http.StatusServiceUnavailable
		fmt.Fprintf(&b, "not ready: %s\n", strings.Join(report.Failing(), ", "))
	}
	for _, res := range report.Results {
		if res.Err == nil {
			fmt.Fprintf(&b, "ok %s\n", res.Name)
		} else {
			fmt.Fprintf(&b, "fail %s: %s\n", res.Name, Reason(res.Err))
		}
	}
	w.WriteHeader(code)
	fmt.Fprint(w, b.String())
}

// Reason returns err's text as /readyz shows it: one line, line breaks
// and control characters as spaces, invalid UTF-8 dropped, at most 200
// bytes (cut at a character, ending in "…").
func Reason(err error) string {
	s := strings.ToValidUTF8(err.Error(), "")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// LogChanges returns an Options.OnChange that logs each change of the
// verdict to log: a warning "not ready: NAME, ..." with each failing
// check's reason under its name, or "ready".
func LogChanges(log *slog.Logger) func(Report) {
	return func(r Report) {
		if r.Ready() {
			log.Info("ready")
			return
		}
		var attrs []any
		for _, res := range r.Results {
			if res.Err != nil {
				attrs = append(attrs, res.Name, Reason(res.Err))
			}
		}
		log.Warn("not ready: "+strings.Join(r.Failing(), ", "), attrs...)
	}
}

// Serve serves h on l until ctx ends, then shuts down (in-flight requests
// get a second) and returns nil; it returns an error only if serving
// fails.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
