//go:build cgo

package hsm

import (
	"reflect"
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

// hook counts a call of name and returns the func field fn, read under
// the fake's lock: a test may change the fields (under Set or Reset)
// while the Token's recovery goroutine calls the fake.
func hook[T any](f *fakeP11, name string, fn *T) T {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[name]++
	return *fn
}

// totalCalls returns how many calls the fake has seen.
func (f *fakeP11) totalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

// Set runs set (which assigns func fields) under the fake's lock.
func (f *fakeP11) Set(set func(*fakeP11)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	set(f)
}

// Reset clears every func field: every call goes to the real module again.
func (f *fakeP11) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := reflect.ValueOf(f).Elem()
	for i := 0; i < v.NumField(); i++ {
		if fv := v.Field(i); fv.Kind() == reflect.Func {
			fv.Set(reflect.Zero(fv.Type()))
		}
	}
}

// Calls returns how often name was called.
func (f *fakeP11) Calls(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

func (f *fakeP11) GetInfo() (pkcs11.Info, error) {
	if fn := hook(f, "GetInfo", &f.GetInfoFunc); fn != nil {
		return fn()
	}
	return f.real.GetInfo()
}

func (f *fakeP11) GetSlotList(tokenPresent bool) ([]uint, error) {
	if fn := hook(f, "GetSlotList", &f.GetSlotListFunc); fn != nil {
		return fn(tokenPresent)
	}
	return f.real.GetSlotList(tokenPresent)
}

func (f *fakeP11) GetSlotInfo(slotID uint) (pkcs11.SlotInfo, error) {
	if fn := hook(f, "GetSlotInfo", &f.GetSlotInfoFunc); fn != nil {
		return fn(slotID)
	}
	return f.real.GetSlotInfo(slotID)
}

func (f *fakeP11) GetTokenInfo(slotID uint) (pkcs11.TokenInfo, error) {
	if fn := hook(f, "GetTokenInfo", &f.GetTokenInfoFunc); fn != nil {
		return fn(slotID)
	}
	return f.real.GetTokenInfo(slotID)
}

func (f *fakeP11) GetMechanismList(slotID uint) ([]*pkcs11.Mechanism, error) {
	if fn := hook(f, "GetMechanismList", &f.GetMechanismListFunc); fn != nil {
		return fn(slotID)
	}
	return f.real.GetMechanismList(slotID)
}

func (f *fakeP11) GetMechanismInfo(slotID uint, m []*pkcs11.Mechanism) (pkcs11.MechanismInfo, error) {
	if fn := hook(f, "GetMechanismInfo", &f.GetMechanismInfoFunc); fn != nil {
		return fn(slotID, m)
	}
	return f.real.GetMechanismInfo(slotID, m)
}

func (f *fakeP11) OpenSession(slotID uint, flags uint) (pkcs11.SessionHandle, error) {
	if fn := hook(f, "OpenSession", &f.OpenSessionFunc); fn != nil {
		return fn(slotID, flags)
	}
	return f.real.OpenSession(slotID, flags)
}

func (f *fakeP11) CloseSession(sh pkcs11.SessionHandle) error {
	if fn := hook(f, "CloseSession", &f.CloseSessionFunc); fn != nil {
		return fn(sh)
	}
	return f.real.CloseSession(sh)
}

func (f *fakeP11) GetSessionInfo(sh pkcs11.SessionHandle) (pkcs11.SessionInfo, error) {
	if fn := hook(f, "GetSessionInfo", &f.GetSessionInfoFunc); fn != nil {
		return fn(sh)
	}
	return f.real.GetSessionInfo(sh)
}

func (f *fakeP11) Login(sh pkcs11.SessionHandle, userType uint, pin string) error {
	if fn := hook(f, "Login", &f.LoginFunc); fn != nil {
		return fn(sh, userType, pin)
	}
	return f.real.Login(sh, userType, pin)
}

func (f *fakeP11) SetPIN(sh pkcs11.SessionHandle, oldPIN, newPIN string) error {
	if fn := hook(f, "SetPIN", &f.SetPINFunc); fn != nil {
		return fn(sh, oldPIN, newPIN)
	}
	return f.real.SetPIN(sh, oldPIN, newPIN)
}

func (f *fakeP11) FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error {
	if fn := hook(f, "FindObjectsInit", &f.FindObjectsInitFunc); fn != nil {
		return fn(sh, temp)
	}
	return f.real.FindObjectsInit(sh, temp)
}

func (f *fakeP11) FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
	if fn := hook(f, "FindObjects", &f.FindObjectsFunc); fn != nil {
		return fn(sh, max)
	}
	return f.real.FindObjects(sh, max)
}

func (f *fakeP11) FindObjectsFinal(sh pkcs11.SessionHandle) error {
	if fn := hook(f, "FindObjectsFinal", &f.FindObjectsFinalFunc); fn != nil {
		return fn(sh)
	}
	return f.real.FindObjectsFinal(sh)
}

func (f *fakeP11) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	if fn := hook(f, "GetAttributeValue", &f.GetAttributeValueFunc); fn != nil {
		return fn(sh, o, a)
	}
	return f.real.GetAttributeValue(sh, o, a)
}

func (f *fakeP11) SetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) error {
	if fn := hook(f, "SetAttributeValue", &f.SetAttributeValueFunc); fn != nil {
		return fn(sh, o, a)
	}
	return f.real.SetAttributeValue(sh, o, a)
}

