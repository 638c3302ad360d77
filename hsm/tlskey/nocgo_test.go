//go:build !cgo

package tlskey

import (
	"context"
	"errors"
	"testing"

	"github.com/nanokms/nanokms/hsm"
)

// Without cgo the package builds and says why it cannot work.
func TestNoCgo(t *testing.T) {
	pin, err := hsm.NewPIN([]byte("1234"))
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Wipe()
	cfg := Config{Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "t", PIN: pin, KeyLabel: "k"}
	if _, err := Open(context.Background(), cfg); !errors.Is(err, hsm.ErrNoCgo) {
		t.Errorf("Open: err = %v, want hsm.ErrNoCgo", err)
	}
	if _, err := Generate(context.Background(), cfg); !errors.Is(err, hsm.ErrNoCgo) {
		t.Errorf("Generate: err = %v, want hsm.ErrNoCgo", err)
	}
}
