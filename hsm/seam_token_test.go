//go:build cgo

package hsm

import (
	"context"
	"errors"
	"testing"

	"github.com/nanokms/nanokms/internal/keystore"
	"github.com/nanokms/nanokms/nano"
)

// TestSeamToken: a real token's errors and status reach the signer as
// the contract's: an unknown wallet is keystore.ErrWalletNotFound, a bad
// label a *keystore.LabelError, and Status is the contract's status.
func TestSeamToken(t *testing.T) {
	tok, _, _ := mustToken(t, tokenOpts{})
	ctx := context.Background()
	if _, err := tok.PublicKey(ctx, uniqueWallet("absent"), 0); !errors.Is(err, keystore.ErrWalletNotFound) {
		t.Errorf("PublicKey(absent wallet) = %v, want keystore.ErrWalletNotFound", err)
	}
	var le *keystore.LabelError
	if _, err := tok.SignFor(ctx, "a\nb", 0, nano.PublicKey{}, nano.Hash{}); !errors.As(err, &le) {
		t.Errorf("SignFor(bad label) = %v, want a *keystore.LabelError", err)
	}
	var st keystore.TokenStatus = tok.Status()
	if !st.Available || st.Final || st.Cause != nil {
		t.Errorf("Status() = %+v, want available", st)
	}
}
