//go:build cgo

package hsm

import (
	"crypto/rand"
	"reflect"
	"sync"
	"testing"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// A token that makes its own AES-GCM IVs, over the real SoftHSM: no token
// that runs here does it, so this double changes only that behaviour of
// C_EncryptInit, in the fake, and SoftHSM does all the cryptography.
//
// As the token does, the double writes its IV into the mechanism's
// parameters: miekg/pkcs11 copies the GCMParams' IV into the
// CK_GCM_PARAMS that the module sees (and that GCMParams.IV reads back
// after the operation), so the double replaces the GCMParams' IV before
// the real C_EncryptInit copies it. The caller's own IV buffer is left
// as it was, as a token leaves it. C_DecryptInit is the real one: these
// tokens take the caller's IV to decrypt.

// tokenIVMode is how the token treats the IV the caller gives.
type tokenIVMode int

const (
	// ivReplaced is AWS CloudHSM's: "the HSM ignores the initialization
	// vector (IV) in the request and uses an IV that it generates. The
	// HSM writes the generated IV to the memory reference pointed to by
	// the pIV element of the CK_GCM_PARAMS".
	ivReplaced tokenIVMode = iota
	// ivFilled refuses an IV from the caller (CKR_MECHANISM_PARAM_INVALID)
	// and fills a zeroed IV buffer with its own (Thales Luna in FIPS mode,
	// where the IV comes back in the parameters).
	ivFilled
)

func (m tokenIVMode) String() string {
	if m == ivReplaced {
		return "replaces the caller's IV"
	}
	return "refuses a caller IV, fills a zeroed one"
}

// tokenIVs records the IVs the double made.
type tokenIVs struct {
	mu   sync.Mutex
	made [][]byte
}

func (v *tokenIVs) last() []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.made) == 0 {
		return nil
	}
	return v.made[len(v.made)-1]
}

func (v *tokenIVs) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.made)
}

// tokenMakesGCMIVs makes f's C_EncryptInit with CKM_AES_GCM behave as on
// a token that makes its own IVs, in mode. Call it before the Token
// opens, so that its probe meets the token as it is.
func tokenMakesGCMIVs(t testing.TB, f *fakeP11, mode tokenIVMode) *tokenIVs {
	t.Helper()
	// The double reaches into miekg/pkcs11's GCMParams: check first that
	// it finds what it expects there, so a new version of the library
	// fails this test loudly instead of silently testing nothing.
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	probe, _ := gcmMechanism(want, nil)
	gp := gcmParamsOf(probe[0])
	if gp == nil || !reflect.DeepEqual(gcmParamsIV(gp), want) {
		t.Fatal("the token-made IV double cannot find the IV in miekg/pkcs11's GCMParams: update it for this version of the library")
	}
	ivs := &tokenIVs{}
	f.Set(func(f *fakeP11) {
		f.EncryptInitFunc = func(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
			if len(m) != 1 || m[0].Mechanism != pkcs11.CKM_AES_GCM {
				return f.real.EncryptInit(sh, m, o)
			}
			gp := gcmParamsOf(m[0])
			if gp == nil {
				return pkcs11.Error(pkcs11.CKR_MECHANISM_PARAM_INVALID)
			}
			if mode == ivFilled && !isZero(gcmParamsIV(gp)) {
				return pkcs11.Error(pkcs11.CKR_MECHANISM_PARAM_INVALID)
			}
			iv := make([]byte, gcmIVLen)
			if _, err := rand.Read(iv); err != nil {
				return pkcs11.Error(pkcs11.CKR_DEVICE_ERROR)
			}
			setGCMParamsIV(gp, iv)
			ivs.mu.Lock()
			ivs.made = append(ivs.made, iv)
			ivs.mu.Unlock()
			return f.real.EncryptInit(sh, m, o)
		}
	})
	return ivs
}

// gcmParamsOf returns the GCMParams of a CKM_AES_GCM mechanism (the
// unexported field miekg/pkcs11 keeps them in), or nil.
func gcmParamsOf(m *pkcs11.Mechanism) *pkcs11.GCMParams {
	g := reflect.ValueOf(m).Elem().FieldByName("generator")
	if !g.IsValid() || g.Kind() != reflect.Interface || g.IsNil() {
		return nil
	}
	p := g.Elem()
	if p.Type() != reflect.TypeOf((*pkcs11.GCMParams)(nil)) {
		return nil
	}
	return (*pkcs11.GCMParams)(unsafe.Pointer(p.Pointer()))
}

// gcmIVField is the IV field of p, writable.
func gcmIVField(p *pkcs11.GCMParams) reflect.Value {
	f := reflect.ValueOf(p).Elem().FieldByName("iv")
	if !f.IsValid() || f.Type() != reflect.TypeOf([]byte(nil)) {
		return reflect.Value{}
	}
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
}

func gcmParamsIV(p *pkcs11.GCMParams) []byte {
	f := gcmIVField(p)
	if !f.IsValid() {
		return nil
	}
	return f.Bytes()
}

func setGCMParamsIV(p *pkcs11.GCMParams, iv []byte) {
	if f := gcmIVField(p); f.IsValid() {
		f.Set(reflect.ValueOf(iv))
	}
}
