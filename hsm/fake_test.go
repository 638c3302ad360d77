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

	GetInfoFunc           func() (pkcs11.Info, error)
	GetSlotListFunc       func(bool) ([]uint, error)
	GetSlotInfoFunc       func(uint) (pkcs11.SlotInfo, error)
	GetTokenInfoFunc      func(uint) (pkcs11.TokenInfo, error)
	GetMechanismListFunc  func(uint) ([]*pkcs11.Mechanism, error)
	GetMechanismInfoFunc  func(uint, []*pkcs11.Mechanism) (pkcs11.MechanismInfo, error)
	OpenSessionFunc       func(uint, uint) (pkcs11.SessionHandle, error)
	CloseSessionFunc      func(pkcs11.SessionHandle) error
	GetSessionInfoFunc    func(pkcs11.SessionHandle) (pkcs11.SessionInfo, error)
	LoginFunc             func(pkcs11.SessionHandle, uint, string) error
	SetPINFunc            func(pkcs11.SessionHandle, string, string) error
	FindObjectsInitFunc   func(pkcs11.SessionHandle, []*pkcs11.Attribute) error
	FindObjectsFunc       func(pkcs11.SessionHandle, int) ([]pkcs11.ObjectHandle, bool, error)
	FindObjectsFinalFunc  func(pkcs11.SessionHandle) error
	GetAttributeValueFunc func(pkcs11.SessionHandle, pkcs11.ObjectHandle, []*pkcs11.Attribute) ([]*pkcs11.Attribute, error)
	SetAttributeValueFunc func(pkcs11.SessionHandle, pkcs11.ObjectHandle, []*pkcs11.Attribute) error
	CreateObjectFunc      func(pkcs11.SessionHandle, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	CopyObjectFunc        func(pkcs11.SessionHandle, pkcs11.ObjectHandle, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	DestroyObjectFunc     func(pkcs11.SessionHandle, pkcs11.ObjectHandle) error
	GenerateKeyFunc       func(pkcs11.SessionHandle, []*pkcs11.Mechanism, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	GenerateKeyPairFunc   func(pkcs11.SessionHandle, []*pkcs11.Mechanism, []*pkcs11.Attribute, []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error)
	GenerateRandomFunc    func(pkcs11.SessionHandle, int) ([]byte, error)
	EncryptInitFunc       func(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle) error
	EncryptFunc           func(pkcs11.SessionHandle, []byte) ([]byte, error)
	EncryptUpdateFunc     func(pkcs11.SessionHandle, []byte) ([]byte, error)
	EncryptFinalFunc      func(pkcs11.SessionHandle) ([]byte, error)
	DecryptInitFunc       func(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle) error
	DecryptIntoFunc       func(pkcs11.SessionHandle, []byte, []byte) ([]byte, error)
	DecryptUpdateIntoFunc func(pkcs11.SessionHandle, []byte, []byte) ([]byte, error)
	DecryptFinalIntoFunc  func(pkcs11.SessionHandle, []byte) ([]byte, error)
	SignInitFunc          func(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle) error
	SignFunc              func(pkcs11.SessionHandle, []byte) ([]byte, error)
	VerifyInitFunc        func(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle) error
	VerifyFunc            func(pkcs11.SessionHandle, []byte, []byte) error
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

func (f *fakeP11) GetInfo() (pkcs11.Info, error) {
	f.count("GetInfo")
	if f.GetInfoFunc != nil {
		return f.GetInfoFunc()
	}
	return f.real.GetInfo()
}

func (f *fakeP11) GetSlotList(tokenPresent bool) ([]uint, error) {
	f.count("GetSlotList")
	if f.GetSlotListFunc != nil {
		return f.GetSlotListFunc(tokenPresent)
	}
	return f.real.GetSlotList(tokenPresent)
}

func (f *fakeP11) GetSlotInfo(slotID uint) (pkcs11.SlotInfo, error) {
	f.count("GetSlotInfo")
	if f.GetSlotInfoFunc != nil {
		return f.GetSlotInfoFunc(slotID)
	}
	return f.real.GetSlotInfo(slotID)
}

func (f *fakeP11) GetTokenInfo(slotID uint) (pkcs11.TokenInfo, error) {
	f.count("GetTokenInfo")
	if f.GetTokenInfoFunc != nil {
		return f.GetTokenInfoFunc(slotID)
	}
	return f.real.GetTokenInfo(slotID)
}

func (f *fakeP11) GetMechanismList(slotID uint) ([]*pkcs11.Mechanism, error) {
	f.count("GetMechanismList")
	if f.GetMechanismListFunc != nil {
		return f.GetMechanismListFunc(slotID)
	}
	return f.real.GetMechanismList(slotID)
}

func (f *fakeP11) GetMechanismInfo(slotID uint, m []*pkcs11.Mechanism) (pkcs11.MechanismInfo, error) {
	f.count("GetMechanismInfo")
	if f.GetMechanismInfoFunc != nil {
		return f.GetMechanismInfoFunc(slotID, m)
	}
	return f.real.GetMechanismInfo(slotID, m)
}

func (f *fakeP11) OpenSession(slotID uint, flags uint) (pkcs11.SessionHandle, error) {
	f.count("OpenSession")
	if f.OpenSessionFunc != nil {
		return f.OpenSessionFunc(slotID, flags)
	}
	return f.real.OpenSession(slotID, flags)
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

func (f *fakeP11) SetPIN(sh pkcs11.SessionHandle, oldPIN, newPIN string) error {
	f.count("SetPIN")
	if f.SetPINFunc != nil {
		return f.SetPINFunc(sh, oldPIN, newPIN)
	}
	return f.real.SetPIN(sh, oldPIN, newPIN)
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

func (f *fakeP11) CopyObject(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	f.count("CopyObject")
	if f.CopyObjectFunc != nil {
		return f.CopyObjectFunc(sh, o, temp)
	}
	return f.real.CopyObject(sh, o, temp)
}

func (f *fakeP11) DestroyObject(sh pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error {
	f.count("DestroyObject")
	if f.DestroyObjectFunc != nil {
		return f.DestroyObjectFunc(sh, oh)
	}
	return f.real.DestroyObject(sh, oh)
}

func (f *fakeP11) GenerateKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	f.count("GenerateKey")
	if f.GenerateKeyFunc != nil {
		return f.GenerateKeyFunc(sh, m, temp)
	}
	return f.real.GenerateKey(sh, m, temp)
}

func (f *fakeP11) GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, public, private []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error) {
	f.count("GenerateKeyPair")
	if f.GenerateKeyPairFunc != nil {
		return f.GenerateKeyPairFunc(sh, m, public, private)
	}
	return f.real.GenerateKeyPair(sh, m, public, private)
}

func (f *fakeP11) GenerateRandom(sh pkcs11.SessionHandle, length int) ([]byte, error) {
	f.count("GenerateRandom")
	if f.GenerateRandomFunc != nil {
		return f.GenerateRandomFunc(sh, length)
	}
	return f.real.GenerateRandom(sh, length)
}

func (f *fakeP11) EncryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	f.count("EncryptInit")
	if f.EncryptInitFunc != nil {
		return f.EncryptInitFunc(sh, m, o)
	}
	return f.real.EncryptInit(sh, m, o)
}

func (f *fakeP11) Encrypt(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	f.count("Encrypt")
	if f.EncryptFunc != nil {
		return f.EncryptFunc(sh, message)
	}
	return f.real.Encrypt(sh, message)
}

func (f *fakeP11) EncryptUpdate(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	f.count("EncryptUpdate")
	if f.EncryptUpdateFunc != nil {
		return f.EncryptUpdateFunc(sh, message)
	}
	return f.real.EncryptUpdate(sh, message)
}

func (f *fakeP11) EncryptFinal(sh pkcs11.SessionHandle) ([]byte, error) {
	f.count("EncryptFinal")
	if f.EncryptFinalFunc != nil {
		return f.EncryptFinalFunc(sh)
	}
	return f.real.EncryptFinal(sh)
}

func (f *fakeP11) DecryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	f.count("DecryptInit")
	if f.DecryptInitFunc != nil {
		return f.DecryptInitFunc(sh, m, o)
	}
	return f.real.DecryptInit(sh, m, o)
}

func (f *fakeP11) DecryptInto(sh pkcs11.SessionHandle, cipher, dst []byte) ([]byte, error) {
	f.count("DecryptInto")
	if f.DecryptIntoFunc != nil {
		return f.DecryptIntoFunc(sh, cipher, dst)
	}
	return f.real.DecryptInto(sh, cipher, dst)
}

func (f *fakeP11) DecryptUpdateInto(sh pkcs11.SessionHandle, cipher, dst []byte) ([]byte, error) {
	f.count("DecryptUpdateInto")
	if f.DecryptUpdateIntoFunc != nil {
		return f.DecryptUpdateIntoFunc(sh, cipher, dst)
	}
	return f.real.DecryptUpdateInto(sh, cipher, dst)
}

func (f *fakeP11) DecryptFinalInto(sh pkcs11.SessionHandle, dst []byte) ([]byte, error) {
	f.count("DecryptFinalInto")
	if f.DecryptFinalIntoFunc != nil {
		return f.DecryptFinalIntoFunc(sh, dst)
	}
	return f.real.DecryptFinalInto(sh, dst)
}

func (f *fakeP11) SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	f.count("SignInit")
	if f.SignInitFunc != nil {
		return f.SignInitFunc(sh, m, o)
	}
	return f.real.SignInit(sh, m, o)
}

func (f *fakeP11) Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	f.count("Sign")
	if f.SignFunc != nil {
		return f.SignFunc(sh, message)
	}
	return f.real.Sign(sh, message)
}

func (f *fakeP11) VerifyInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	f.count("VerifyInit")
	if f.VerifyInitFunc != nil {
		return f.VerifyInitFunc(sh, m, o)
	}
	return f.real.VerifyInit(sh, m, o)
}

func (f *fakeP11) Verify(sh pkcs11.SessionHandle, data, signature []byte) error {
	f.count("Verify")
	if f.VerifyFunc != nil {
		return f.VerifyFunc(sh, data, signature)
	}
	return f.real.Verify(sh, data, signature)
}

func (f *fakeP11) WrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, wrappingkey, key pkcs11.ObjectHandle) ([]byte, error) {
	f.count("WrapKey")
	if f.WrapKeyFunc != nil {
		return f.WrapKeyFunc(sh, m, wrappingkey, key)
	}
	return f.real.WrapKey(sh, m, wrappingkey, key)
}

func (f *fakeP11) UnwrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, unwrappingkey pkcs11.ObjectHandle, wrappedkey []byte, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	f.count("UnwrapKey")
	if f.UnwrapKeyFunc != nil {
		return f.UnwrapKeyFunc(sh, m, unwrappingkey, wrappedkey, a)
	}
	return f.real.UnwrapKey(sh, m, unwrappingkey, wrappedkey, a)
}
