//go:build cgo

package tlskey

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/hsm"
)

// tokenKey names a token in the registry: the module's resolved path and
// the token's label.
type tokenKey struct{ module, label string }

// registry holds the process's crypto11 Context for each token. A Context
// is never closed (see the package doc: its Close could C_Finalize a
// module package hsm uses), so once a token's Context exists it serves
// every later Open and Generate of that token.
var registry struct {
	sync.Mutex
	byToken map[tokenKey]*crypto11.Context
}

// genMu serialises, within the process, Generate's check that a label is
// free and the creation under it.
var genMu sync.Mutex

// Key is an ECDSA private key on a token, usable as a crypto.Signer (for
// tls.Certificate.PrivateKey). It is safe for concurrent use.
type Key struct {
	c11    *crypto11.Context
	s      crypto11.Signer
	label  string
	token  string
	pub    *ecdsa.PublicKey
	hash   crypto.Hash // the hash TLS 1.3 uses with the key's curve
	closed atomic.Bool
}

var _ crypto.Signer = (*Key)(nil)

// Open finds the key pair labelled cfg.KeyLabel on the token, logging in
// first when this process has no crypto11 Context on the token yet. See
// the package doc for the order in which a process must open TLS keys and
// package hsm tokens. ctx is checked before the token is touched; a
// PKCS#11 call in progress cannot be interrupted.
func Open(ctx context.Context, cfg Config) (*Key, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c11, err := tokenContext(cfg)
	if err != nil {
		return nil, err
	}
	return find(c11, cfg)
}

func find(c11 *crypto11.Context, cfg Config) (*Key, error) {
	signers, err := c11.FindKeyPairs(nil, []byte(cfg.KeyLabel))
	if err != nil {
		return nil, tokenErr(cfg.TokenLabel, "finding the key pair", err)
	}
	switch len(signers) {
	case 0:
		return nil, fmt.Errorf("%w: %q on token %q", ErrKeyNotFound, cfg.KeyLabel, cfg.TokenLabel)
	case 1:
	default:
		return nil, fmt.Errorf("%w: %d key pairs labelled %q on token %q", ErrDuplicateKey, len(signers), cfg.KeyLabel, cfg.TokenLabel)
	}
	pub, ok := signers[0].Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: the key pair %q on token %q is %T", ErrKeyType, cfg.KeyLabel, cfg.TokenLabel, signers[0].Public())
	}
	var h crypto.Hash
	switch pub.Curve {
	case elliptic.P256():
		h = crypto.SHA256
	case elliptic.P384():
		h = crypto.SHA384
	default:
		return nil, fmt.Errorf("%w: the key pair %q on token %q is on %s", ErrKeyType, cfg.KeyLabel, cfg.TokenLabel, pub.Curve.Params().Name)
	}
	return &Key{c11: c11, s: signers[0], label: cfg.KeyLabel, token: cfg.TokenLabel, pub: pub, hash: h}, nil
}

