//go:build cgo

package hsm

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

var errInjected = pkcs11.Error(pkcs11.CKR_DEVICE_ERROR)

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func isNot(target error) func(error) bool {
	return func(err error) bool { return err != nil && errors.Is(err, errInjected) && !errors.Is(err, target) }
}

// once returns an error-returning hook that fails the first call only.
func once() func() bool {
	var n atomic.Int32
	return func() bool { return n.Add(1) == 1 }
}

// One injected failure per branch of Open.
func TestOpenFaults(t *testing.T) {
	tests := []struct {
		name   string
		inject func(f *fakeP11)
		want   func(error) bool
	}{
		{"C_GetSlotList", func(f *fakeP11) {
			f.GetSlotListFunc = func(bool) ([]uint, error) { return nil, errInjected }
		}, is(errInjected)},
		{"C_GetTokenInfo", func(f *fakeP11) {
			f.GetTokenInfoFunc = func(uint) (pkcs11.TokenInfo, error) { return pkcs11.TokenInfo{}, errInjected }
		}, is(errInjected)},
		{"C_OpenSession", func(f *fakeP11) {
			f.OpenSessionFunc = func(uint, uint) (pkcs11.SessionHandle, error) { return 0, errInjected }
		}, is(errInjected)},
		{"C_Login device error", func(f *fakeP11) {
			f.LoginFunc = func(pkcs11.SessionHandle, uint, string) error { return errInjected }
		}, isNot(ErrWrongPIN)},
		{"C_Login PIN locked", func(f *fakeP11) {
			f.LoginFunc = func(pkcs11.SessionHandle, uint, string) error { return pkcs11.Error(pkcs11.CKR_PIN_LOCKED) }
		}, is(ErrPINLocked)},
		{"C_Login already logged in", func(f *fakeP11) {
			f.LoginFunc = func(pkcs11.SessionHandle, uint, string) error {
				return pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)
			}
		}, func(err error) bool { return err == nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("fault"))
			f := mustFake(t)
			// Log in for real first, so that "already logged in" is true.
			real := mustOpen(t, f, Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN)})
			defer real.Close()
			logins := f.Calls("Login")
			tt.inject(f)
			tok, err := open(context.Background(), f, Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN)})
			if err == nil {
				tok.Close()
			}
			if !tt.want(err) {
				t.Fatalf("open = %v", err)
			}
			if n := f.Calls("Login") - logins; n > 1 {
				t.Fatalf("%d logins", n)
			}
		})
	}
}

