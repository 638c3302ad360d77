package health_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanokms/nanokms/internal/health"
	"github.com/nanokms/nanokms/internal/health/healthtest"
)

// toggle is a check whose answer the test sets: nil (passes) or an error.
type toggle struct {
	mu      sync.Mutex
	err     error
	changed chan struct{}
	probes  atomic.Int64
}

func newToggle() *toggle { return &toggle{changed: make(chan struct{})} }

func (tg *toggle) set(err error) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.err = err
	close(tg.changed)
	tg.changed = make(chan struct{})
}

func (tg *toggle) probe(context.Context) error {
	tg.probes.Add(1)
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.err
}

func (tg *toggle) watch() <-chan struct{} {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.changed
}

// serve serves m's handler on l until the test ends and returns the
// address healthtest dials.
func serve(t *testing.T, l net.Listener, m *health.Monitor) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- health.Serve(ctx, l, m.Handler()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	if u, ok := l.Addr().(*net.UnixAddr); ok {
		return "unix://" + u.Name
	}
	return l.Addr().String()
}

func get(t *testing.T, method, addr, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, body, err := healthtest.Do(ctx, method, addr, path)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, body
}

// The endpoints on a real TCP listener: /healthz 200 while the process
// runs; /readyz 200 with every check passing, 503 naming the failing
// check (first line, then its line with the reason), 200 again once it
// passes; HEAD answers the same status without a body; other methods
// 405; other paths 404.
func TestEndpoints(t *testing.T) {
	token, state := newToggle(), newToggle()
	m := health.NewMonitor(health.Options{},
		health.Check{Name: "token", Probe: token.probe},
		health.Check{Name: "state", Probe: state.probe})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, l, m)

	if code, body := get(t, "GET", addr, "/healthz"); code != 200 || body != "alive\n" {
		t.Errorf("/healthz = %d %q, want 200 alive", code, body)
	}
	if code, body := get(t, "GET", addr, "/readyz"); code != 200 || body != "ready\nok token\nok state\n" {
		t.Errorf("/readyz = %d %q, want 200 with both checks ok", code, body)
	}

	token.set(errors.New("unavailable, reconnecting"))
	code, body := get(t, "GET", addr, "/readyz")
	if code != 503 || body != "not ready: token\nfail token: unavailable, reconnecting\nok state\n" {
		t.Errorf("/readyz with the token failing = %d %q", code, body)
	}
	state.set(errors.New("full"))
	if code, body := get(t, "GET", addr, "/readyz"); code != 503 || !strings.HasPrefix(body, "not ready: token, state\n") {
		t.Errorf("/readyz with both failing = %d %q", code, body)
	}
	if code, body := get(t, "HEAD", addr, "/readyz"); code != 503 || body != "" {
		t.Errorf("HEAD /readyz = %d %q, want 503 and no body", code, body)
	}
	// Liveness does not follow the dependencies.
	if code, _ := get(t, "GET", addr, "/healthz"); code != 200 {
		t.Errorf("/healthz = %d while a dependency fails, want 200", code)
	}
	token.set(nil)
	state.set(nil)
	if code, body := get(t, "GET", addr, "/readyz"); code != 200 || body != "ready\nok token\nok state\n" {
		t.Errorf("/readyz once restored = %d %q", code, body)
	}
	if code, body := get(t, "HEAD", addr, "/healthz"); code != 200 || body != "" {
		t.Errorf("HEAD /healthz = %d %q", code, body)
	}
	// A query string changes nothing.
	if code, _ := get(t, "GET", addr, "/readyz?verbose=1"); code != 200 {
		t.Errorf("/readyz?verbose=1 = %d", code)
	}

	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"POST", "/readyz", 405}, {"PUT", "/healthz", 405}, {"DELETE", "/readyz", 405},
		{"GET", "/metrics", 404}, {"GET", "/", 404}, {"GET", "/readyz/token", 404}, {"GET", "/debug/pprof/", 404},
	} {
		if code, _ := get(t, c.method, addr, c.path); code != c.code {
			t.Errorf("%s %s = %d, want %d", c.method, c.path, code, c.code)
		}
	}

	// The headers: plain text, never cached.
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "text/plain; charset=utf-8" || cc != "no-store" {
		t.Errorf("Content-Type %q, Cache-Control %q", ct, cc)
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/readyz", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if allow := resp.Header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "HEAD") {
		t.Errorf("405 Allow = %q, want GET and HEAD", allow)
	}
}

