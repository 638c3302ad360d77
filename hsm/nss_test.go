//go:build cgo

package hsm

import (
	"context"
	"errors"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/softhsm-test/tokentest"
)

// NSS softokn, loaded directly with its parameters (one database per
// process): the seal works although NSS under-reports the size of a
// single-part AES-GCM output, which defeats pkcs11.Ctx.Encrypt's two-call
// sizing (CKR_BUFFER_TOO_SMALL); nanokms's own data calls size the buffer
// for the tag. The test shows both. (A process initialises NSS once, with
// one database: the binary's tests share it, sharedNSS.)
func TestNSSInProcess(t *testing.T) {
	nss := sharedNSS(t)
	ctx := context.Background()
	cfg := nssConfig(t)
	tok, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { tok.Close() })
	if s := tok.Capabilities().Scheme(); s != SchemeAESGCM {
		t.Fatalf("scheme %s", s)
	}
	m, err := loadModule(nss.Module, nss.ModuleParams)
	if err != nil {
		t.Fatal(err)
	}
	// pkcs11.Ctx's Encrypt, sized by NSS's answer alone, fails.
	err = tok.do(ctx, func(s *session) error {
		key, err := (&prober{p: s.p, sh: s.sh}).aesKey()
		if err != nil {
			return err
		}
		defer s.p.DestroyObject(s.sh, key)
		iv := make([]byte, gcmIVLen)
		for _, enc := range []struct {
			name string
			f    func(pkcs11.SessionHandle, []byte) ([]byte, error)
		}{{"pkcs11.Ctx", m.Ctx.Encrypt}, {"module", m.Encrypt}} {
			mech, params := gcmMechanism(iv, nil)
			if err := s.p.EncryptInit(s.sh, mech, key); err != nil {
				params.Free()
				return err
			}
			ct, err := enc.f(s.sh, make([]byte, 32))
			params.Free()
			switch enc.name {
			case "pkcs11.Ctx":
				if !isCode(err, pkcs11.CKR_BUFFER_TOO_SMALL) {
					t.Errorf("pkcs11.Ctx.Encrypt on NSS = %d bytes, %v; want CKR_BUFFER_TOO_SMALL (if NSS fixed its size query, this test can say so)", len(ct), err)
				}
			default:
				if err != nil || len(ct) != 32+gcmTagLen {
					t.Errorf("module.Encrypt = %d bytes, %v", len(ct), err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustMasterKey(t, tok, 0)
	seed := nano.Seed{9}
	w := uniqueWallet("w")
	if _, err := tok.ImportWallet(ctx, w, &seed); err != nil {
		t.Fatal(err)
	}
	pub, err := tok.PublicKey(ctx, w, 2)
	k := nano.DeriveKey(&seed, 2)
	if err != nil || pub != k.PublicKey() {
		t.Fatalf("PublicKey = %v", err)
	}
	// The same library with other parameters is refused, not reused.
	var ce *ConfigError
	if _, err := loadModule(nss.Module, tokentest.NSSParams(t.TempDir())); !errors.As(err, &ce) {
		t.Fatalf("loadModule with other parameters = %v", err)
	}
}
