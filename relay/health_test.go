package relay_test

// The relay's HTTP health endpoints (relay.health_listen), on the real
// `nanokms-cold relay` process, between a file bridge in a temporary
// directory and a real signer (signertest) on its Unix socket: ready,
// then the medium's directory removed, then the signer stopped, each for
// real, and back.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/internal/health/healthtest"
	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/signer/signertest"
)

const healthRelayConfig = `[relay]
signer = "unix://%s"
retry_min = "20ms"
retry_max = "200ms"
health_listen = "unix://%s"

[bridge]
kind = "file"
inbound = %q
outbound = %q
poll_interval = "20ms"
`

func TestRelayHealthEndpoints(t *testing.T) {
	ctx := context.Background()
	env := signertest.MustEnv(t, 0)
	bin := killtest.Build(t, "cmd/nanokms-cold")
	dir := t.TempDir()
	toCold, toHot := filepath.Join(dir, "usb", "to-cold"), filepath.Join(dir, "usb", "to-hot")
	sock := filepath.Join(dir, "health.sock")
	addr := "unix://" + sock
	cfg := filepath.Join(dir, "relay.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, healthRelayConfig, env.Socket, sock, toCold, toHot), 0o600); err != nil {
		t.Fatal(err)
	}
	relay := killtest.New(t, "relay", filepath.Join(dir, "relay.log"), bin, "relay", "--config", cfg)
	relay.MustStart()

	// Ready: the medium there (the relay made its directories) and the
	// signer serving.
	if body := healthtest.WaitFor(t, time.Minute, addr, "/readyz", 200); body != "ready\nok medium\nok signer\n" {
		t.Errorf("/readyz = %q", body)
	}
	alive := func() {
		t.Helper()
		if code, body, err := healthtest.Get(ctx, addr, "/healthz"); err != nil || code != 200 || body != "alive\n" {
			t.Errorf("/healthz = %d %q %v, want 200 alive", code, body, err)
		}
	}
	alive()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the health socket: %v, %v; want mode 0600", fi.Mode(), err)
	}

	// --- The medium's inbound directory removed (a stick pulled, a
	// directory deleted): 503 naming the medium. The check neither makes
	// nor moves anything: the directory stays missing until restored.
	if err := os.RemoveAll(toCold); err != nil {
		t.Fatal(err)
	}
	body := healthtest.WaitFor(t, time.Minute, addr, "/readyz", 503, "not ready: medium\n", "\nfail medium: ", toCold, "\nok signer\n")
	t.Logf("medium removed: %q", body)
	if code, _, err := healthtest.Do(ctx, "HEAD", addr, "/readyz"); err != nil || code != 503 {
		t.Errorf("HEAD /readyz = %d, %v; want 503", code, err)
	}
	alive()
	if _, err := os.Lstat(toCold); !os.IsNotExist(err) {
		t.Errorf("the removed directory is back without the operator (%v)", err)
	}
	if err := os.Mkdir(toCold, 0o700); err != nil {
		t.Fatal(err)
	}
	healthtest.WaitFor(t, time.Minute, addr, "/readyz", 200, "ready\nok medium\nok signer\n")

	// --- The signer stopped: 503 naming the signer; back once it serves.
	env.Stop()
	body = healthtest.WaitFor(t, time.Minute, addr, "/readyz", 503, "not ready: signer\n", "\nok medium\n", "\nfail signer: ")
	t.Logf("signer stopped: %q", body)
	alive()
	env.Start()
	healthtest.WaitFor(t, time.Minute, addr, "/readyz", 200, "ready\nok medium\nok signer\n")

	// Stopped, the relay serves nothing more.
	if err := relay.Terminate(10 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if _, _, err := healthtest.Get(ctx, addr, "/healthz"); err == nil {
		t.Error("/healthz answers after the relay stopped")
	}
	// Each change was logged.
	for _, want := range []string{`"msg":"not ready: medium","medium":"filemedium: ` + toCold + `: no such file or directory"`, `"msg":"not ready: signer"`, `"msg":"ready"`} {
		if relay.LogCount(want) == 0 {
			t.Errorf("the relay's log has no %s", want)
		}
	}
}

// With several signers (relay.signers) the relay is ready while one of
// them serves, and names every signer's reason when none does.
func TestRelayHealthSeveralSigners(t *testing.T) {
	a, b := signertest.MustEnv(t, 0), signertest.MustEnv(t, 0)
	bin := killtest.Build(t, "cmd/nanokms-cold")
	dir := t.TempDir()
	toCold, toHot := filepath.Join(dir, "usb", "to-cold"), filepath.Join(dir, "usb", "to-hot")
	sock := filepath.Join(dir, "health.sock")
	addr := "unix://" + sock
	cfg := filepath.Join(dir, "relay.toml")
	conf := fmt.Sprintf(healthRelayConfig, a.Socket, sock, toCold, toHot)
	conf = strings.Replace(conf, fmt.Sprintf("signer = \"unix://%s\"", a.Socket),
		fmt.Sprintf("signers = [\"unix://%s\", \"unix://%s\"]", a.Socket, b.Socket), 1)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	relay := killtest.New(t, "relay", filepath.Join(dir, "relay.log"), bin, "relay", "--config", cfg)
	relay.MustStart()
	healthtest.WaitFor(t, time.Minute, addr, "/readyz", 200, "ready\nok medium\nok signer\n")

	// One signer stopped: the other serves, so the relay is ready.
	a.Stop()
	if code, body, err := healthtest.Get(context.Background(), addr, "/readyz"); err != nil || code != 200 {
		t.Errorf("/readyz with one of two signers stopped = %d %q %v, want 200", code, body, err)
	}
	// Both stopped: 503, each signer named with its reason (the detail is
	// cut at health's limit, so with these long temporary paths only the
	// first is whole).
	b.Stop()
	body := healthtest.WaitFor(t, time.Minute, addr, "/readyz", 503, "not ready: signer\n",
		"fail signer: none of the 2 signers serving: unix://"+a.Socket+": unreachable (Unavailable); unix://")
	t.Logf("both stopped: %q", body)
	// Either one back is enough.
	b.Start()
	healthtest.WaitFor(t, time.Minute, addr, "/readyz", 200, "ready\nok medium\nok signer\n")
	if err := relay.Terminate(10 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}
