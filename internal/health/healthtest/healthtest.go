// Package healthtest reads a role's HTTP health endpoints (package
// health) in tests: a request over TCP ("host:port") or a Unix socket
// ("unix:///path"), and a wait, polled with a bounded backoff, until an
// endpoint answers what the test expects. It never waits by sleeping a
// fixed time. It is for tests only.
package healthtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// client returns an HTTP client that dials addr whatever the URL says.
func client(addr string) (*http.Client, string) {
	network, address := "tcp", addr
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		network, address = "unix", p
	}
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, address)
		},
		DisableKeepAlives: true,
	}
	host := address
	if network == "unix" {
		host = "health.invalid"
	}
	return &http.Client{Transport: tr}, "http://" + host
}

// Do sends one request with method to path at addr and returns the
// status code and the body.
func Do(ctx context.Context, method, addr, path string) (int, string, error) {
	c, base := client(addr)
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body), err
}

// Get is Do with GET.
func Get(ctx context.Context, addr, path string) (int, string, error) {
	return Do(ctx, http.MethodGet, addr, path)
}

// WaitFor asks addr for path, with a bounded backoff, until it answers
// code with a body containing every one of substrings, and returns that
// body. It fails the test after limit, saying what it got last.
func WaitFor(t testing.TB, limit time.Duration, addr, path string, code int, substrings ...string) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	pause := time.Millisecond
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, body, err := Get(ctx, addr, path)
		cancel()
		if err == nil && got == code && containsAll(body, substrings) {
			return body
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %q", got, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%s: no %d with %q within %s; last: %s", addr, path, code, substrings, limit, last)
		}
		<-time.After(pause) // the poll's backoff: the loop ends on the answer, not on the time
		pause = min(2*pause, 50*time.Millisecond)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