// One injected failure per branch of the token operations.
func TestOperationFaults(t *testing.T) {
	ctx := context.Background()
	sign := func(tok *Token) error { _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); return err }
	create := func(tok *Token) error { _, err := tok.CreateWallet(ctx, "new"); return err }
	tests := []struct {
		name   string
		inject func(f *fakeP11)
		run    func(*Token) error
		want   func(error) bool
		// created says whether the wallet "new" may exist afterwards.
		created bool
		// lost says the fault makes the token unavailable: verify
		// cannot use it either. Once the fault is gone, it recovers.
		lost bool
	}{
		{name: "C_FindObjectsInit", run: create, want: is(errInjected), lost: true, inject: func(f *fakeP11) {
			f.FindObjectsInitFunc = func(pkcs11.SessionHandle, []*pkcs11.Attribute) error { return errInjected }
		}},
		{name: "C_FindObjects", run: sign, want: is(errInjected), lost: true, inject: func(f *fakeP11) {
			f.FindObjectsFunc = func(pkcs11.SessionHandle, int) ([]pkcs11.ObjectHandle, bool, error) { return nil, false, errInjected }
		}},
		{name: "C_FindObjects finds two", run: sign, want: is(ErrDuplicateObject), inject: func(f *fakeP11) {
			f.FindObjectsFunc = func(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
				hs, more, err := f.real.FindObjects(sh, max)
				if err == nil && len(hs) == 1 {
					hs = append(hs, hs[0]+1000)
				}
				return hs, more, err
			}
		}},
		{name: "C_FindObjectsFinal", run: sign, want: is(errInjected), lost: true, inject: func(f *fakeP11) {
			f.FindObjectsFinalFunc = func(sh pkcs11.SessionHandle) error {
				_ = f.real.FindObjectsFinal(sh)
				return errInjected
			}
		}},
		{name: "C_GetAttributeValue", run: sign, want: is(errInjected), inject: func(f *fakeP11) {
			f.GetAttributeValueFunc = func(pkcs11.SessionHandle, pkcs11.ObjectHandle, []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
				return nil, errInjected
			}
		}},
		{name: "C_GenerateRandom", run: create, want: is(errInjected), inject: func(f *fakeP11) {
			f.GenerateRandomFunc = func(pkcs11.SessionHandle, int) ([]byte, error) { return nil, errInjected }
		}},
		{name: "C_GenerateRandom short", run: create, want: func(err error) bool { return err != nil }, inject: func(f *fakeP11) {
			f.GenerateRandomFunc = func(pkcs11.SessionHandle, int) ([]byte, error) { return []byte{1}, nil }
		}},
		{name: "C_EncryptInit", run: create, want: is(errInjected), inject: func(f *fakeP11) {
			f.EncryptInitFunc = func(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle) error { return errInjected }
		}},
		{name: "C_Encrypt", run: create, want: is(errInjected), inject: func(f *fakeP11) {
			f.EncryptFunc = func(pkcs11.SessionHandle, []byte) ([]byte, error) { return nil, errInjected }
		}},
		{name: "C_CreateObject", run: create, want: is(errInjected), inject: func(f *fakeP11) {
			f.CreateObjectFunc = func(pkcs11.SessionHandle, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) { return 0, errInjected }
		}},
		{name: "C_DecryptInit", run: sign, want: isNot(ErrSealBroken), inject: func(f *fakeP11) {
			f.DecryptInitFunc = func(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle) error { return errInjected }
		}},
		{name: "C_Decrypt device error is not a broken seal", run: sign, want: isNot(ErrSealBroken), inject: func(f *fakeP11) {
			f.DecryptIntoFunc = func(pkcs11.SessionHandle, []byte, []byte) ([]byte, error) { return nil, errInjected }
		}},
		{name: "C_Decrypt general error is a broken seal", run: sign, want: is(ErrSealBroken), inject: func(f *fakeP11) {
			f.DecryptIntoFunc = func(pkcs11.SessionHandle, []byte, []byte) ([]byte, error) {
				return nil, pkcs11.Error(pkcs11.CKR_GENERAL_ERROR)
			}
		}},
		{name: "C_Decrypt wrong length", run: sign, want: is(ErrSealBroken), inject: func(f *fakeP11) {
			f.DecryptIntoFunc = func(_ pkcs11.SessionHandle, _, dst []byte) ([]byte, error) { return dst[:31], nil }
		}},
		{name: "C_Encrypt general error is not a broken seal", run: create, want: func(err error) bool {
			return errors.Is(err, pkcs11.Error(pkcs11.CKR_GENERAL_ERROR)) && !errors.Is(err, ErrSealBroken)
		}, inject: func(f *fakeP11) {
			f.EncryptFunc = func(pkcs11.SessionHandle, []byte) ([]byte, error) { return nil, pkcs11.Error(pkcs11.CKR_GENERAL_ERROR) }
		}},
		{name: "stale master key handle is looked up again", run: sign, want: is(nil), inject: func(f *fakeP11) {
			first := once()
			f.DecryptInitFunc = func(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
				if first() {
					return pkcs11.Error(pkcs11.CKR_KEY_HANDLE_INVALID)
				}
				return f.real.DecryptInit(sh, m, o)
			}
		}},
		{name: "C_OpenSession lost twice", run: func(tok *Token) error {
			// Take every slot: the ones without a session must open one.
			var err error
			for i := 0; i < 2*DefaultPoolSize && err == nil; i++ {
				err = sign(tok)
			}
			return err
		}, want: is(pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED)), lost: true, inject: func(f *fakeP11) {
			f.OpenSessionFunc = func(uint, uint) (pkcs11.SessionHandle, error) {
				return 0, pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED)
			}
		}},
		{name: "C_GetSessionInfo", run: func(tok *Token) error {
			var err error
			for i := 0; i < 2*DefaultPoolSize && err == nil; i++ {
				err = sign(tok)
			}
			return err
		}, want: is(errInjected), lost: true, inject: func(f *fakeP11) {
			f.GetSessionInfoFunc = func(pkcs11.SessionHandle) (pkcs11.SessionInfo, error) { return pkcs11.SessionInfo{}, errInjected }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, f, _ := mustToken(t, tokenOpts{})
			mustWallet(t, tok, "w")
			tok.forgetMaster()
			tt.inject(f)
			injectedInit := f.FindObjectsInitFunc != nil
			inits := f.Calls("FindObjectsInit")
			err := tt.run(tok)
			if !tt.want(err) {
				t.Fatalf("got %v", err)
			}
			if lost := errors.Is(err, ErrTokenUnavailable); lost != tt.lost {
				t.Fatalf("token unavailable: %v, want %v (%v)", lost, tt.lost, err)
			}
			// Every search that began was finished.
			if i, fin := f.Calls("FindObjectsInit")-inits, f.Calls("FindObjectsFinal"); !injectedInit && i > 0 && fin < i {
				t.Fatalf("%d searches begun, FindObjectsFinal called %d times overall", i, fin)
			}
			// Remove the fault; the Token works (once it has reconnected,
			// when it had lost the token) and nothing half-made is left.
			f.Reset()
			waitAvailable(t, tok, time.Minute)
			if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); err != nil {
				t.Fatalf("after the fault: %v", err)
			}
			if _, err := tok.Wallet(ctx, "new"); !tt.created && !errors.Is(err, ErrWalletNotFound) {
				t.Fatalf("wallet created despite the fault: %v", err)
			}
		})
	}
}

