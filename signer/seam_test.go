package signer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	"github.com/nanokms/nanokms/internal/keystore"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// contractKeys is the world's token, but its PublicKey and SignFor fail
// with err: an error that knows only the key store contract (package
// keystore), none of hsm's types.
type contractKeys struct {
	KeyStore
	pubErr, signErr error
}

func (k *contractKeys) PublicKey(ctx context.Context, wallet string, index uint32) (nano.PublicKey, error) {
	if k.pubErr != nil {
		return nano.PublicKey{}, k.pubErr
	}
	return k.KeyStore.PublicKey(ctx, wallet, index)
}

func (k *contractKeys) SignFor(ctx context.Context, wallet string, index uint32, account nano.PublicKey, hash nano.Hash) (nano.Signature, error) {
	if k.signErr != nil {
		return nano.Signature{}, k.signErr
	}
	return k.KeyStore.SignFor(ctx, wallet, index, account, hash)
}

// TestSeamAdopt: the signer refuses an adoption by the contract's errors
// alone: an unknown wallet (keystore.ErrWalletNotFound) as an unknown
// account, a label the store rejects (*keystore.LabelError) as malformed,
// both naming the wallet field; any other error is internal.
func TestSeamAdopt(t *testing.T) {
	w := newWorld(t)
	for _, c := range []struct {
		name   string
		err    error
		reason pb.RefusalReason // 0: not a refusal
	}{
		{"wallet not found", fmt.Errorf("store: %w", keystore.ErrWalletNotFound), rUnknownAccount},
		{"bad label", fmt.Errorf("store: %w", &keystore.LabelError{Reason: "too odd"}), rMalformed},
		{"other", errors.New("store: broken"), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := New(w.store, &contractKeys{KeyStore: w.tok, pubErr: c.err}, w.signer.policy, Options{Now: w.signer.opts.Now})
			_, err := s.Adopt(w.ctx, "custody", 30, nil, 0)
			var r *Refusal
			switch {
			case c.reason == 0:
				if err == nil || errors.As(err, &r) || !errors.Is(err, c.err) {
					t.Fatalf("Adopt = %v, want an internal error wrapping %v", err, c.err)
				}
			case !errors.As(err, &r) || r.Reason != c.reason || r.Field != "wallet":
				t.Fatalf("Adopt = %v, want a refusal %v of the wallet field", err, c.reason)
			}
		})
	}
}

// TestSeamTokenUnavailable: a signature the store cannot make because
// the token is unavailable (keystore.ErrTokenUnavailable, final when it
// also matches keystore.ErrPINRefused) is reported as such to the
// caller (UNAVAILABLE, "final" as it is) and to Options.Observe, by the
// contract's errors alone.
func TestSeamTokenUnavailable(t *testing.T) {
	w := newWorld(t)
	for i, c := range []struct {
		name  string
		err   error
		final bool
	}{
		{"reconnecting", fmt.Errorf("store: %w", keystore.ErrTokenUnavailable), false},
		{"PIN refused", fmt.Errorf("store: %w: %w", keystore.ErrTokenUnavailable, keystore.ErrPINRefused), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			acct, err := w.tok.PublicKey(w.ctx, "custody", uint32(40+i))
			if err != nil {
				t.Fatal(err)
			}
			w.adopt("custody", uint32(40+i), nil)
			src, prev := w.Fund(acct, custodytest.XNO(1))
			req := &pb.SignRequest{Intent: w.ReceiveIntent(acct, custodytest.XNO(1), src.Hash(), &w.Rep), Source: pbBlock(src), SourcePrevious: pbBlock(prev)}
			var observed []string
			s := New(w.store, &contractKeys{KeyStore: w.tok, signErr: c.err}, w.signer.policy, Options{Now: w.signer.opts.Now,
				Observe: func(decision, reason string, _ time.Duration) { observed = append(observed, decision+"/"+reason) }})
			resp, err := s.Sign(w.ctx, req)
			if err == nil {
				t.Fatalf("Sign = %v, want an error", resp)
			}
			st := StatusOf(err)
			if st.Code() != codes.Unavailable || !signerapi.IsTokenUnavailable(st) {
				t.Fatalf("StatusOf(%v) = %v, want the token unavailable", err, st)
			}
			final := ""
			for _, d := range st.Details() {
				if ei, ok := d.(*errdetails.ErrorInfo); ok {
					final = ei.GetMetadata()["final"]
				}
			}
			if want := fmt.Sprint(c.final); final != want {
				t.Errorf("StatusOf(%v): final %q, want %q", err, final, want)
			}
			if want := DecisionFailed + "/" + ReasonTokenUnavailable; len(observed) != 1 || observed[0] != want {
				t.Errorf("observed %q, want [%s]", observed, want)
			}
		})
	}
}
