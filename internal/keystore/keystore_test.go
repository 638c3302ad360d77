package keystore

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckLabel: the wallet label rule, at its edges.
func TestCheckLabel(t *testing.T) {
	for _, c := range []struct {
		label  string
		reason string // "" for a valid label
	}{
		{"w", ""},
		{"hot wallet 1", ""},
		{"café", ""},
		{strings.Repeat("a", MaxLabelLen), ""},
		{"", "empty"},
		{strings.Repeat("a", MaxLabelLen+1), "longer than 64 bytes"},
		{"\xff", "not UTF-8"},
		{"a\nb", "contains a control character"},
		{"\x00", "contains a control character"},
		{"a\u0085b", "contains a control character"},
	} {
		err := CheckLabel(c.label)
		if c.reason == "" {
			if err != nil {
				t.Errorf("CheckLabel(%q) = %v, want nil", c.label, err)
			}
			continue
		}
		var le *LabelError
		if !errors.As(err, &le) || le.Reason != c.reason {
			t.Errorf("CheckLabel(%q) = %v, want a *LabelError %q", c.label, err, c.reason)
		} else if strings.Contains(err.Error(), c.label) && c.label != "" {
			t.Errorf("CheckLabel(%q) = %q: the error holds the label", c.label, err)
		}
	}
}

// TestSentinelsDistinct: the signer branches on each sentinel apart.
func TestSentinelsDistinct(t *testing.T) {
	all := []error{ErrWalletNotFound, ErrTokenUnavailable, ErrPINRefused}
	for i, a := range all {
		for j, b := range all {
			if got := errors.Is(a, b); got != (i == j) {
				t.Errorf("errors.Is(%v, %v) = %v", a, b, got)
			}
		}
	}
}
