package hsm

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/internal/keystore"
)

// TestSeamSentinels: the errors the signer branches on match the key
// store contract's sentinels, wrapped or not, and only those; hsm's own
// sentinels stay apart from each other.
func TestSeamSentinels(t *testing.T) {
	contract := []error{keystore.ErrWalletNotFound, keystore.ErrTokenUnavailable, keystore.ErrPINRefused}
	for _, c := range []struct {
		err  error
		want error // the contract sentinel it matches; nil for none
	}{
		{ErrWalletNotFound, keystore.ErrWalletNotFound},
		{ErrTokenUnavailable, keystore.ErrTokenUnavailable},
		{ErrSessionLost, keystore.ErrTokenUnavailable},
		{ErrWrongPIN, keystore.ErrPINRefused},
		{ErrPINLocked, keystore.ErrPINRefused},
		{ErrWalletExists, nil},
		{ErrMasterKeyMissing, nil},
		{ErrTokenNotFound, nil},
		{ErrClosed, nil},
	} {
		for _, err := range []error{c.err, fmt.Errorf("hsm: doing: %w", c.err)} {
			if !errors.Is(err, c.err) {
				t.Errorf("errors.Is(%v, itself) = false", err)
			}
			for _, k := range contract {
				if got := errors.Is(err, k); got != (k == c.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, k, got)
				}
			}
		}
	}
	if errors.Is(ErrTokenUnavailable, ErrSessionLost) || errors.Is(ErrSessionLost, ErrTokenUnavailable) || errors.Is(ErrWrongPIN, ErrPINLocked) {
		t.Error("hsm's sentinels match each other through the contract")
	}
	// An unavailable token that refused the PIN is both.
	final := fmt.Errorf("%w: logging in: %w", ErrTokenUnavailable, ErrWrongPIN)
	if !errors.Is(final, keystore.ErrTokenUnavailable) || !errors.Is(final, keystore.ErrPINRefused) {
		t.Errorf("%v matches not both keystore.ErrTokenUnavailable and keystore.ErrPINRefused", final)
	}
}

// TestSeamLabel: hsm's label rule is the contract's, and its error for a
// bad label is a *keystore.LabelError too; other ConfigErrors are not.
func TestSeamLabel(t *testing.T) {
	for _, label := range []string{"w", "café", strings.Repeat("a", MaxLabelLen), "", strings.Repeat("a", MaxLabelLen+1), "\xff", "a\tb"} {
		herr, kerr := CheckLabel(label), keystore.CheckLabel(label)
		if (herr == nil) != (kerr == nil) {
			t.Errorf("%q: hsm.CheckLabel = %v, keystore.CheckLabel = %v", label, herr, kerr)
			continue
		}
		if herr == nil {
			continue
		}
		var ce *ConfigError
		var le, kle *keystore.LabelError
		if !errors.As(herr, &ce) || ce.Field != "label" {
			t.Errorf("%q: hsm.CheckLabel = %v, want a *ConfigError for label", label, herr)
		}
		errors.As(kerr, &kle)
		if !errors.As(fmt.Errorf("wrapped: %w", herr), &le) || le.Reason != kle.Reason {
			t.Errorf("%q: hsm.CheckLabel = %v, want it a *keystore.LabelError %q", label, herr, kle.Reason)
		}
	}
	var le *keystore.LabelError
	if errors.As(&ConfigError{Field: "PoolSize", Reason: "too big"}, &le) {
		t.Error("a ConfigError for PoolSize is a *keystore.LabelError")
	}
}
