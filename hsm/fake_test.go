//go:build cgo

package hsm

import (
	"sync"

	"github.com/miekg/pkcs11"
)

// fakeP11 is a p11 whose calls go to a real module (SoftHSM) unless the
// matching func field is set: a test sets one field to make one branch
// fail. It counts every call.
type fakeP11 struct {
	real p11

	GetSlotListFunc       func(bool) ([]uint, error)
	GetTokenInfoFunc      func(uint) (pkcs11.TokenInfo, error)
	OpenSessionFunc       func(uint, uint) (pkcs11.SessionHandle, error)
	CloseSessionFunc      func(pkcs11.SessionHandle) error
	GetSessionInfoFunc    func(pkcs11.SessionHandle) (pkcs11.SessionInfo, error)
	LoginFunc             func(pkcs11.SessionHandle, uint, string) error
	FindObjectsInitFunc   func(pkcs11.SessionHandle, []*pkcs11.Attribute) error
	FindObjectsFunc       func(pkcs11.SessionHandle, int) ([]pkcs11.ObjectHandle, bool, error)
	FindObjectsFinalFunc  func(pkcs11.SessionHandle) error
	GetAttributeValueFunc func(pkcs11.SessionHandle, pkcs11.ObjectHandle, []*pkcs11.Attribute) ([]*pkcs11.Attribute, error)
	SetAttributeValueFunc func(pkcs11.SessionHandle, pkcs11.ObjectHandle, []*pkcs11.Attribute) error
	CreateObjectFunc      func(pkcs11.SessionHandle, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	DestroyObjectFunc     func(pkcs11.SessionHandle, pkcs11.ObjectHandle) error
	GenerateKeyFunc       func(pkcs11.SessionHandle, []*pkcs11.Mechanism, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	GenerateKeyPairFunc   func(pkcs11.SessionHandle, []*pkcs11.Mechanism, []*pkcs11.Attribute, []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error)
	GenerateRandomFunc    func(pkcs11.SessionHandle, int) ([]byte, error)
	EncryptInitFunc       func(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle) error
	EncryptFunc           func(pkcs11.SessionHandle, []byte) ([]byte, error)
	DecryptInitFunc       func(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle) error
	DecryptFunc           func(pkcs11.SessionHandle, []byte) ([]byte, error)
	WrapKeyFunc           func(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle, pkcs11.ObjectHandle) ([]byte, error)
	UnwrapKeyFunc         func(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle, []byte, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)

	mu    sync.Mutex
	calls map[string]int
}

func newFake(real p11) *fakeP11 { return &fakeP11{real: real, calls: map[string]int{}} }

func (f *fakeP11) count(name string) {
	f.mu.Lock()
	f.calls[name]++
	f.mu.Unlock()
}

// Calls returns how often name was called.
func (f *fakeP11) Calls(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

func (f *fakeP11) GetSlotList(present bool) ([]uint, error) {
	f.count("GetSlotList")
	if f.GetSlotListFunc != nil {
		return f.GetSlotListFunc(present)
	}
	return f.real.GetSlotList(present)
}

func (f *fakeP11) GetTokenInfo(slot uint) (pkcs11.TokenInfo, error) {
	f.count("GetTokenInfo")
	if f.GetTokenInfoFunc != nil {
		return f.GetTokenInfoFunc(slot)
	}
	return f.real.GetTokenInfo(slot)
}

func (f *fakeP11) OpenSession(slot, flags uint) (pkcs11.SessionHandle, error) {
	f.count("OpenSession")
	if f.OpenSessionFunc != nil {
		return f.OpenSessionFunc(slot, flags)
	}
	return f.real.OpenSession(slot, flags)
}

func (f *fakeP11) CloseSession(sh pkcs11.SessionHandle) error {
	f.count("CloseSession")
	if f.CloseSessionFunc != nil {
		return f.CloseSessionFunc(sh)
	}
	return f.real.CloseSession(sh)
}

func (f *fakeP11) GetSessionInfo(sh pkcs11.SessionHandle) (pkcs11.SessionInfo, error) {
	f.count("GetSessionInfo")
	if f.GetSessionInfoFunc != nil {
		return f.GetSessionInfoFunc(sh)
	}
	return f.real.GetSessionInfo(sh)
}

func (f *fakeP11) Login(sh pkcs11.SessionHandle, userType uint, pin string) error {
	f.count("Login")
	if f.LoginFunc != nil {
		return f.LoginFunc(sh, userType, pin)
	}
	return f.real.Login(sh, userType, pin)
}

func (f *fakeP11) FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error {
	f.count("FindObjectsInit")
	if f.FindObjectsInitFunc != nil {
		return f.FindObjectsInitFunc(sh, temp)
	}
	return f.real.FindObjectsInit(sh, temp)
}

func (f *fakeP11) FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
	f.count("FindObjects")
	if f.FindObjectsFunc != nil {
		return f.FindObjectsFunc(sh, max)
	}
	return f.real.FindObjects(sh, max)
}

func (f *fakeP11) FindObjectsFinal(sh pkcs11.SessionHandle) error {
	f.count("FindObjectsFinal")
	if f.FindObjectsFinalFunc != nil {
		return f.FindObjectsFinalFunc(sh)
	}
	return f.real.FindObjectsFinal(sh)
}

func (f *fakeP11) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	f.count("GetAttributeValue")
	if f.GetAttributeValueFunc != nil {
		return f.GetAttributeValueFunc(sh, o, a)
	}
	return f.real.GetAttributeValue(sh, o, a)
}

func (f *fakeP11) SetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) error {
	f.count("SetAttributeValue")
	if f.SetAttributeValueFunc != nil {
		return f.SetAttributeValueFunc(sh, o, a)
	}
	return f.real.SetAttributeValue(sh, o, a)
}