func TestCeremonyFaults(t *testing.T) {
	ctx := context.Background()
	t.Run("C_GenerateKey", func(t *testing.T) {
		tok, f, _ := mustToken(t, tokenOpts{noMaster: true})
		f.GenerateKeyFunc = func(pkcs11.SessionHandle, []*pkcs11.Mechanism, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
			return 0, errInjected
		}
		if err := tok.CreateMasterKey(ctx, 0); !errors.Is(err, errInjected) {
			t.Fatalf("CreateMasterKey = %v", err)
		}
		if _, err := tok.MasterKeyAttributes(ctx); !errors.Is(err, ErrMasterKeyMissing) {
			t.Fatalf("after a failed CreateMasterKey: %v", err)
		}
	})
	t.Run("C_SetAttributeValue", func(t *testing.T) {
		tok, f, _ := mustToken(t, tokenOpts{noMaster: true})
		if err := tok.CreateMasterKeyForBackup(ctx, 0); err != nil {
			t.Fatal(err)
		}
		f.SetAttributeValueFunc = func(pkcs11.SessionHandle, pkcs11.ObjectHandle, []*pkcs11.Attribute) error { return errInjected }
		if err := tok.FinishMasterKeyBackup(ctx); !errors.Is(err, errInjected) {
			t.Fatalf("FinishMasterKeyBackup = %v", err)
		}
		if _, err := tok.CreateWallet(ctx, "w"); !errors.Is(err, ErrMasterKeyExportable) {
			t.Fatalf("CreateWallet with an unfinished ceremony = %v", err)
		}
	})
	t.Run("C_WrapKey", func(t *testing.T) {
		tok, f, _ := mustToken(t, tokenOpts{noMaster: true})
		if err := tok.CreateMasterKeyForBackup(ctx, 0); err != nil {
			t.Fatal(err)
		}
		f.WrapKeyFunc = func(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle, pkcs11.ObjectHandle) ([]byte, error) {
			return nil, errInjected
		}
		destroys := f.Calls("DestroyObject")
		if _, err := tok.WrapMasterKey(ctx, mustTransportKey(t), BackupTarget{Schemes: Schemes, Unwrap: []string{wrapMechanismName}}); !errors.Is(err, errInjected) {
			t.Fatalf("WrapMasterKey = %v", err)
		}
		if f.Calls("DestroyObject")-destroys != 1 {
			t.Fatal("the imported transport key was not destroyed")
		}
	})
	t.Run("C_UnwrapKey", func(t *testing.T) {
		primary, _, _ := mustToken(t, tokenOpts{noMaster: true})
		backup, f, _ := mustToken(t, tokenOpts{noMaster: true})
		pub, err := backup.CreateTransportKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := primary.CreateMasterKeyForBackup(ctx, 0); err != nil {
			t.Fatal(err)
		}
		pkg, err := primary.WrapMasterKey(ctx, pub, BackupTarget{Schemes: Schemes, Unwrap: []string{wrapMechanismName}})
		if err != nil {
			t.Fatal(err)
		}
		f.UnwrapKeyFunc = func(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle, []byte, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
			return 0, pkcs11.Error(pkcs11.CKR_WRAPPED_KEY_INVALID)
		}
		if err := backup.ImportMasterKey(ctx, pkg); !errors.Is(err, ErrBadBlob) {
			t.Fatalf("ImportMasterKey = %v", err)
		}
		// The transport key survives a failed import, so it can be retried.
		f.UnwrapKeyFunc = nil
		if err := backup.ImportMasterKey(ctx, pkg); err != nil {
			t.Fatalf("retried ImportMasterKey: %v", err)
		}
	})
	t.Run("C_GenerateKeyPair", func(t *testing.T) {
		tok, f, _ := mustToken(t, tokenOpts{noMaster: true})
		f.GenerateKeyPairFunc = func(pkcs11.SessionHandle, []*pkcs11.Mechanism, []*pkcs11.Attribute, []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error) {
			return 0, 0, errInjected
		}
		if _, err := tok.CreateTransportKey(ctx); !errors.Is(err, errInjected) {
			t.Fatalf("CreateTransportKey = %v", err)
		}
	})
}