// The same over a Unix socket, as a cold role serves it.
func TestEndpointsOnUnixSocket(t *testing.T) {
	medium := newToggle()
	m := health.NewMonitor(health.Options{}, health.Check{Name: "medium", Probe: medium.probe})
	sock := filepath.Join(t.TempDir(), "health.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, l, m)
	healthtest.WaitFor(t, 10*time.Second, addr, "/readyz", 200, "ok medium")
	medium.set(errors.New("the bridge directory is missing"))
	healthtest.WaitFor(t, 10*time.Second, addr, "/readyz", 503, "not ready: medium\n", "fail medium: the bridge directory is missing")
}

// A check's message is one line of bounded length: no line break, control
// character or invalid UTF-8 reaches the response.
func TestMessageIsOneBoundedLine(t *testing.T) {
	long := strings.Repeat("x", 5000)
	m := health.NewMonitor(health.Options{},
		health.Check{Name: "node", Probe: func(context.Context) error {
			return errors.New("line one\nline two\r\x00\x1b[31m\xff" + long)
		}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, l, m)
	code, body := get(t, "GET", addr, "/readyz")
	if code != 503 {
		t.Fatalf("code %d", code)
	}
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if len(lines) != 2 || lines[0] != "not ready: node" || !strings.HasPrefix(lines[1], "fail node: line one line two") {
		t.Fatalf("body %q", body)
	}
	if len(lines[1]) > 300 {
		t.Errorf("a line of %d bytes", len(lines[1]))
	}
	for _, r := range lines[1] {
		if r < 0x20 || r == 0x7f {
			t.Errorf("control character %q in %q", r, lines[1])
		}
	}
	if strings.ContainsAny(lines[1], "\x00\x1b\r") || !strings.HasSuffix(lines[1], "…") {
		t.Errorf("line %q", lines[1])
	}
}

// Ready follows the evaluations: false before the first, then each
// verdict, its channel closed when the verdict changes. Run evaluates when
// a check's Changed channel closes, without waiting for the interval.
func TestReadyFollowsChanges(t *testing.T) {
	tg := newToggle()
	m := health.NewMonitor(health.Options{Interval: time.Hour},
		health.Check{Name: "state", Probe: tg.probe, Changed: tg.watch})
	if ok, _ := m.Ready(); ok {
		t.Fatal("ready before any evaluation")
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); m.Run(ctx) }()
	defer func() { cancel(); <-ran }()

	waitReady := func(want bool) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			ok, changed := m.Ready()
			if ok == want {
				return
			}
			select {
			case <-changed:
			case <-timeout:
				t.Fatalf("Ready never became %v", want)
			}
		}
	}
	waitReady(true)
	tg.set(errors.New("full"))
	waitReady(false)
	r := m.Last()
	if r.Ready() || len(r.Results) != 1 || r.Results[0].Name != "state" || r.Results[0].Err == nil {
		t.Fatalf("Last = %+v", r)
	}
	tg.set(nil)
	waitReady(true)

	// Once Run has stopped the monitor reports stopping: not ready, and
	// the endpoints say so.
	cancel()
	<-ran
	if ok, _ := m.Ready(); ok {
		t.Error("ready after Run stopped")
	}
	if !m.Stopping() {
		t.Error("not stopping after Run stopped")
	}
	h := m.Handler()
	for path, want := range map[string]string{"/healthz": "stopping\n", "/readyz": "not ready: stopping\n"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 503 || rec.Body.String() != want {
			t.Errorf("%s while stopping = %d %q, want 503 %q", path, rec.Code, rec.Body.String(), want)
		}
	}
}

// Run evaluates every interval too: a check without a Changed channel is
// followed on its own.
func TestRunEvaluatesEveryInterval(t *testing.T) {
	tg := newToggle()
	m := health.NewMonitor(health.Options{Interval: 5 * time.Millisecond}, health.Check{Name: "node", Probe: tg.probe})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); m.Run(ctx) }()
	defer func() { cancel(); <-ran }()
	tg.set(errors.New("down"))
	timeout := time.After(30 * time.Second)
	for {
		ok, changed := m.Ready()
		if !ok && m.Last().Results != nil {
			break
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatal("the failing probe was never looked at again")
		}
	}
}

// A probe that does not return within Timeout fails as "no answer", and
// is not started again while it has not returned: a wedged dependency
// never piles up goroutines.
func TestProbeTimeout(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int64
	m := health.NewMonitor(health.Options{Timeout: 20 * time.Millisecond},
		health.Check{Name: "medium", Probe: func(context.Context) error { calls.Add(1); <-release; return nil }},
		health.Check{Name: "signer", Probe: func(context.Context) error { return nil }})
	ctx := context.Background()
	for i := range 3 {
		r, err := m.Evaluate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Ready() || r.Results[0].Err == nil || r.Results[1].Err != nil {
			t.Fatalf("evaluation %d: %+v", i, r)
		}
		if !strings.Contains(r.Results[0].Err.Error(), "no answer") {
			t.Errorf("evaluation %d: %v", i, r.Results[0].Err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the wedged probe was started %d times", n)
	}
	close(release)
	// Once it has returned it is asked again, and passes.
	deadline := time.After(30 * time.Second)
	for {
		r, err := m.Evaluate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Ready() {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("still %+v", r)
		default:
		}
	}
}

// Concurrent evaluations share one run of the probes.
func TestConcurrentEvaluationsShareProbes(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int64
	m := health.NewMonitor(health.Options{Timeout: time.Minute},
		health.Check{Name: "node", Probe: func(context.Context) error { calls.Add(1); <-release; return nil }})
	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if r, err := m.Evaluate(context.Background()); err != nil || !r.Ready() {
				t.Errorf("Evaluate = %+v, %v", r, err)
			}
		})
	}
	health.WaitWaiters(m, n)
	close(release)
	wg.Wait()
	if c := calls.Load(); c != 1 {
		t.Errorf("%d evaluations at once ran the probe %d times, want once", n, c)
	}
	// A caller that gives up gets its context's error; the others are
	// not cut short.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Evaluate(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Evaluate with a cancelled context: %v", err)
	}
}

// Check names are short lowercase words, each once.
func TestCheckNames(t *testing.T) {
	ok := func(context.Context) error { return nil }
	for _, names := range [][]string{{""}, {"Token"}, {"a b"}, {"token", "token"}, {"x\n"}, {strings.Repeat("a", 40)}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewMonitor accepted the check names %q", names)
				}
			}()
			var checks []health.Check
			for _, n := range names {
				checks = append(checks, health.Check{Name: n, Probe: ok})
			}
			health.NewMonitor(health.Options{}, checks...)
		}()
	}
	defer func() {
		if recover() == nil {
			t.Error("NewMonitor accepted a check without a probe")
		}
	}()
	health.NewMonitor(health.Options{}, health.Check{Name: "node"})
}
