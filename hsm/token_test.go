//go:build cgo

package hsm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

func TestOpen(t *testing.T) {
	ctx := context.Background()
	st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("open"))
	twinLabel := softhsmtest.UniqueLabel("twin")
	twin1 := softhsmtest.MustToken(t, twinLabel)
	softhsmtest.MustToken(t, twinLabel)
	pin := mustPIN(t, st.PIN)
	var ce *ConfigError
	tests := []struct {
		name  string
		cfg   Config
		check func(error) bool
	}{
		{"by label", Config{Module: st.Module, TokenLabel: st.Label, PIN: pin}, func(err error) bool { return err == nil }},
		{"by serial", Config{Module: st.Module, TokenSerial: st.Serial, PIN: pin}, func(err error) bool { return err == nil }},
		{"label and serial", Config{Module: st.Module, TokenLabel: st.Label, TokenSerial: st.Serial, PIN: pin}, func(err error) bool { return err == nil }},
		{"duplicate label with serial", Config{Module: st.Module, TokenLabel: twinLabel, TokenSerial: twin1.Serial, PIN: pin}, func(err error) bool { return err == nil || errors.Is(err, ErrWrongPIN) }},
		{"missing token", Config{Module: st.Module, TokenLabel: "no-such-token", PIN: pin}, func(err error) bool { return errors.Is(err, ErrTokenNotFound) }},
		{"label and other serial", Config{Module: st.Module, TokenLabel: st.Label, TokenSerial: twin1.Serial, PIN: pin}, func(err error) bool { return errors.Is(err, ErrTokenNotFound) }},
		{"duplicate label", Config{Module: st.Module, TokenLabel: twinLabel, PIN: pin}, func(err error) bool { return errors.Is(err, ErrTokenAmbiguous) }},
		{"missing module", Config{Module: filepath.Join(t.TempDir(), "nope.so"), TokenLabel: st.Label, PIN: pin}, func(err error) bool { return errors.Is(err, ErrModule) }},
		{"no module", Config{TokenLabel: st.Label, PIN: pin}, func(err error) bool { return errors.As(err, &ce) && ce.Field == "Module" }},
		{"no token", Config{Module: st.Module, PIN: pin}, func(err error) bool { return errors.As(err, &ce) && ce.Field == "TokenLabel" }},
		{"no PIN", Config{Module: st.Module, TokenLabel: st.Label}, func(err error) bool { return errors.As(err, &ce) && ce.Field == "PIN" }},
		{"pool too big", Config{Module: st.Module, TokenLabel: st.Label, PIN: pin, PoolSize: MaxPoolSize + 1}, func(err error) bool { return errors.As(err, &ce) && ce.Field == "PoolSize" }},
		{"pool negative", Config{Module: st.Module, TokenLabel: st.Label, PIN: pin, PoolSize: -1}, func(err error) bool { return errors.As(err, &ce) && ce.Field == "PoolSize" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Open(ctx, tt.cfg)
			if err == nil {
				tok.Close()
			}
			if !tt.check(err) {
				t.Fatalf("Open: %v", err)
			}
		})
	}
}

func TestOpenCancelled(t *testing.T) {
	st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("cancel"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open = %v, want context.Canceled", err)
	}
}

// A wrong PIN costs exactly one C_Login, is reported as ErrWrongPIN, and
// leaves the token usable with the right PIN.
func TestWrongPIN(t *testing.T) {
	st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("pin"))
	f := mustFake(t)
	_, err := open(context.Background(), f, Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, "not-the-pin")})
	if !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("open with a wrong PIN = %v, want ErrWrongPIN", err)
	}
	if strings.Contains(err.Error(), "not-the-pin") {
		t.Fatalf("the error shows the PIN: %v", err)
	}
	if n := f.Calls("Login"); n != 1 {
		t.Fatalf("C_Login called %d times, want exactly 1", n)
	}
	if n := f.Calls("OpenSession") - f.Calls("CloseSession"); n != 0 {
		t.Fatalf("%d sessions left open", n)
	}
	// Not locked: the right PIN still logs in.
	tok := mustOpen(t, f, Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN)})
	if _, err := tok.ListWallets(context.Background()); err != nil {
		t.Fatalf("after a wrong PIN, the right one fails: %v", err)
	}
}

