package bridge_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/bridge/serial/serialtest"
)

// Present follows a file medium's two directories, for real: each
// removed and put back.
func TestPresentFile(t *testing.T) {
	dir := t.TempDir()
	cfg := bridge.Config{Kind: "file", Inbound: filepath.Join(dir, "to-cold"), Outbound: filepath.Join(dir, "to-hot"), PollInterval: 1 << 30}
	m, err := bridge.Open(cfg, bridge.Cold, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	if err := m.Present(ctx); err != nil {
		t.Fatalf("after Open: %v", err)
	}
	for _, d := range []string{cfg.Inbound, cfg.Outbound} {
		if err := os.Remove(d); err != nil {
			t.Fatal(err)
		}
		if err := m.Present(ctx); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s removed: %v", d, err)
		}
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := m.Present(ctx); err != nil {
			t.Errorf("%s back: %v", d, err)
		}
	}
}

// Present follows a serial line's device, as an operator names it: a
// /dev/serial/by-id link, which goes away when the adapter is unplugged
// (here a link to a pseudo-terminal, removed and made again).
func TestPresentSerial(t *testing.T) {
	_, tty := serialtest.MustPTYPair(t)
	link := filepath.Join(t.TempDir(), "usb-FTDI_nanokms-if00-port0")
	if err := os.Symlink(tty.Name(), link); err != nil {
		t.Fatal(err)
	}
	m, err := bridge.Open(bridge.Config{Kind: "serial", Device: link, Baud: 115200}, bridge.Cold, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	if err := m.Present(ctx); err != nil {
		t.Fatalf("plugged: %v", err)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := m.Present(ctx); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("unplugged: %v, want fs.ErrNotExist", err)
	}
	// Something that is not a character device in its place.
	if err := os.WriteFile(link, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Present(ctx); err == nil {
		t.Fatal("a regular file passed as the serial device")
	}
	os.Remove(link)
	if err := os.Symlink(tty.Name(), link); err != nil {
		t.Fatal(err)
	}
	if err := m.Present(ctx); err != nil {
		t.Fatalf("plugged again: %v", err)
	}
}