// Generate creates an ECDSA P-256 key pair labelled cfg.KeyLabel on the
// token (privateTemplate and publicTemplate) and returns it opened. It
// refuses, with ErrLabelExists, a label that a private key, a secret key
// or a certificate on the token carries. It reads the private key's
// attributes back and, should the token have ignored the template (a key
// that is not sensitive, or extractable), destroys the pair and returns
// ErrNotProtected.
func Generate(ctx context.Context, cfg Config) (*Key, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c11, err := tokenContext(cfg)
	if err != nil {
		return nil, err
	}
	genMu.Lock()
	defer genMu.Unlock()
	label := []byte(cfg.KeyLabel)
	privs, err := c11.FindPrivateKeys(nil, label)
	if err != nil {
		return nil, tokenErr(cfg.TokenLabel, "looking for private keys with the label", err)
	}
	secrets, err := c11.FindKeys(nil, label)
	if err != nil {
		return nil, tokenErr(cfg.TokenLabel, "looking for secret keys with the label", err)
	}
	cert, err := c11.FindCertificate(nil, label, nil)
	if err != nil {
		return nil, tokenErr(cfg.TokenLabel, "looking for certificates with the label", err)
	}
	if len(privs) > 0 || len(secrets) > 0 || cert != nil {
		return nil, fmt.Errorf("%w: %q on token %q", ErrLabelExists, cfg.KeyLabel, cfg.TokenLabel)
	}
	rng, err := c11.NewRandomReader()
	if err != nil {
		return nil, tokenErr(cfg.TokenLabel, "C_GenerateRandom", err)
	}
	id := make([]byte, keyIDLen)
	if _, err := io.ReadFull(rng, id); err != nil {
		return nil, tokenErr(cfg.TokenLabel, "C_GenerateRandom", err)
	}
	pubT, privT := crypto11.NewAttributeSet(), crypto11.NewAttributeSet()
	pubT.AddIfNotPresent(publicTemplate(id, label))
	privT.AddIfNotPresent(privateTemplate(id, label))
	s, err := c11.GenerateECDSAKeyPairWithAttributes(pubT, privT, elliptic.P256())
	if err != nil {
		return nil, tokenErr(cfg.TokenLabel, "C_GenerateKeyPair", err)
	}
	k, err := find(c11, cfg)
	if err != nil {
		_ = s.Delete()
		return nil, err
	}
	info, err := k.Info(ctx)
	if err != nil {
		_ = s.Delete()
		return nil, err
	}
	if !info.Sensitive || info.Extractable || !info.Sign || info.Decrypt || info.Unwrap || info.Derive {
		_ = s.Delete()
		return nil, fmt.Errorf("%w: token %q (sensitive %v, extractable %v, sign %v, decrypt %v, unwrap %v, derive %v)",
			ErrNotProtected, cfg.TokenLabel, info.Sensitive, info.Extractable, info.Sign, info.Decrypt, info.Unwrap, info.Derive)
	}
	return k, nil
}

// keyIDLen is the length of a key pair's random CKA_ID.
const keyIDLen = 16

// p256OID is the DER of the named curve P-256 (secp256r1,
// 1.2.840.10045.3.1.7), the value of CKA_EC_PARAMS.
var p256OID = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}

// privateTemplate is the private half's template of C_GenerateKeyPair.
// CKA_COPYABLE (PKCS#11 v2.40) is left out: tokens that predate it refuse
// the whole template, and a copy made with C_CopyObject keeps
// CKA_SENSITIVE and CKA_EXTRACTABLE as they are (the standard lets neither
// be relaxed).
func privateTemplate(id, label []byte) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		// An elliptic-curve private key.
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
		// A token object: it persists after the session and the process.
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		// Private: invisible and unusable until C_Login as the user.
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		// Sensitive: C_GetAttributeValue never returns CKA_VALUE.
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		// Not extractable: C_WrapKey refuses it, so it never leaves the
		// token, not even encrypted.
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		// Its one use: ECDSA signatures (the TLS CertificateVerify, and
		// the CSR or self-signed certificate made with it).
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		// Never a signature with message recovery, a decryption, an
		// unwrapping key or a base key for ECDH derivation.
		pkcs11.NewAttribute(pkcs11.CKA_SIGN_RECOVER, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		// Attributes frozen at creation: nobody can widen its uses later.
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
		// Found by its label; the id, from the token's RNG, pairs it with
		// its public half.
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
}

// publicTemplate is the public half's template of C_GenerateKeyPair.
func publicTemplate(id, label []byte) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		// An elliptic-curve public key on P-256.
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, p256OID),
		// A token object, so that the key pair can be found again and its
		// public key read without the private half.
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		// Readable after login only, like the private half.
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		// It may verify (a public operation); it never encrypts, wraps or
		// derives.
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
		// The same label and id as the private half.
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
}