// After the token refuses the PIN on a re-login, the Token never tries to
// log in again.
func TestWrongPINNeverRetried(t *testing.T) {
	tok, f, st := mustToken(t, tokenOpts{pool: 2})
	mustWallet(t, tok, "w")
	ctx := context.Background()
	// Lose every session of the process (as if the token had been pulled
	// out and put back) and have the token refuse the PIN from now on.
	realCtx, _ := loadModule(st.Module, "")
	if err := realCtx.CloseAllSessions(tok.slot); err != nil {
		t.Fatal(err)
	}
	f.LoginFunc = func(pkcs11.SessionHandle, uint, string) error { return pkcs11.Error(pkcs11.CKR_PIN_INCORRECT) }
	before := f.Calls("Login")
	for i := 0; i < 3; i++ {
		if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); !errors.Is(err, ErrWrongPIN) {
			t.Fatalf("Sign %d = %v, want ErrWrongPIN", i, err)
		}
	}
	if n := f.Calls("Login") - before; n != 1 {
		t.Fatalf("C_Login called %d times after the token's refusal, want 1", n)
	}
}

func TestAlreadyLoggedIn(t *testing.T) {
	st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("twice"))
	cfg := Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN)}
	a := mustOpen(t, mustFake(t), cfg)
	b := mustOpen(t, mustFake(t), cfg) // C_Login returns CKR_USER_ALREADY_LOGGED_IN
	if err := a.CreateMasterKey(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	mustWallet(t, a, "w")
	if _, err := b.PublicKey(context.Background(), "w", 0); err != nil {
		t.Fatal(err)
	}
}

// A lost session is replaced and the operation retried once, logging in
// again when the process's login went with it.
func TestSessionLost(t *testing.T) {
	codes := []uint{
		pkcs11.CKR_SESSION_HANDLE_INVALID,
		pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_DEVICE_REMOVED,
		pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_USER_NOT_LOGGED_IN,
	}
	for _, code := range codes {
		t.Run(pkcs11.Error(code).Error(), func(t *testing.T) {
			tok, f, _ := mustToken(t, tokenOpts{pool: 1})
			mustWallet(t, tok, "w")
			ctx := context.Background()
			pub, err := tok.PublicKey(ctx, "w", 3)
			if err != nil {
				t.Fatal(err)
			}
			hash := nano.Hash{1, 2, 3}

			// Fails once: retried on a new session, succeeds.
			var fails atomic.Int32
			fails.Store(1)
			f.DecryptIntoFunc = func(sh pkcs11.SessionHandle, ct, dst []byte) ([]byte, error) {
				if fails.Add(-1) >= 0 {
					return nil, pkcs11.Error(code)
				}
				return f.real.DecryptInto(sh, ct, dst)
			}
			opens := f.Calls("OpenSession")
			sig, err := tok.Sign(ctx, "w", 3, hash)
			if err != nil {
				t.Fatalf("Sign after one lost session: %v", err)
			}
			if !nano.Verify(pub, hash[:], sig) {
				t.Fatal("signature does not verify")
			}
			if n := f.Calls("OpenSession") - opens; n != 1 {
				t.Fatalf("%d sessions opened for the retry, want 1", n)
			}

			// Fails twice: ErrSessionLost, and only two attempts.
			fails.Store(2)
			decrypts := f.Calls("DecryptInto")
			if _, err := tok.Sign(ctx, "w", 3, hash); !errors.Is(err, ErrSessionLost) || !errors.Is(err, pkcs11.Error(code)) {
				t.Fatalf("Sign after two lost sessions = %v, want ErrSessionLost wrapping the code", err)
			}
			if n := f.Calls("DecryptInto") - decrypts; n != 2 {
				t.Fatalf("%d attempts, want 2", n)
			}

			// And the Token still works.
			f.DecryptIntoFunc = nil
			if _, err := tok.Sign(ctx, "w", 3, hash); err != nil {
				t.Fatalf("Sign after recovery: %v", err)
			}
		})
	}
}

