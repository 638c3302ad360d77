//go:build cgo

package softhsmtool

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/nanokms/nanokms/hsm"
)

// open logs in to tk through package hsm and creates a master key, which
// shows the token is real and its PIN right.
func open(t *testing.T, tk *Token) *hsm.Token {
	t.Helper()
	pin, err := hsm.NewPIN([]byte(tk.PIN))
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Wipe()
	tok, err := hsm.Open(context.Background(), hsm.Config{Module: tk.Module, TokenLabel: tk.Label, PIN: pin})
	if err != nil {
		t.Fatalf("hsm.Open(%q): %v", tk.Label, err)
	}
	if err := tok.CreateMasterKey(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestNewToken runs the whole life of this package in one process (the
// test binary, which loads SoftHSM nowhere else): a first token made by
// softhsm2-util, a second made in-process in the same directory, both
// usable; the directory deleted and SOFTHSM2_CONF restored by the last
// Close; and no further tokens in this process.
func TestNewToken(t *testing.T) {
	parent := t.TempDir()
	t.Setenv(ConfEnv, "before")
	ctx := context.Background()

	first, err := NewToken(ctx, parent, "softhsmtool-1")
	if err != nil {
		t.Fatal(err)
	}
	if first.InProcess || first.Dir == "" || first.PIN == "" || first.SOPIN == "" || first.PIN == first.SOPIN {
		t.Fatalf("first token: %+v", first)
	}
	if got := os.Getenv(ConfEnv); got == "before" {
		t.Errorf("%s was not pointed at the new directory", ConfEnv)
	}
	tok1 := open(t, first)

	second, err := NewToken(ctx, parent, "softhsmtool-2")
	if err != nil {
		t.Fatal(err)
	}
	if !second.InProcess || second.Dir != first.Dir {
		t.Fatalf("second token: %+v, first in %s", second, first.Dir)
	}
	tok2 := open(t, second)

	tok1.Close()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first.Dir); err != nil {
		t.Errorf("the directory went while the second token lives in it: %v", err)
	}
	tok2.Close()
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	if err := second.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(first.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the directory is still there after the last Close: %v", err)
	}
	if got := os.Getenv(ConfEnv); got != "before" {
		t.Errorf("%s is %q after the last Close, want it restored", ConfEnv, got)
	}
	if _, err := NewToken(ctx, parent, "softhsmtool-3"); !errors.Is(err, ErrDirDeleted) {
		t.Errorf("NewToken after the last Close: %v, want ErrDirDeleted", err)
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
}

func TestNewTokenLabel(t *testing.T) {
	for _, label := range []string{"", "123456789012345678901234567890123"} {
		if _, err := NewToken(context.Background(), t.TempDir(), label); err == nil {
			t.Errorf("label %q accepted", label)
		}
	}
}

func TestRandomSecret(t *testing.T) {
	a, err := RandomSecret(12)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := RandomSecret(12)
	if len(a) != 24 || a == b {
		t.Errorf("RandomSecret(12) gave %q and %q", a, b)
	}
}
