//go:build cgo

package hsm

/*
#include <stdlib.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// p11 holds only the PKCS#11 calls this package makes. *module implements
// it; the tests wrap it in a fake whose fields replace single calls, to
// make one branch fail at a time. The data calls (Encrypt…, Decrypt…) size
// their buffers themselves (fnlist_cgo.go); DecryptInto and its multi-part
// siblings write the plaintext into dst (its length is the capacity) and
// return the filled part of it.
type p11 interface {
	GetInfo() (pkcs11.Info, error)
	GetSlotList(tokenPresent bool) ([]uint, error)
	GetSlotInfo(slotID uint) (pkcs11.SlotInfo, error)
	GetTokenInfo(slotID uint) (pkcs11.TokenInfo, error)
	GetMechanismList(slotID uint) ([]*pkcs11.Mechanism, error)
	GetMechanismInfo(slotID uint, m []*pkcs11.Mechanism) (pkcs11.MechanismInfo, error)
	OpenSession(slotID uint, flags uint) (pkcs11.SessionHandle, error)
	CloseSession(sh pkcs11.SessionHandle) error
	GetSessionInfo(sh pkcs11.SessionHandle) (pkcs11.SessionInfo, error)
	Login(sh pkcs11.SessionHandle, userType uint, pin string) error
	SetPIN(sh pkcs11.SessionHandle, oldPIN, newPIN string) error
	FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error
	FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error)
	FindObjectsFinal(sh pkcs11.SessionHandle) error
	GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error)
	SetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) error
	CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	CopyObject(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	DestroyObject(sh pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error
	GenerateKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, public, private []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error)
	GenerateRandom(sh pkcs11.SessionHandle, length int) ([]byte, error)
	EncryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Encrypt(sh pkcs11.SessionHandle, message []byte) ([]byte, error)
	EncryptUpdate(sh pkcs11.SessionHandle, message []byte) ([]byte, error)
	EncryptFinal(sh pkcs11.SessionHandle) ([]byte, error)
	DecryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	DecryptInto(sh pkcs11.SessionHandle, cipher, dst []byte) ([]byte, error)
	DecryptUpdateInto(sh pkcs11.SessionHandle, cipher, dst []byte) ([]byte, error)
	DecryptFinalInto(sh pkcs11.SessionHandle, dst []byte) ([]byte, error)
	SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error)
	VerifyInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Verify(sh pkcs11.SessionHandle, data, signature []byte) error
	WrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, wrappingkey, key pkcs11.ObjectHandle) ([]byte, error)
	UnwrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, unwrappingkey pkcs11.ObjectHandle, wrappedkey []byte, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
}

// module is a loaded, initialised PKCS#11 library: pkcs11.Ctx for most
// calls, the function list for the data calls.
type module struct {
	*pkcs11.Ctx
	fn     *fnList
	path   string // absolute, symlinks resolved
	params string // the C_Initialize parameters it was initialised with
	// image, for a fresh instance (reload_linux.go), is the in-memory
	// copy of the library it was loaded from, open for the process's life.
	image *os.File
}

var _ p11 = (*module)(nil)

func (m *module) Encrypt(sh pkcs11.SessionHandle, in []byte) ([]byte, error) {
	return m.fn.crypt(opEncrypt, sh, in, nil)
}

func (m *module) EncryptUpdate(sh pkcs11.SessionHandle, in []byte) ([]byte, error) {
	return m.fn.crypt(opEncryptUpdate, sh, in, nil)
}

func (m *module) EncryptFinal(sh pkcs11.SessionHandle) ([]byte, error) {
	return m.fn.final(opEncrypt, sh, nil)
}

func (m *module) DecryptInto(sh pkcs11.SessionHandle, in, dst []byte) ([]byte, error) {
	return m.fn.crypt(opDecrypt, sh, in, dst)
}

func (m *module) DecryptUpdateInto(sh pkcs11.SessionHandle, in, dst []byte) ([]byte, error) {
	return m.fn.crypt(opDecryptUpdate, sh, in, dst)
}

func (m *module) DecryptFinalInto(sh pkcs11.SessionHandle, dst []byte) ([]byte, error) {
	return m.fn.final(opDecrypt, sh, dst)
}

// modules is the process-wide registry of loaded PKCS#11 modules: a module
// is loaded and C_Initialize'd once per path and parameters and never
// finalised (other Tokens of the process may be using it, and some
// modules, SoftHSM among them, read their configuration only at
// C_Initialize).
var modules struct {
	sync.Mutex
	byKey  map[string]*module // path + "\x00" + params
	byPath map[string]string  // path → the parameters it was initialised with
}

// loadModule returns the process's context for the module at path with the
// initialisation parameters params, loading and initialising it on first
// use. params, when not empty, goes to C_Initialize as a NUL-terminated
// string in CK_C_INITIALIZE_ARGS.pReserved (what NSS softokn reads its
// configuration from; p11-kit calls it x-init-reserved); the string stays
// allocated for the life of the process, as the module may keep pointing
// at it. A library is one instance per process, so a path already
// initialised with other parameters is refused (a second C_Initialize
// would only answer CKR_CRYPTOKI_ALREADY_INITIALIZED and ignore them). A
// failed load is not remembered, so a later call may succeed once the
// cause is fixed.
//
// A library that cannot be loaded is ErrModule; one that loads but whose
// C_Initialize fails is ErrModuleInit, wrapping the *TokenError.
func loadModule(path, params string) (*module, error) {
	abs, err := modulePath(path)
	if err != nil {
		return nil, err
	}
	modules.Lock()
	defer modules.Unlock()
	key := abs + "\x00" + params
	if m, ok := modules.byKey[key]; ok {
		return m, nil
	}
	if prev, ok := modules.byPath[abs]; ok {
		return nil, &ConfigError{Field: "ModuleParams", Reason: fmt.Sprintf("module %s is already initialised in this process with other parameters (%d bytes); a process can use one set per module", abs, len(prev))}
	}
	m, err := initModule(abs, abs, params, true)
	if err != nil {
		return nil, err
	}
	register(m)
	return m, nil
}

// initModule loads the library file at load (the module abs, or a copy of
// it) and C_Initializes it with params. alreadyOK accepts
// CKR_CRYPTOKI_ALREADY_INITIALIZED: something else in the process (a test
// helper, crypto11) initialised the module first. A library whose
// C_Initialize failed is unloaded again: it was not initialised, so no
// one can be using it.
func initModule(load, abs, params string, alreadyOK bool) (*module, error) {
	c := pkcs11.New(load)
	if c == nil {
		return nil, fmt.Errorf("%w %s: not found or not a PKCS#11 library", ErrModule, abs)
	}
	fn, err := loadFnList(load)
	if err != nil {
		c.Destroy()
		return nil, fmt.Errorf("%w %s: %w", ErrModule, abs, err)
	}
	var opts []pkcs11.InitializeOption
	if params != "" {
		// Never freed: see loadModule.
		opts = append(opts, pkcs11.InitializeWithReserved(unsafe.Pointer(C.CString(params))))
	}
	if err := c.Initialize(opts...); err != nil && (!alreadyOK || !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		if !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			c.Destroy()
		} // else it is in use: leave it loaded
		return nil, fmt.Errorf("%w: %s: %w", ErrModuleInit, abs, traceErr("C_Initialize", err))
	}
	return &module{Ctx: c, fn: fn, path: abs, params: params}, nil
}

// register makes m the process's instance of its module and parameters,
// for every later loadModule; modules is locked.
func register(m *module) {
	if modules.byKey == nil {
		modules.byKey = make(map[string]*module)
		modules.byPath = make(map[string]string)
	}
	modules.byKey[m.path+"\x00"+m.params] = m
	modules.byPath[m.path] = m.params
}

// modulePath returns path made absolute, with symbolic links resolved:
// how the registry (and crypto11's, see package hsm/tlskey) names a
// module.
func modulePath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("%w %s: %w", ErrModule, path, err)
	}
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		abs = resolved
	}
	return abs, nil
}

// rawCode is the module-level error value of a return code.
func rawCode(code uint) error { return pkcs11.Error(code) }

// traceErr names the PKCS#11 function of a return code: a pkcs11.Error
// becomes a *TokenError; nil, a *TokenError and any other error are
// returned as they are.
func traceErr(fn string, err error) error {
	if err == nil {
		return nil
	}
	var te *TokenError
	if errors.As(err, &te) {
		return err
	}
	var code pkcs11.Error
	if errors.As(err, &code) {
		return &TokenError{Func: fn, Code: uint(code)}
	}
	return err
}

// isCode reports whether err is (or wraps) the PKCS#11 return value code.
func isCode(err error, code uint) bool {
	return errors.Is(err, pkcs11.Error(code))
}

// codeOf returns the PKCS#11 return value err carries, or 0.
func codeOf(err error) uint {
	var code pkcs11.Error
	if errors.As(err, &code) {
		return uint(code)
	}
	return 0
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
