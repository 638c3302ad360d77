package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/cmd/internal/cold"
	"github.com/nanokms/nanokms/cmd/internal/dev"
	"github.com/nanokms/nanokms/nano"
)

// TestDeployDevnodeFlags starts the dev node with the flags of
// deploy/config/devnode.env (what nanokms-devnode.service passes), its
// addresses and files moved into the test's directory.
func TestDeployDevnodeFlags(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "config", "devnode.env"))
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "NANOKMS_DEVNODE_FLAGS="); ok {
			flags = strings.Fields(strings.Trim(v, `"`)) // as systemd splits $NANOKMS_DEVNODE_FLAGS
		}
	}
	if len(flags) == 0 {
		t.Fatal("deploy/config/devnode.env does not set NANOKMS_DEVNODE_FLAGS")
	}
	dir := t.TempDir()
	// Later flags win: the same flags, on free ports and in dir.
	args := append([]string{"devnode"}, flags...)
	args = append(args, "--listen", "127.0.0.1:0", "--ws", "127.0.0.1:0",
		"--ipc", "unix://"+filepath.Join(dir, "node.ipc"), "--state", filepath.Join(dir, "ledger.db"))
	r := runCLIUntil(t, dev.Binary, `"msg":"devnode serving"`, args...)
	if r.code != 0 || !strings.Contains(r.stderr, `"msg":"devnode serving"`) {
		t.Fatalf("nanokms-dev %s:\n%s", strings.Join(args, " "), r)
	}
	// The file's own settings took effect.
	for _, want := range []string{`"confirm_delay":"1s"`, `"work_threshold":"0000000000000000"`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the dev node's log lacks %s:\n%s", want, r.stderr)
		}
	}
}

// runCLIUntil runs a long-running command of b until its stderr holds
// want, then cancels it and returns its result. It returns early if the
// command exits by itself, and cancels it after a minute (a hang bound:
// the caller's check of the output then fails).
func runCLIUntil(t *testing.T, b cli.Binary, want string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout bytes.Buffer
	stderr := &watchedBuffer{want: want, seen: make(chan struct{})}
	done := make(chan int, 1)
	go func() { done <- cli.Run(ctx, b, args, strings.NewReader(""), &stdout, stderr) }()
	var code int
	select {
	case <-stderr.seen:
		cancel()
		code = <-done
	case code = <-done:
	case <-time.After(time.Minute):
		cancel()
		code = <-done
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// watchedBuffer is a buffer that can be written while another goroutine
// waits for seen, closed once the text written holds want.
type watchedBuffer struct {
	want string
	seen chan struct{}

	mu   sync.Mutex
	buf  bytes.Buffer
	once sync.Once
}

func (w *watchedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *watchedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestGatewayMetricsListener runs the gateway command with
// gateway.metrics_listen and scrapes /metrics from its own listener.
func TestGatewayMetricsListener(t *testing.T) {
	dir := t.TempDir()
	acct, err := nano.ParseAddress("nano_3y149mm9hwzpywwo1yj5b7f8fwpxcsqwycy7qi9dsn9zytq3yssfrd7tckxw")
	if err != nil {
		t.Fatal(err)
	}
	manifest := writeTemp(t, "treasury.json", fmt.Sprintf(`{"wallet":"treasury","accounts":[{"index":0,"public_key":"%X","account":"%s"}]}`, acct[:], acct.Address()))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	config := writeTemp(t, "gateway.toml", fmt.Sprintf(`
[gateway]
state = "%[1]s/gateway.db"
listen = "unix://%[1]s/gateway.sock"
manifests = ["%[2]s"]
metrics_listen = "%[3]s"

[bridge]
kind = "file"
inbound = "%[1]s/to-hot"
outbound = "%[1]s/to-cold"
`, dir, manifest, addr))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() { done <- runCLIContext(t, ctx, "", "gateway", "--config", config) }()
	var body []byte
	deadline := time.Now().Add(30 * time.Second) // a hang bound
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case r := <-done:
			t.Fatalf("the gateway stopped:\n%s", r)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no /metrics on %s: %v\n%s", addr, err, <-done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{`nanokms_gateway_requests_total{status="queued"} 0`, "# TYPE nanokms_bridge_round_trip_seconds histogram",
		"nanokms_alerts_total", "nanokms_work_seconds", "process_start_time_seconds"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cancel()
	if r := <-done; r.code != 0 || !strings.Contains(r.stderr, `"metrics":"`+addr+`"`) {
		t.Errorf("gateway:\n%s", r)
	}
}

// TestRelayMetricsTextfile runs the relay command with relay.metrics and
// reads the file it writes (at start, and when it stops).
func TestRelayMetricsTextfile(t *testing.T) {
	dir := t.TempDir()
	prom := filepath.Join(dir, "nanokms_relay.prom")
	config := writeTemp(t, "relay.toml", fmt.Sprintf(`
[relay]
signer = "unix://%[1]s/signer.sock"
metrics = "%[2]s"

[bridge]
kind = "file"
inbound = "%[1]s/to-cold"
outbound = "%[1]s/to-hot"
`, dir, prom))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() { done <- runBinary(t, ctx, cold.Binary, "", "relay", "--config", config) }()
	deadline := time.Now().Add(30 * time.Second) // a hang bound
	for {
		if _, err := os.Stat(prom); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no %s:\n%s", prom, <-done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if r := <-done; r.code != 0 {
		t.Fatalf("relay:\n%s", r)
	}
	data, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`nanokms_relay_requests_total{outcome="signed"} 0`, "nanokms_relay_start_time_seconds", `nanokms_bridge_frames_rejected_total{reason="checksum_mismatch"} 0`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("%s lacks %q:\n%s", prom, want, data)
		}
	}
}