// tokenContext returns the process's crypto11 Context on the token cfg
// names, configuring (loading the module, logging in) on first use.
func tokenContext(cfg Config) (*crypto11.Context, error) {
	module, err := resolveModule(cfg.Module)
	if err != nil {
		return nil, err
	}
	key := tokenKey{module: module, label: cfg.TokenLabel}
	registry.Lock()
	defer registry.Unlock()
	if c, ok := registry.byToken[key]; ok {
		return c, nil
	}
	sessions := cfg.Sessions
	if sessions == 0 {
		sessions = DefaultSessions
	}
	c11cfg := &crypto11.Config{
		Path:       module,
		TokenLabel: cfg.TokenLabel,
		// One long-lived session (login, handles) plus the signing pool.
		MaxSessions:     sessions + 1,
		UserType:        crypto11.DefaultUserType, // CKU_USER
		PoolWaitTimeout: SessionWait,
	}
	var c11 *crypto11.Context
	err = cfg.PIN.Use(func(pin []byte) error {
		// The string aliases the PIN's locked memory: no copy on the Go
		// heap. crypto11 keeps its Config, so the field is cleared as soon
		// as Configure (the only reader) returns.
		c11cfg.Pin = unsafe.String(unsafe.SliceData(pin), len(pin))
		var err error
		c11, err = crypto11.Configure(c11cfg)
		c11cfg.Pin = ""
		return err
	})
	if err != nil {
		return nil, configureErr(module, cfg.TokenLabel, err)
	}
	if registry.byToken == nil {
		registry.byToken = make(map[tokenKey]*crypto11.Context)
	}
	registry.byToken[key] = c11
	return c11, nil
}

// resolveModule makes path absolute with symlinks resolved, as package
// hsm does, and checks that it loads as a PKCS#11 library (pkcs11.New
// dlopens it and calls C_GetFunctionList, never C_Initialize), so that a
// later crypto11 error that is not a PKCS#11 return code can only mean
// that no token has the label.
func resolveModule(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("%w %s: %w", hsm.ErrModule, path, err)
	}
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		abs = resolved
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("%w %s: %w", hsm.ErrModule, abs, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%w %s: not a regular file", hsm.ErrModule, abs)
	}
	c := pkcs11.New(abs)
	if c == nil {
		return "", fmt.Errorf("%w %s: not found or not a PKCS#11 library", hsm.ErrModule, abs)
	}
	c.Destroy() // only drops this dlopen reference
	return abs, nil
}

// configureErr turns a crypto11.Configure failure into the package's
// errors.
func configureErr(module, token string, err error) error {
	var code pkcs11.Error
	if !errors.As(err, &code) {
		// The module loads (resolveModule) and the Config is valid, so
		// crypto11 found no token with the label.
		return fmt.Errorf("%w: label %q (crypto11: %w)", hsm.ErrTokenNotFound, token, err)
	}
	switch code {
	case pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED:
		return fmt.Errorf("%w (%s): %w", ErrModuleInUse, module, err)
	case pkcs11.CKR_PIN_INCORRECT:
		return fmt.Errorf("%w: token %q", hsm.ErrWrongPIN, token)
	case pkcs11.CKR_PIN_LOCKED, pkcs11.CKR_PIN_EXPIRED:
		return fmt.Errorf("%w: token %q: %w", hsm.ErrPINLocked, token, err)
	}
	return fmt.Errorf("tlskey: token %q: crypto11: %w", token, err)
}

// sessionLostCodes are the return values after which crypto11's sessions
// or handles are useless (it never reopens them).
var sessionLostCodes = [...]pkcs11.Error{
	pkcs11.CKR_SESSION_HANDLE_INVALID,
	pkcs11.CKR_SESSION_CLOSED,
	pkcs11.CKR_DEVICE_REMOVED,
	pkcs11.CKR_TOKEN_NOT_PRESENT,
	pkcs11.CKR_USER_NOT_LOGGED_IN,
	pkcs11.CKR_OBJECT_HANDLE_INVALID,
	pkcs11.CKR_KEY_HANDLE_INVALID,
}