func (f *fakeP11) CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	f.count("CreateObject")
	if f.CreateObjectFunc != nil {
		return f.CreateObjectFunc(sh, temp)
	}
	return f.real.CreateObject(sh, temp)
}

func (f *fakeP11) DestroyObject(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle) error {
	f.count("DestroyObject")
	if f.DestroyObjectFunc != nil {
		return f.DestroyObjectFunc(sh, o)
	}
	return f.real.DestroyObject(sh, o)
}

func (f *fakeP11) GenerateKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	f.count("GenerateKey")
	if f.GenerateKeyFunc != nil {
		return f.GenerateKeyFunc(sh, m, temp)
	}
	return f.real.GenerateKey(sh, m, temp)
}

func (f *fakeP11) GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, pub, priv []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error) {
	f.count("GenerateKeyPair")
	if f.GenerateKeyPairFunc != nil {
		return f.GenerateKeyPairFunc(sh, m, pub, priv)
	}
	return f.real.GenerateKeyPair(sh, m, pub, priv)
}

func (f *fakeP11) GenerateRandom(sh pkcs11.SessionHandle, n int) ([]byte, error) {
	f.count("GenerateRandom")
	if f.GenerateRandomFunc != nil {
		return f.GenerateRandomFunc(sh, n)
	}
	return f.real.GenerateRandom(sh, n)
}

func (f *fakeP11) EncryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	f.count("EncryptInit")
	if f.EncryptInitFunc != nil {
		return f.EncryptInitFunc(sh, m, o)
	}
	return f.real.EncryptInit(sh, m, o)
}

func (f *fakeP11) Encrypt(sh pkcs11.SessionHandle, msg []byte) ([]byte, error) {
	f.count("Encrypt")
	if f.EncryptFunc != nil {
		return f.EncryptFunc(sh, msg)
	}
	return f.real.Encrypt(sh, msg)
}

func (f *fakeP11) DecryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	f.count("DecryptInit")
	if f.DecryptInitFunc != nil {
		return f.DecryptInitFunc(sh, m, o)
	}
	return f.real.DecryptInit(sh, m, o)
}

func (f *fakeP11) Decrypt(sh pkcs11.SessionHandle, ct []byte) ([]byte, error) {
	f.count("Decrypt")
	if f.DecryptFunc != nil {
		return f.DecryptFunc(sh, ct)
	}
	return f.real.Decrypt(sh, ct)
}

func (f *fakeP11) WrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, wrapping, key pkcs11.ObjectHandle) ([]byte, error) {
	f.count("WrapKey")
	if f.WrapKeyFunc != nil {
		return f.WrapKeyFunc(sh, m, wrapping, key)
	}
	return f.real.WrapKey(sh, m, wrapping, key)
}

func (f *fakeP11) UnwrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, unwrapping pkcs11.ObjectHandle, wrapped []byte, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	f.count("UnwrapKey")
	if f.UnwrapKeyFunc != nil {
		return f.UnwrapKeyFunc(sh, m, unwrapping, wrapped, a)
	}
	return f.real.UnwrapKey(sh, m, unwrapping, wrapped, a)
}