// Really losing every session (and so the login) is survived with one new
// C_Login with the same PIN.
func TestReloginAfterSessionLoss(t *testing.T) {
	tok, f, st := mustToken(t, tokenOpts{pool: 3})
	mustWallet(t, tok, "w")
	ctx := context.Background()
	realCtx, _ := loadModule(st.Module, "")
	if err := realCtx.CloseAllSessions(tok.slot); err != nil {
		t.Fatal(err)
	}
	logins := f.Calls("Login")
	if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); err != nil {
		t.Fatalf("Sign after all sessions were closed: %v", err)
	}
	if n := f.Calls("Login") - logins; n != 1 {
		t.Fatalf("%d logins after the loss, want 1", n)
	}
}

// 32 goroutines sign through a pool of 4 sessions; every signature
// verifies and no more than 4 sessions are ever opened.
func TestConcurrentSigning(t *testing.T) {
	const goroutines, perG, pool = 32, 8, 4
	tok, f, _ := mustToken(t, tokenOpts{pool: pool})
	ctx := context.Background()
	// Open's probe opened (and closed) one session of its own.
	opened := f.Calls("OpenSession")
	mustWallet(t, tok, "a")
	mustWallet(t, tok, "b")
	pubs := map[string]map[uint32]nano.PublicKey{"a": {}, "b": {}}
	for w := range pubs {
		for i := uint32(0); i < 4; i++ {
			p, err := tok.PublicKey(ctx, w, i)
			if err != nil {
				t.Fatal(err)
			}
			pubs[w][i] = p
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*perG)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; n < perG; n++ {
				w := []string{"a", "b"}[(g+n)%2]
				idx := uint32((g * n) % 4)
				hash := nano.Hash{byte(g), byte(n)}
				sig, err := tok.Sign(ctx, w, idx, hash)
				if err != nil {
					errs <- err
					continue
				}
				if !nano.Verify(pubs[w][idx], hash[:], sig) {
					errs <- errors.New("signature does not verify")
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := f.Calls("OpenSession") - opened; n > pool-1 {
		t.Fatalf("%d sessions opened for a pool of %d", n, pool)
	}
}

// Close while goroutines sign: each call either succeeds or returns
// ErrClosed; nothing panics or hangs; every session is closed.
func TestCloseUnderLoad(t *testing.T) {
	const goroutines = 32
	tok, f, _ := mustToken(t, tokenOpts{pool: 4})
	mustWallet(t, tok, "w")
	ctx := context.Background()
	var (
		wg      sync.WaitGroup
		started sync.WaitGroup
		signed  atomic.Int64
	)
	errs := make(chan error, goroutines)
	started.Add(goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			first := true
			for {
				_, err := tok.Sign(ctx, "w", uint32(g), nano.Hash{byte(g)})
				if first {
					started.Done()
					first = false
				}
				if err != nil {
					errs <- err
					return
				}
				signed.Add(1)
			}
		}(g)
	}
	started.Wait() // every goroutine has finished one call
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v, want ErrClosed", err)
		}
	}
	if signed.Load() == 0 {
		t.Error("nothing was signed before Close")
	}
	if err := tok.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := tok.ListWallets(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("ListWallets after Close = %v", err)
	}
	if open := f.Calls("OpenSession") - f.Calls("CloseSession"); open != 0 {
		t.Fatalf("%d sessions left open", open)
	}
	if n := f.Calls("Logout"); n != 0 {
		t.Fatal("Close logged out")
	}
}

// A caller waiting for a session honours its context.
func TestWaitHonoursContext(t *testing.T) {
	tok, f, _ := mustToken(t, tokenOpts{pool: 1})
	mustWallet(t, tok, "w")
	inside := make(chan struct{})
	release := make(chan struct{})
	f.GetSessionInfoFunc = nil
	f.DecryptIntoFunc = func(sh pkcs11.SessionHandle, ct, dst []byte) ([]byte, error) {
		close(inside)
		<-release
		return f.real.DecryptInto(sh, ct, dst)
	}
	done := make(chan error)
	go func() {
		_, err := tok.Sign(context.Background(), "w", 0, nano.Hash{})
		done <- err
	}()
	<-inside // the only session is busy
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sign with a cancelled context = %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestMain_noSOFTHSMLeak(t *testing.T) {
	// The tests run against the helper's own token directory, never the
	// system's.
	if conf := os.Getenv("SOFTHSM2_CONF"); conf == "" || filepath.Dir(conf) != softhsmtest.Dir(t) {
		t.Fatalf("SOFTHSM2_CONF = %q", conf)
	}
}