// tokenErr wraps a failed token operation, as ErrSessionLost when the
// session or handle is gone.
func tokenErr(token, what string, err error) error {
	for _, c := range sessionLostCodes {
		if errors.Is(err, c) {
			return fmt.Errorf("%w: token %q: %s: %w", ErrSessionLost, token, what, err)
		}
	}
	return fmt.Errorf("tlskey: token %q: %s: %w", token, what, err)
}

// Public returns the key's public half (*ecdsa.PublicKey).
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Label returns the key pair's label.
func (k *Key) Label() string { return k.label }

// Sign signs digest with CKM_ECDSA on the token and returns the ASN.1 DER
// signature, as crypto/ecdsa does. opts must name the hash TLS 1.3 uses
// with the key's curve (SHA-256 for P-256, SHA-384 for P-384) and digest
// must be that long: anything else is ErrKeyType, and nothing reaches the
// token. rand is not used: the token draws the nonce. Sign blocks while
// every signing session is busy, for at most SessionWait.
func (k *Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if k.closed.Load() {
		return nil, ErrClosed
	}
	if opts == nil || opts.HashFunc() != k.hash || len(digest) != k.hash.Size() {
		return nil, fmt.Errorf("%w: want a %v digest", ErrKeyType, k.hash)
	}
	sig, err := k.s.Sign(nil, digest, opts)
	if err != nil {
		return nil, tokenErr(k.token, "C_Sign", err)
	}
	return sig, nil
}

// Info reads the private key's attributes back from the token.
func (k *Key) Info(ctx context.Context) (Info, error) {
	if k.closed.Load() {
		return Info{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	types := []crypto11.AttributeType{
		crypto11.CkaId, crypto11.CkaSensitive, crypto11.CkaAlwaysSensitive,
		crypto11.CkaExtractable, crypto11.CkaNeverExtractable, crypto11.CkaLocal,
		crypto11.CkaPrivate, crypto11.CkaModifiable,
		crypto11.CkaSign, crypto11.CkaDecrypt, crypto11.CkaUnwrap, crypto11.CkaDerive,
	}
	a, err := k.c11.GetAttributes(k.s, types)
	if err != nil {
		return Info{}, tokenErr(k.token, "C_GetAttributeValue", err)
	}
	b := func(t crypto11.AttributeType) bool {
		v := a[t]
		return v != nil && len(v.Value) == 1 && v.Value[0] != 0
	}
	info := Info{
		Label: k.label, Curve: k.pub.Curve.Params().Name,
		Sensitive: b(crypto11.CkaSensitive), AlwaysSensitive: b(crypto11.CkaAlwaysSensitive),
		Extractable: b(crypto11.CkaExtractable), NeverExtractable: b(crypto11.CkaNeverExtractable),
		Local: b(crypto11.CkaLocal), Private: b(crypto11.CkaPrivate), Modifiable: b(crypto11.CkaModifiable),
		Sign: b(crypto11.CkaSign), Decrypt: b(crypto11.CkaDecrypt), Unwrap: b(crypto11.CkaUnwrap), Derive: b(crypto11.CkaDerive),
	}
	if v := a[crypto11.CkaId]; v != nil {
		info.ID = append([]byte(nil), v.Value...)
	}
	return info, nil
}

// Destroy deletes the key pair from the token and closes the Key. It is
// for undoing a Generate whose certificate request could not be written
// (`nanokms token tls-key` leaves nothing behind when it fails); nothing
// else in nanokms deletes a TLS key.
func (k *Key) Destroy() error {
	if k.closed.Swap(true) {
		return ErrClosed
	}
	if err := k.s.Delete(); err != nil {
		return tokenErr(k.token, "C_DestroyObject", err)
	}
	return nil
}

// Close stops the Key: Sign and Info return ErrClosed afterwards. It does
// not close the token's crypto11 Context, which stays for the life of the
// process (see the package doc). It is idempotent and returns nil.
func (k *Key) Close() error {
	k.closed.Store(true)
	return nil
}
