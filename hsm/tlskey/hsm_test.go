//go:build cgo

package tlskey

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/nano"
)

// mustKeystore opens role's token with package hsm (as the signer does
// after its TLS key), with a master key and a wallet.
func mustKeystore(t *testing.T, role string) *hsm.Token {
	t.Helper()
	ctx := context.Background()
	tok, err := hsm.Open(ctx, hsm.Config{Module: module, TokenLabel: tokens[role], PIN: mustPIN(t, userPIN), PoolSize: 2})
	if err != nil {
		t.Fatalf("hsm.Open: %v", err)
	}
	t.Cleanup(func() { tok.Close() })
	if err := tok.CreateMasterKey(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.CreateWallet(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	return tok
}

// nanoSign signs with the keystore and checks the signature.
func nanoSign(ctx context.Context, tok *hsm.Token) error {
	pub, err := tok.PublicKey(ctx, "w", 0)
	if err != nil {
		return fmt.Errorf("PublicKey: %w", err)
	}
	var h nano.Hash
	h[0] = 7
	sig, err := tok.Sign(ctx, "w", 0, h)
	if err != nil {
		return fmt.Errorf("Sign: %w", err)
	}
	if !nano.Verify(pub, h[:], sig) {
		return errors.New("the Nano signature does not verify")
	}
	return nil
}

// TestCoexistWithKeystore is the signer's arrangement: the TLS key opened
// first (crypto11 initialises the module), then the keystore on the same
// token through package hsm (which accepts the initialised module and the
// login crypto11 holds). Both sign; closing either leaves the other
// working: nothing finalised the module.
func TestCoexistWithKeystore(t *testing.T) {
	ctx := context.Background()
	k := mustGenerate(t, config(t, "keystore", "signer-tls"))
	tok := mustKeystore(t, "keystore")
	if err := nanoSign(ctx, tok); err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("x"))
	if _, err := k.Sign(nil, d[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	k.Close()
	if err := nanoSign(ctx, tok); err != nil {
		t.Fatalf("after the TLS key's Close: %v", err)
	}
	tok.Close()
	k2, err := Open(ctx, config(t, "keystore", "signer-tls"))
	if err != nil {
		t.Fatalf("Open after the keystore's Close: %v", err)
	}
	if _, err := k2.Sign(nil, d[:], crypto.SHA256); err != nil {
		t.Fatalf("TLS signature after the keystore's Close: %v", err)
	}
}

// TestModuleInitialisedFirst runs hsmFirstChild in a process of its own:
// package hsm loads the module first, so crypto11 cannot start there.
func TestModuleInitialisedFirst(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+tokens["child"], "TLSKEY_TEST_MODULE="+module)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hsm-first: ok") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// hsmFirstChild opens the keystore with package hsm first, then a TLS
// key on the same module: ErrModuleInUse, and the keystore still signs
// (crypto11 did not finalise the module it failed to initialise). It
// prints "hsm-first: ok" and returns 0 when all holds.
func hsmFirstChild() int {
	fail := func(format string, a ...any) int {
		fmt.Printf("hsm-first: "+format+"\n", a...)
		return 1
	}
	ctx := context.Background()
	token, mod := os.Getenv(childEnv), os.Getenv("TLSKEY_TEST_MODULE")
	pin, err := hsm.NewPIN([]byte(userPIN))
	if err != nil {
		return fail("%v", err)
	}
	defer pin.Wipe()
	tok, err := hsm.Open(ctx, hsm.Config{Module: mod, TokenLabel: token, PIN: pin, PoolSize: 1})
	if err != nil {
		return fail("hsm.Open: %v", err)
	}
	defer tok.Close()
	if err := tok.CreateMasterKey(ctx, 0); err != nil {
		return fail("CreateMasterKey: %v", err)
	}
	if _, err := tok.CreateWallet(ctx, "w"); err != nil {
		return fail("CreateWallet: %v", err)
	}
	_, err = Generate(ctx, Config{Module: mod, TokenLabel: token, PIN: pin, KeyLabel: "late"})
	if !errors.Is(err, ErrModuleInUse) {
		return fail("Generate after hsm.Open: err = %v, want ErrModuleInUse", err)
	}
	if err := nanoSign(ctx, tok); err != nil {
		return fail("the keystore after crypto11's failed start: %v", err)
	}
	fmt.Println("hsm-first: ok")
	return 0
}
