//go:build cgo

package hsm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
	"github.com/nanokms/nanokms/softhsm-test/tokentest"
)

func TestMain(m *testing.M) {
	code := softhsmtest.Run(m)
	processNSS.cleanup()
	os.Exit(code)
}

// processNSS is the NSS softokn token of this test binary: a process
// initialises NSS once, with one database, so every test (and benchmark)
// that uses NSS in-process shares it. It is removed when the binary ends.
var processNSS nssFixture

type nssFixture struct {
	once sync.Once
	dir  string
	tk   tokentest.Token
	ok   bool
}

func (n *nssFixture) cleanup() {
	if n.dir != "" {
		_ = os.RemoveAll(n.dir)
	}
}

// sharedNSS returns the binary's NSS token, setting it up on first use.
// Its master key and wallets are shared too: tests give their wallets
// labels of their own, and mustMasterKey accepts a master key that exists.
func sharedNSS(t testing.TB) tokentest.Token {
	t.Helper()
	processNSS.once.Do(func() {
		dir, err := os.MkdirTemp("", "nanokms-hsm-nss-")
		if err != nil {
			t.Fatal(err)
		}
		processNSS.dir = dir
		processNSS.tk = tokentest.NewNSS(t, dir)
		processNSS.ok = true
	})
	if !processNSS.ok {
		t.Fatal("the NSS token of this test binary could not be set up (see the first test that used it)")
	}
	return processNSS.tk
}

// nssConfig is the Config of the binary's NSS token.
func nssConfig(t testing.TB) Config {
	t.Helper()
	tk := sharedNSS(t)
	return Config{Module: tk.Module, ModuleParams: tk.ModuleParams, TokenLabel: tk.Label, WalletDir: tk.WalletDir, PIN: mustPIN(t, tk.PIN)}
}

// mustMasterKey makes sure tok has a master key of scheme (0: the
// token's choice), creating it unless the token has one already (a
// shared token), and returns its scheme.
func mustMasterKey(t testing.TB, tok *Token, scheme SealScheme) SealScheme {
	t.Helper()
	ctx := context.Background()
	err := tok.CreateMasterKey(ctx, scheme)
	if err != nil && !errors.Is(err, ErrMasterKeyExists) {
		t.Fatalf("CreateMasterKey: %v", err)
	}
	got, err := tok.MasterKeyScheme(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if scheme != 0 && got != scheme {
		t.Fatalf("the master key is for %s, want %s", got, scheme)
	}
	return got
}

var walletSeq atomic.Uint64

// uniqueWallet returns a wallet label unique in the process.
func uniqueWallet(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, walletSeq.Add(1))
}

// mustPIN returns pin as a *PIN wiped at the end of the test.
func mustPIN(t testing.TB, pin string) *PIN {
	t.Helper()
	p, err := NewPIN([]byte(pin))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Wipe)
	return p
}

// mustFake returns a fake over the real SoftHSM module.
func mustFake(t testing.TB) *fakeP11 {
	t.Helper()
	real, err := loadModule(softhsmtest.Module(t), "")
	if err != nil {
		t.Fatal(err)
	}
	return newFake(real)
}

type tokenOpts struct {
	pool     int        // 0: default
	noMaster bool       // do not create the master key
	scheme   SealScheme // of the master key; 0: the token's choice
	// recoverMin and recoverMax pace recovery; 0: the defaults.
	recoverMin, recoverMax time.Duration
}

// mustToken makes a fresh SoftHSM token, opens it through a fake (which
// passes every call to SoftHSM until a test overrides one), creates the
// master key unless told not to, and closes the Token when the test ends.
func mustToken(t testing.TB, o tokenOpts) (*Token, *fakeP11, softhsmtest.Token) {
	t.Helper()
	st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("hsm"))
	f := mustFake(t)
	tok := mustOpen(t, f, Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN), PoolSize: o.pool,
		RecoverMin: o.recoverMin, RecoverMax: o.recoverMax})
	if !o.noMaster {
		if err := tok.CreateMasterKey(context.Background(), o.scheme); err != nil {
			t.Fatalf("CreateMasterKey: %v", err)
		}
	}
	return tok, f, st
}

// mustOpen opens cfg through p and closes the Token when the test ends.
func mustOpen(t testing.TB, p p11, cfg Config) *Token {
	t.Helper()
	tok, err := open(context.Background(), p, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok
}

// mustWallet creates a wallet and returns its label.
func mustWallet(t testing.TB, tok *Token, label string) WalletInfo {
	t.Helper()
	info, err := tok.CreateWallet(context.Background(), label)
	if err != nil {
		t.Fatalf("CreateWallet(%q): %v", label, err)
	}
	return info
}

// waitAvailable waits until tok reports its token available again, on
// Token.Available's channel; limit only bounds a hang.
func waitAvailable(t testing.TB, tok *Token, limit time.Duration) {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		ok, changed := tok.Available()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("token still unavailable after %s: %+v", limit, tok.Status())
		}
	}
}
