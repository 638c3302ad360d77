package hsm

import (
	"errors"
	"testing"
)

// TestPINUse: Use lends the PIN's bytes in place and passes f's error on;
// a wiped PIN lends nothing.
func TestPINUse(t *testing.T) {
	p, err := NewPIN([]byte("1234"))
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	boom := errors.New("boom")
	if err := p.Use(func(b []byte) error { seen = string(b); return boom }); !errors.Is(err, boom) {
		t.Errorf("Use returned %v, want f's error", err)
	}
	if seen != "1234" {
		t.Errorf("Use lent %q", seen)
	}
	p.Wipe()
	if err := p.Use(func(b []byte) error {
		if len(b) != 0 {
			t.Errorf("a wiped PIN lent %d bytes", len(b))
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
