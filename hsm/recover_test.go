//go:build cgo

package hsm

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

// outage makes f behave like a module whose token went away while gone
// is true: the slot is empty (C_GetSlotList lists it no more,
// C_GetTokenInfo and C_OpenSession answer CKR_TOKEN_NOT_PRESENT) and
// every call on a session answers CKR_DEVICE_REMOVED. While renumber is
// set, the token comes back in another slot (slot ids are not stable:
// a token replugged gets a new one).
type outage struct {
	gone     atomic.Bool
	renumber atomic.Bool
}

// shift is the slot id difference of a renumbered slot.
const shift = 1000

func installOutage(f *fakeP11) *outage {
	o := &outage{}
	removed := pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED)
	absent := pkcs11.Error(pkcs11.CKR_TOKEN_NOT_PRESENT)
	// realSlot maps a slot id the Token may use to SoftHSM's.
	realSlot := func(id uint) uint {
		if o.renumber.Load() && id >= shift {
			return id - shift
		}
		return id
	}
	f.Set(func(f *fakeP11) {
		f.GetSlotListFunc = func(present bool) ([]uint, error) {
			ids, err := f.real.GetSlotList(present)
			if o.gone.Load() {
				return nil, err
			}
			if o.renumber.Load() {
				for i := range ids {
					ids[i] += shift
				}
			}
			return ids, err
		}
		f.GetTokenInfoFunc = func(id uint) (pkcs11.TokenInfo, error) {
			if o.gone.Load() {
				return pkcs11.TokenInfo{}, absent
			}
			return f.real.GetTokenInfo(realSlot(id))
		}
		f.GetSlotInfoFunc = func(id uint) (pkcs11.SlotInfo, error) { return f.real.GetSlotInfo(realSlot(id)) }
		f.OpenSessionFunc = func(id, flags uint) (pkcs11.SessionHandle, error) {
			if o.gone.Load() {
				return 0, absent
			}
			return f.real.OpenSession(realSlot(id), flags)
		}
		f.FindObjectsInitFunc = func(sh pkcs11.SessionHandle, a []*pkcs11.Attribute) error {
			if o.gone.Load() {
				return removed
			}
			return f.real.FindObjectsInit(sh, a)
		}
		f.DecryptInitFunc = func(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, k pkcs11.ObjectHandle) error {
			if o.gone.Load() {
				return removed
			}
			return f.real.DecryptInit(sh, m, k)
		}
	})
	return o
}

// waitFinal waits until tok's recovery has stopped for good.
func waitFinal(t *testing.T, tok *Token, limit time.Duration) TokenStatus {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		_, changed := tok.Available()
		if st := tok.Status(); st.Final {
			return st
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("recovery has not stopped after %s: %+v", limit, tok.Status())
		}
	}
}

// A token that goes away makes the Token unavailable (not "wallet not
// found"); calls fail fast without touching the module; the Token finds
// the token again, in another slot, logs in again, and signs as before.
func TestTokenLossRecovered(t *testing.T) {
	tok, f, _ := mustToken(t, tokenOpts{pool: 2, recoverMin: time.Millisecond, recoverMax: 20 * time.Millisecond})
	mustWallet(t, tok, "w")
	ctx := context.Background()
	hash := nano.Hash{7}
	before, err := tok.Sign(ctx, "w", 1, hash)
	if err != nil {
		t.Fatal(err)
	}
	o := installOutage(f)
	firstSlot := tok.slot
	o.gone.Store(true)

	_, err = tok.Sign(ctx, "w", 1, hash)
	if !errors.Is(err, ErrTokenUnavailable) || errors.Is(err, ErrWalletNotFound) || errors.Is(err, ErrSessionLost) {
		t.Fatalf("Sign during the outage = %v, want ErrTokenUnavailable only", err)
	}
	if !strings.Contains(err.Error(), "CKR_TOKEN_NOT_PRESENT") {
		t.Fatalf("the error does not say why: %v", err)
	}
	if ok, _ := tok.Available(); ok {
		t.Fatal("Available during the outage")
	}
	st := tok.Status()
	if st.Available || st.Cause == nil || st.Since.IsZero() || st.Losses != 1 || st.Final {
		t.Fatalf("Status during the outage = %+v", st)
	}
	// Every method says so.
	if _, err := tok.ListWallets(ctx); !errors.Is(err, ErrTokenUnavailable) {
		t.Fatalf("ListWallets during the outage = %v", err)
	}
	if err := tok.Check(ctx); !errors.Is(err, ErrTokenUnavailable) {
		t.Fatalf("Check during the outage = %v", err)
	}

	// Back, in another slot.
	o.renumber.Store(true)
	o.gone.Store(false)
	logins := f.Calls("Login")
	waitAvailable(t, tok, time.Minute)
	if tok.slot != firstSlot+shift {
		t.Fatalf("slot after recovery %d, want %d (found again by label, not kept)", tok.slot, firstSlot+shift)
	}
	after, err := tok.Sign(ctx, "w", 1, hash)
	if err != nil {
		t.Fatalf("Sign after recovery: %v", err)
	}
	if after != before {
		t.Fatal("the signature after recovery differs (Ed25519 is deterministic)")
	}
	// Recovery closed every session, so SoftHSM ended the login: exactly
	// one C_Login brought it back.
	if n := f.Calls("Login") - logins; n != 1 {
		t.Fatalf("%d logins during recovery, want 1", n)
	}
	if st := tok.Status(); !st.Available || st.Cause != nil || st.Losses != 1 {
		t.Fatalf("Status after recovery = %+v", st)
	}
}

