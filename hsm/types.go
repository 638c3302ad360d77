package hsm

import (
	"context"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nanokms/nanokms/internal/keystore"
	"github.com/nanokms/nanokms/internal/p11uri"
	"github.com/nanokms/nanokms/nano"
)

// KeyStore is the contract a signer needs from a key store: the public key
// of an account and a signature by it. *Token implements it.
//
// PublicKey and Sign return an error wrapping ErrWalletNotFound when no
// wallet has the label, ErrIndexRange for an index the wallet cannot
// derive, ErrSealBroken when the wallet's seal fails authentication,
// ErrMasterKeyMissing or ErrMasterKeyExportable when the token's master key
// is absent or unfinished, ErrSessionLost when the token stopped answering,
// ErrClosed after Close, or the context's error while waiting for the
// token. SignFor also returns ErrAccountMismatch when the key is not the
// expected account's. Any other error is a fault of the token or its module. Close is
// idempotent.
type KeyStore interface {
	PublicKey(ctx context.Context, wallet string, index uint32) (nano.PublicKey, error)
	Sign(ctx context.Context, wallet string, index uint32, hash nano.Hash) (nano.Signature, error)
	SignFor(ctx context.Context, wallet string, index uint32, account nano.PublicKey, hash nano.Hash) (nano.Signature, error)
	Close() error
}

// DefaultPoolSize is the number of sessions a Token opens when
// Config.PoolSize is zero.
const DefaultPoolSize = 4

// MaxPoolSize bounds Config.PoolSize.
const MaxPoolSize = 64

// MasterKeyLabel is the CKA_LABEL of the AES-256 master key, whatever the
// seal scheme (the "-v1" is historical).
const MasterKeyLabel = "nanokms-master-v1"

// MACKeyLabel is the CKA_LABEL of the HMAC-SHA-256 key of the seal scheme
// aes-256-cbc-pad+hmac-sha-256. A token with this key beside its master
// key uses that scheme; one without it uses aes-256-gcm.
const MACKeyLabel = "nanokms-master-mac-v1"

// TransportKeyLabel is the CKA_LABEL of the RSA key pair a backup token
// generates to receive the master key (see CreateTransportKey).
const TransportKeyLabel = "nanokms-transport-v1"

// Application is the CKA_APPLICATION of every wallet data object.
const Application = "nanokms"

// MaxLabelLen is the longest wallet label accepted, in bytes (the key
// store contract's, keystore.MaxLabelLen).
const MaxLabelLen = keystore.MaxLabelLen

// MaxModuleParamsLen bounds Config.ModuleParams.
const MaxModuleParamsLen = 4096

// Config says which token to open and how.
type Config struct {
	// Module is the path of the PKCS#11 library, for example
	// /usr/lib/softhsm/libsofthsm2.so. Required.
	Module string
	// ModuleParams is the string the module wants in its initialisation
	// arguments (CK_C_INITIALIZE_ARGS.pReserved), for modules that need
	// one: NSS softokn wants
	// "configdir='sql:DIR' certPrefix='' keyPrefix='' secmod='secmod.db' flags=".
	// Empty for most modules. A process initialises each module once, with
	// one set of parameters.
	ModuleParams string
	// TokenLabel selects the token by its label. At least one of
	// TokenLabel, TokenSerial and a URI naming the token is required;
	// all that are set must match.
	TokenLabel string
	// TokenSerial selects the token by its serial number.
	TokenSerial string
	// URI selects the token by a PKCS#11 URI (RFC 7512): every token,
	// slot and library attribute of its path must match. Its object
	// attributes and its query are not used here.
	URI *p11uri.URI
	// WalletDir, when set, is the absolute path of a directory that keeps
	// the sealed wallets as files beside the token, for tokens that keep
	// no data objects (NSS softokn). Empty: wallets are private data
	// objects on the token.
	WalletDir string
	// PIN is the user PIN (see ReadPIN). Required. Open copies it into its
	// own locked memory: the caller may Wipe its PIN once Open returns.
	PIN *PIN
	// PoolSize is the number of PKCS#11 sessions, hence of concurrent token
	// operations; 0 means DefaultPoolSize.
	PoolSize int
	// RecoverMin and RecoverMax bound the capped exponential backoff
	// between attempts to reconnect to a token that went away; 0 means
	// DefaultRecoverMin and DefaultRecoverMax.
	RecoverMin, RecoverMax time.Duration
	// NoModuleReload keeps recovery from loading a fresh instance of the
	// module when the one in use no longer sees the token (see Token's
	// recovery in the package doc): such a token then needs the process
	// restarted.
	NoModuleReload bool
}