func (f *fakeP11) CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	if fn := hook(f, "CreateObject", &f.CreateObjectFunc); fn != nil {
		return fn(sh, temp)
	}
	return f.real.CreateObject(sh, temp)
}

func (f *fakeP11) CopyObject(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	if fn := hook(f, "CopyObject", &f.CopyObjectFunc); fn != nil {
		return fn(sh, o, temp)
	}
	return f.real.CopyObject(sh, o, temp)
}

func (f *fakeP11) DestroyObject(sh pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error {
	if fn := hook(f, "DestroyObject", &f.DestroyObjectFunc); fn != nil {
		return fn(sh, oh)
	}
	return f.real.DestroyObject(sh, oh)
}

func (f *fakeP11) GenerateKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	if fn := hook(f, "GenerateKey", &f.GenerateKeyFunc); fn != nil {
		return fn(sh, m, temp)
	}
	return f.real.GenerateKey(sh, m, temp)
}

func (f *fakeP11) GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, public, private []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error) {
	if fn := hook(f, "GenerateKeyPair", &f.GenerateKeyPairFunc); fn != nil {
		return fn(sh, m, public, private)
	}
	return f.real.GenerateKeyPair(sh, m, public, private)
}

func (f *fakeP11) GenerateRandom(sh pkcs11.SessionHandle, length int) ([]byte, error) {
	if fn := hook(f, "GenerateRandom", &f.GenerateRandomFunc); fn != nil {
		return fn(sh, length)
	}
	return f.real.GenerateRandom(sh, length)
}

func (f *fakeP11) EncryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	if fn := hook(f, "EncryptInit", &f.EncryptInitFunc); fn != nil {
		return fn(sh, m, o)
	}
	return f.real.EncryptInit(sh, m, o)
}

func (f *fakeP11) Encrypt(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	if fn := hook(f, "Encrypt", &f.EncryptFunc); fn != nil {
		return fn(sh, message)
	}
	return f.real.Encrypt(sh, message)
}

func (f *fakeP11) EncryptUpdate(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	if fn := hook(f, "EncryptUpdate", &f.EncryptUpdateFunc); fn != nil {
		return fn(sh, message)
	}
	return f.real.EncryptUpdate(sh, message)
}

func (f *fakeP11) EncryptFinal(sh pkcs11.SessionHandle) ([]byte, error) {
	if fn := hook(f, "EncryptFinal", &f.EncryptFinalFunc); fn != nil {
		return fn(sh)
	}
	return f.real.EncryptFinal(sh)
}

func (f *fakeP11) DecryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	if fn := hook(f, "DecryptInit", &f.DecryptInitFunc); fn != nil {
		return fn(sh, m, o)
	}
	return f.real.DecryptInit(sh, m, o)
}

func (f *fakeP11) DecryptInto(sh pkcs11.SessionHandle, cipher, dst []byte) ([]byte, error) {
	if fn := hook(f, "DecryptInto", &f.DecryptIntoFunc); fn != nil {
		return fn(sh, cipher, dst)
	}
	return f.real.DecryptInto(sh, cipher, dst)
}

func (f *fakeP11) DecryptUpdateInto(sh pkcs11.SessionHandle, cipher, dst []byte) ([]byte, error) {
	if fn := hook(f, "DecryptUpdateInto", &f.DecryptUpdateIntoFunc); fn != nil {
		return fn(sh, cipher, dst)
	}
	return f.real.DecryptUpdateInto(sh, cipher, dst)
}

func (f *fakeP11) DecryptFinalInto(sh pkcs11.SessionHandle, dst []byte) ([]byte, error) {
	if fn := hook(f, "DecryptFinalInto", &f.DecryptFinalIntoFunc); fn != nil {
		return fn(sh, dst)
	}
	return f.real.DecryptFinalInto(sh, dst)
}

func (f *fakeP11) SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	if fn := hook(f, "SignInit", &f.SignInitFunc); fn != nil {
		return fn(sh, m, o)
	}
	return f.real.SignInit(sh, m, o)
}

func (f *fakeP11) Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	if fn := hook(f, "Sign", &f.SignFunc); fn != nil {
		return fn(sh, message)
	}
	return f.real.Sign(sh, message)
}

func (f *fakeP11) VerifyInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	if fn := hook(f, "VerifyInit", &f.VerifyInitFunc); fn != nil {
		return fn(sh, m, o)
	}
	return f.real.VerifyInit(sh, m, o)
}

func (f *fakeP11) Verify(sh pkcs11.SessionHandle, data, signature []byte) error {
	if fn := hook(f, "Verify", &f.VerifyFunc); fn != nil {
		return fn(sh, data, signature)
	}
	return f.real.Verify(sh, data, signature)
}

func (f *fakeP11) WrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, wrappingkey, key pkcs11.ObjectHandle) ([]byte, error) {
	if fn := hook(f, "WrapKey", &f.WrapKeyFunc); fn != nil {
		return fn(sh, m, wrappingkey, key)
	}
	return f.real.WrapKey(sh, m, wrappingkey, key)
}

func (f *fakeP11) UnwrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, unwrappingkey pkcs11.ObjectHandle, wrappedkey []byte, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	if fn := hook(f, "UnwrapKey", &f.UnwrapKeyFunc); fn != nil {
		return fn(sh, m, unwrappingkey, wrappedkey, a)
	}
	return f.real.UnwrapKey(sh, m, unwrappingkey, wrappedkey, a)
}
