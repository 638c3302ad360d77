package metrics

import (
	"strings"
	"testing"
)

// TestWireReasons: every wire error's label is a lower-case name.
func TestWireReasons(t *testing.T) {
	for _, w := range wireErrors {
		if r := wireReason(w); strings.ContainsAny(r, " ABCDEFGHIJKLMNOPQRSTUVWXYZ") || strings.HasPrefix(r, "wire_error") {
			t.Errorf("wire error %d has label %q", w, r)
		}
	}
}