func (c *Config) validate() error {
	if c.Module == "" {
		return &ConfigError{Field: "Module", Reason: "required: the path of the PKCS#11 library"}
	}
	if c.TokenLabel == "" && c.TokenSerial == "" && (c.URI == nil || !c.URI.HasTokenAttrs()) {
		return &ConfigError{Field: "TokenLabel", Reason: "required (or TokenSerial, or a URI naming the token)"}
	}
	if len(c.ModuleParams) > MaxModuleParamsLen {
		return &ConfigError{Field: "ModuleParams", Reason: "longer than " + strconv.Itoa(MaxModuleParamsLen) + " bytes"}
	}
	if strings.IndexByte(c.ModuleParams, 0) >= 0 {
		return &ConfigError{Field: "ModuleParams", Reason: "contains a NUL byte"}
	}
	if c.WalletDir != "" && !filepath.IsAbs(c.WalletDir) {
		return &ConfigError{Field: "WalletDir", Reason: "must be an absolute path"}
	}
	if len(c.TokenLabel) > 32 {
		return &ConfigError{Field: "TokenLabel", Reason: "longer than the 32 bytes a token label holds"}
	}
	if len(c.TokenSerial) > 16 {
		return &ConfigError{Field: "TokenSerial", Reason: "longer than the 16 bytes a token serial holds"}
	}
	if c.PIN == nil || c.PIN.Len() == 0 {
		return &ConfigError{Field: "PIN", Reason: "required"}
	}
	if c.RecoverMin < 0 {
		return &ConfigError{Field: "RecoverMin", Reason: "negative"}
	}
	if c.RecoverMax < 0 {
		return &ConfigError{Field: "RecoverMax", Reason: "negative"}
	}
	if c.RecoverMin > 0 && c.RecoverMax > 0 && c.RecoverMax < c.RecoverMin {
		return &ConfigError{Field: "RecoverMax", Reason: "below RecoverMin"}
	}
	if c.PoolSize < 0 || c.PoolSize > MaxPoolSize {
		return &ConfigError{Field: "PoolSize", Reason: "must be between 0 (default " + strconv.Itoa(DefaultPoolSize) + ") and " + strconv.Itoa(MaxPoolSize)}
	}
	return nil
}

// WalletKind says what secret a wallet seals and how its accounts derive.
type WalletKind uint8

const (
	// KindSeed is a 32-byte Nano seed; account i's private key is
	// BLAKE2b-256(seed ‖ uint32-BE(i)), for every uint32 i.
	KindSeed WalletKind = 1
	// KindBIP39 is the 64-byte BIP39 seed of a mnemonic and passphrase;
	// account i's private key is the SLIP-0010 ed25519 key at
	// m/44'/165'/i', for i < 2^31 (Nault, Ledger, nanocurrency-web).
	KindBIP39 WalletKind = 2
)

// String returns "seed" or "bip39".
func (k WalletKind) String() string {
	switch k {
	case KindSeed:
		return "seed"
	case KindBIP39:
		return "bip39"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// secretLen is the length of the sealed secret, or 0 for an unknown kind.
func (k WalletKind) secretLen() int {
	switch k {
	case KindSeed:
		return 32
	case KindBIP39:
		return 64
	}
	return 0
}

func parseKind(s string) (WalletKind, bool) {
	switch s {
	case "seed":
		return KindSeed, true
	case "bip39":
		return KindBIP39, true
	}
	return 0, false
}

// WalletID identifies a wallet across tokens and labels: 16 bytes from the
// token's RNG, drawn when the wallet is created or imported and bound into
// the seal as associated data.
type WalletID [16]byte

// String returns the id as 32 lowercase hex digits.
func (id WalletID) String() string { return hex.EncodeToString(id[:]) }

// WalletInfo describes a stored wallet. It holds nothing secret.
type WalletInfo struct {
	Label   string
	ID      WalletID
	Kind    WalletKind
	Scheme  SealScheme // the scheme the wallet is sealed with
	Version uint8      // the sealed blob's format version (1: made before seal schemes)
}

// MasterKeyInfo is what the token reports about its master key (and, for
// aes-256-cbc-pad+hmac-sha-256, its HMAC key: the flags are then those of
// both keys together).
type MasterKeyInfo struct {
	Scheme           SealScheme
	MACLabel         string // the HMAC key's label, for aes-256-cbc-pad+hmac-sha-256
	Label            string
	ID               []byte // CKA_ID, random
	Sensitive        bool   // CKA_SENSITIVE
	AlwaysSensitive  bool   // CKA_ALWAYS_SENSITIVE
	Extractable      bool   // CKA_EXTRACTABLE
	NeverExtractable bool   // CKA_NEVER_EXTRACTABLE: false on a key that took part in a backup ceremony
	Modifiable       bool   // CKA_MODIFIABLE
	Local            bool   // CKA_LOCAL: generated on this token (false on a backup token)
	// Check is the key check value: 16 hex digits computed by the token
	// from the key(s) (see the scheme's definition in checkValue). Two
	// tokens hold the same master keys exactly when their check values
	// agree; operators compare it during the backup ceremony. It reveals
	// nothing about the keys. It is empty when the token cannot compute
	// it (aes-256-gcm on a token that makes its own GCM IVs), and
	// NoCheckReason says why.
	Check string
	// NoCheckReason, when Check is empty, says why the token cannot
	// compute it. Such a master key is told apart from others by the
	// authentication of the sealed wallets: a wallet opens only under the
	// key it was sealed with (see RestoreWallet).
	NoCheckReason string
}

// CheckLabel returns a *ConfigError (Field "label") if label is not a
// valid wallet label: 1 to MaxLabelLen bytes of UTF-8 with no control
// characters (keystore.CheckLabel's rule; the error also matches
// *keystore.LabelError under errors.As). Every method taking a label
// applies this rule; callers use it to refuse a label before it reaches
// the token.
func CheckLabel(label string) error { return validLabel(label) }

// validLabel checks a wallet label by keystore.CheckLabel's rule.
func validLabel(label string) error {
	// keystore.CheckLabel's only error is a *keystore.LabelError.
	if le := (*keystore.LabelError)(nil); errors.As(keystore.CheckLabel(label), &le) {
		return &ConfigError{Field: "label", Reason: le.Reason}
	}
	return nil
}
