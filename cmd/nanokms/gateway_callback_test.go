package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/nano"
)

// TestGatewayCallbackListener runs the gateway command with
// [node.callback]: the listener answers once the gateway serves, a body
// that is not a callback is refused and counted in
// nanokms_gateway_callbacks_total, and when the gateway stops the
// listener is closed. A second gateway given the same callback address
// does not start, naming the key.
func TestGatewayCallbackListener(t *testing.T) {
	dir := t.TempDir()
	acct, err := nano.ParseAddress("nano_3y149mm9hwzpywwo1yj5b7f8fwpxcsqwycy7qi9dsn9zytq3yssfrd7tckxw")
	if err != nil {
		t.Fatal(err)
	}
	manifest := writeTemp(t, "treasury.json", fmt.Sprintf(`{"wallet":"treasury","accounts":[{"index":0,"public_key":"%X","account":"%s"}]}`, acct[:], acct.Address()))
	var addrs []string
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		l.Close()
	}
	metricsAddr, cbAddr := addrs[0], addrs[1]
	gatewayConfig := func(name, metrics string) string {
		if metrics != "" {
			metrics = fmt.Sprintf("metrics_listen = %q", metrics)
		}
		return writeTemp(t, name, fmt.Sprintf(`
[gateway]
state = "%[1]s/%[5]s.db"
listen = "unix://%[1]s/%[5]s.sock"
manifests = ["%[2]s"]
%[3]s

[bridge]
kind = "file"
inbound = "%[1]s/to-hot"
outbound = "%[1]s/to-cold"

[node]
rpc = "http://127.0.0.1:1"

[node.callback]
listen = "%[4]s"
path = "/callback"
`, dir, manifest, metrics, cbAddr, name))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout bytes.Buffer
	stderr := &watchedBuffer{want: `"msg":"serving"`, seen: make(chan struct{})}
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, operator, []string{"gateway", "--config", gatewayConfig("gw1", metricsAddr)}, strings.NewReader(""), &stdout, stderr)
	}()
	select {
	case <-stderr.seen:
	case code := <-done:
		t.Fatalf("the gateway exited %d:\n%s", code, stderr)
	case <-time.After(time.Minute): // a hang bound
		t.Fatalf("the gateway did not serve:\n%s", stderr)
	}
	if !strings.Contains(stderr.String(), `"callback":true`) {
		t.Errorf("the gateway's log does not say it serves the callback:\n%s", stderr)
	}

	resp, err := http.Post("http://"+cbAddr+"/callback", "application/json", strings.NewReader(`{"hash": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a body that is not a callback: status %d, want 400", resp.StatusCode)
	}
	resp, err = http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`nanokms_gateway_callbacks_total{result="rejected"} 1`, `nanokms_gateway_callbacks_total{result="verified"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// The address is taken: a second gateway does not start.
	r := runCLIContext(t, context.Background(), "", "gateway", "--config", gatewayConfig("gw2", ""))
	if r.code == 0 || !strings.Contains(r.stderr, "node.callback.listen: ") || !strings.Contains(r.stderr, "hint: is another process using node.callback.listen's port?") {
		t.Errorf("a second gateway on the same callback address:\n%s", r)
	}

	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("the gateway exited %d:\n%s", code, stderr)
	}
	http.DefaultClient.CloseIdleConnections()
	if c, err := net.Dial("tcp", cbAddr); err == nil {
		c.Close()
		t.Error("the callback listener accepts connections after the gateway stopped")
	}
}