// While the token is unavailable, calls return at once and make no
// PKCS#11 call.
func TestTokenLossFailsFast(t *testing.T) {
	// Recovery waits an hour before its first attempt: nothing else
	// calls the module meanwhile.
	tok, f, _ := mustToken(t, tokenOpts{recoverMin: time.Hour, recoverMax: time.Hour})
	mustWallet(t, tok, "w")
	ctx := context.Background()
	o := installOutage(f)
	o.gone.Store(true)
	if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); !errors.Is(err, ErrTokenUnavailable) {
		t.Fatalf("first Sign = %v", err)
	}
	calls := f.totalCalls()
	for i := 0; i < 10; i++ {
		if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); !errors.Is(err, ErrTokenUnavailable) {
			t.Fatalf("Sign %d = %v", i, err)
		}
	}
	if n := f.totalCalls() - calls; n != 0 {
		t.Fatalf("%d PKCS#11 calls while the token was known to be unavailable", n)
	}
}

// A token that refuses the PIN when the Token logs in again after a loss
// stops recovery for good: C_Login is called once, never again, and the
// Token stays unavailable, saying why.
func TestTokenLossWrongPINNeverRetried(t *testing.T) {
	for _, code := range []uint{pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_LOCKED} {
		t.Run(CodeName(code), func(t *testing.T) {
			tok, f, _ := mustToken(t, tokenOpts{pool: 2, recoverMin: time.Millisecond, recoverMax: 5 * time.Millisecond})
			mustWallet(t, tok, "w")
			ctx := context.Background()
			o := installOutage(f)
			o.gone.Store(true)
			if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); !errors.Is(err, ErrTokenUnavailable) {
				t.Fatalf("Sign during the outage = %v", err)
			}
			logins := f.Calls("Login")
			f.Set(func(f *fakeP11) {
				f.LoginFunc = func(pkcs11.SessionHandle, uint, string) error { return pkcs11.Error(code) }
			})
			o.gone.Store(false)
			st := waitFinal(t, tok, time.Minute)
			if !pinRefused(st.Cause) || st.Available {
				t.Fatalf("Status = %+v, want unavailable for a refused PIN", st)
			}
			if n := f.Calls("Login") - logins; n != 1 {
				t.Fatalf("C_Login called %d times, want 1", n)
			}
			// Recovery has ended: nothing is left to try the PIN again.
			tok.av.mu.Lock()
			running := tok.av.running
			tok.av.mu.Unlock()
			if running {
				t.Fatal("recovery still running after the PIN was refused")
			}
			for i := 0; i < 5; i++ {
				_, err := tok.Sign(ctx, "w", 0, nano.Hash{})
				if !errors.Is(err, ErrTokenUnavailable) || !pinRefused(err) {
					t.Fatalf("Sign after the refusal = %v, want ErrTokenUnavailable wrapping the refusal", err)
				}
				if err := tok.Check(ctx); !errors.Is(err, ErrTokenUnavailable) {
					t.Fatalf("Check after the refusal = %v", err)
				}
			}
			if n := f.Calls("Login") - logins; n != 1 {
				t.Fatalf("C_Login called %d times after the refusal, want 1", n)
			}
			if ok, _ := tok.Available(); ok {
				t.Fatal("Available after the refusal")
			}
		})
	}
}

// A wallet that is not there, on a token that is, is "wallet not found":
// the Token stays available.
func TestWalletNotFoundOnPresentToken(t *testing.T) {
	tok, f, _ := mustToken(t, tokenOpts{})
	mustWallet(t, tok, "w")
	ctx := context.Background()
	if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); err != nil {
		t.Fatal(err)
	}
	infos := f.Calls("GetTokenInfo")
	_, err := tok.Sign(ctx, "nope", 0, nano.Hash{})
	if !errors.Is(err, ErrWalletNotFound) || errors.Is(err, ErrTokenUnavailable) {
		t.Fatalf("Sign with an unknown wallet = %v", err)
	}
	if f.Calls("GetTokenInfo") == infos {
		t.Fatal("the token was not checked before answering 'wallet not found'")
	}
	if ok, _ := tok.Available(); !ok {
		t.Fatalf("unavailable after a missing wallet: %+v", tok.Status())
	}
	if err := tok.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// Objects that vanish from a token still in its slot (SoftHSM, when its
