//go:build cgo

package hsm

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/miekg/pkcs11"
)

// p11 holds only the PKCS#11 calls this package makes. *pkcs11.Ctx
// implements it; the tests wrap it in a fake whose fields replace single
// calls, to make one branch fail at a time.
type p11 interface {
	GetSlotList(tokenPresent bool) ([]uint, error)
	GetTokenInfo(slotID uint) (pkcs11.TokenInfo, error)
	OpenSession(slotID uint, flags uint) (pkcs11.SessionHandle, error)
	CloseSession(sh pkcs11.SessionHandle) error
	GetSessionInfo(sh pkcs11.SessionHandle) (pkcs11.SessionInfo, error)
	Login(sh pkcs11.SessionHandle, userType uint, pin string) error
	FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error
	FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error)
	FindObjectsFinal(sh pkcs11.SessionHandle) error
	GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error)
	SetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) error
	CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	DestroyObject(sh pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error
	GenerateKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, public, private []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error)
	GenerateRandom(sh pkcs11.SessionHandle, length int) ([]byte, error)
	EncryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Encrypt(sh pkcs11.SessionHandle, message []byte) ([]byte, error)
	DecryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Decrypt(sh pkcs11.SessionHandle, cipher []byte) ([]byte, error)
	WrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, wrappingkey, key pkcs11.ObjectHandle) ([]byte, error)
	UnwrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, unwrappingkey pkcs11.ObjectHandle, wrappedkey []byte, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
}

var _ p11 = (*pkcs11.Ctx)(nil)

// modules is the process-wide registry of loaded PKCS#11 modules: a module
// is loaded and C_Initialize'd once per path and never finalised (other
// Tokens of the process may be using it, and some modules, SoftHSM among
// them, read their configuration only at C_Initialize).
var modules struct {
	sync.Mutex
	byPath map[string]*pkcs11.Ctx
}

// loadModule returns the process's context for the module at path, loading
// and initialising it on first use. A failed load is not remembered, so a
// later call may succeed once the cause is fixed.
func loadModule(path string) (*pkcs11.Ctx, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrModule, path, err)
	}
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		abs = resolved
	}
	modules.Lock()
	defer modules.Unlock()
	if c, ok := modules.byPath[abs]; ok {
		return c, nil
	}
	c := pkcs11.New(abs)
	if c == nil {
		return nil, fmt.Errorf("%w %s: not found or not a PKCS#11 library", ErrModule, abs)
	}
	// CKR_CRYPTOKI_ALREADY_INITIALIZED: something else in the process (a
	// test helper, another library) initialised it first; that is fine.
	if err := c.Initialize(); err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		c.Destroy()
		return nil, fmt.Errorf("%w %s: C_Initialize: %w", ErrModule, abs, err)
	}
	if modules.byPath == nil {
		modules.byPath = make(map[string]*pkcs11.Ctx)
	}
	modules.byPath[abs] = c
	return c, nil
}

// isCode reports whether err is (or wraps) the PKCS#11 return value code.
func isCode(err error, code uint) bool {
	return errors.Is(err, pkcs11.Error(code))
}

// sessionLostCodes are the return values after which a session is useless:
// it is closed and the operation tried once more on a new session.
var sessionLostCodes = [...]uint{
	pkcs11.CKR_SESSION_HANDLE_INVALID,
	pkcs11.CKR_SESSION_CLOSED,
	pkcs11.CKR_DEVICE_REMOVED,
	pkcs11.CKR_TOKEN_NOT_PRESENT,
	pkcs11.CKR_USER_NOT_LOGGED_IN,
}

func isSessionLost(err error) bool {
	if err == nil {
		return false
	}
	for _, c := range sessionLostCodes {
		if isCode(err, c) {
			return true
		}
	}
	return false
}

// attribute helpers

func attrBool(a []*pkcs11.Attribute, typ uint) bool {
	for _, x := range a {
		if x.Type == typ {
			return len(x.Value) == 1 && x.Value[0] != 0
		}
	}
	return false
}

func attrBytes(a []*pkcs11.Attribute, typ uint) []byte {
	for _, x := range a {
		if x.Type == typ {
			return x.Value
		}
	}
	return nil
}