// object files are emptied) make it unavailable, not "wallet not found"
// or "no master key"; when they are back, it recovers.
func TestObjectsVanish(t *testing.T) {
	tok, f, _ := mustToken(t, tokenOpts{recoverMin: time.Millisecond, recoverMax: 10 * time.Millisecond})
	mustWallet(t, tok, "w")
	ctx := context.Background()
	if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); err != nil {
		t.Fatal(err)
	}
	var vanished atomic.Bool
	f.Set(func(f *fakeP11) {
		f.FindObjectsFunc = func(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
			hs, more, err := f.real.FindObjects(sh, max)
			if vanished.Load() {
				return nil, false, err
			}
			return hs, more, err
		}
		f.DecryptInitFunc = func(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, k pkcs11.ObjectHandle) error {
			if vanished.Load() {
				return pkcs11.Error(pkcs11.CKR_KEY_HANDLE_INVALID)
			}
			return f.real.DecryptInit(sh, m, k)
		}
	})
	vanished.Store(true)
	for _, op := range []func() error{
		func() error { _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); return err },
		func() error { _, err := tok.PublicKey(ctx, "w", 0); return err },
	} {
		err := op()
		if !errors.Is(err, ErrTokenUnavailable) || errors.Is(err, ErrWalletNotFound) || errors.Is(err, ErrMasterKeyMissing) {
			t.Fatalf("with the objects gone: %v, want ErrTokenUnavailable and not 'not found'", err)
		}
		if !errors.Is(err, errMasterGone) {
			t.Fatalf("the error does not say the master key vanished: %v", err)
		}
	}
	vanished.Store(false)
	waitAvailable(t, tok, time.Minute)
	if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); err != nil {
		t.Fatalf("Sign after the objects came back: %v", err)
	}
}

// The master key found again after a loss must be the one the Token had:
// a token made anew under the same label and serial is not taken over.
func TestRecoveryRefusesAnotherMasterKey(t *testing.T) {
	tok, f, _ := mustToken(t, tokenOpts{recoverMin: time.Millisecond, recoverMax: 5 * time.Millisecond})
	mustWallet(t, tok, "w")
	ctx := context.Background()
	if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); err != nil {
		t.Fatal(err)
	}
	o := installOutage(f)
	o.gone.Store(true)
	if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); !errors.Is(err, ErrTokenUnavailable) {
		t.Fatal(err)
	}
	// Back, but its master key's CKA_ID is another.
	f.Set(func(f *fakeP11) {
		f.GetAttributeValueFunc = func(sh pkcs11.SessionHandle, h pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
			out, err := f.real.GetAttributeValue(sh, h, a)
			for _, x := range out {
				if x.Type == pkcs11.CKA_ID {
					x.Value = []byte("another key")
				}
			}
			return out, err
		}
	})
	o.gone.Store(false)
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		_, changed := tok.Available()
		if st := tok.Status(); st.Attempts > 0 && errors.Is(st.Cause, errOtherMaster) {
			break
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("recovery did not refuse the other master key: %+v", tok.Status())
		}
	}
	if ok, _ := tok.Available(); ok {
		t.Fatal("available with another master key")
	}
}

// A presence probe runs this executable again: it sees a token that
// exists and says why it sees none for a label that does not.
func TestPresenceProbe(t *testing.T) {
	st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("presence"))
	ctx := context.Background()
	if err := presentInFreshProcess(ctx, st.Module, "", Config{TokenLabel: st.Label, TokenSerial: st.Serial}); err != nil {
		t.Fatalf("probe for an existing token: %v", err)
	}
	err := presentInFreshProcess(ctx, st.Module, "", Config{TokenLabel: st.Label, TokenSerial: "0000000000000000"})
	if err == nil || !strings.Contains(err.Error(), ErrTokenNotFound.Error()) {
		t.Fatalf("probe for another serial = %v, want token not found", err)
	}
	err = presentInFreshProcess(ctx, "/nonexistent/libnothing.so", "", Config{TokenLabel: st.Label})
	if err == nil || !strings.Contains(err.Error(), ErrModule.Error()) {
		t.Fatalf("probe with no module = %v, want the module error", err)
	}
	var out strings.Builder
	if code := presenceMain("{not json", &out); code != presenceBadSpec {
		t.Fatalf("bad spec: exit %d (%q)", code, out.String())
	}
}
