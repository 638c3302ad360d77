package hsm

import (
	"errors"

	"github.com/nanokms/nanokms/internal/keystore"
)

// The package's errors. Every error returned by this package either is one of
// these sentinels or wraps one (branch with errors.Is), wraps a PKCS#11 return
// code (compare with errors.Is(err, pkcs11.Error(pkcs11.CKR_…))), or reports
// invalid input (a *ConfigError). No error ever holds a PIN, a seed, a
// mnemonic or a key.
//
// The errors the signer branches on also match the key store contract's
// (package keystore), so that the signer decides without knowing this
// package: ErrWalletNotFound matches keystore.ErrWalletNotFound,
// ErrTokenUnavailable and ErrSessionLost keystore.ErrTokenUnavailable,
// ErrWrongPIN and ErrPINLocked keystore.ErrPINRefused (errors.Is), and a
// *ConfigError for a wallet label (Field "label") a *keystore.LabelError
// (errors.As).
var (
	// ErrNoCgo is returned by Open in a binary built with CGO_ENABLED=0:
	// PKCS#11 modules are C libraries and cannot be loaded without cgo.
	ErrNoCgo = errors.New("hsm: built without cgo: PKCS#11 tokens are unavailable (rebuild with CGO_ENABLED=1)")

	// ErrModule is returned by Open when the PKCS#11 module cannot be loaded
	// (no such file, not a PKCS#11 library).
	ErrModule = errors.New("hsm: cannot load PKCS#11 module")

	// ErrModuleInit is returned by Open when the module loaded but its
	// C_Initialize failed (a missing token store, a daemon not running,
	// initialisation parameters it wants): the error wraps the
	// *TokenError, whose Hint says where to look.
	ErrModuleInit = errors.New("hsm: the PKCS#11 module loaded, but could not initialise")

	// ErrTokenNotFound is returned by Open when no initialised token carries
	// the configured label (and serial, when one is given).
	ErrTokenNotFound = errors.New("hsm: token not found")

	// ErrTokenAmbiguous is returned by Open when more than one token matches
	// the configured label; set TokenSerial to pick one.
	ErrTokenAmbiguous = errors.New("hsm: more than one token matches")

	// ErrWrongPIN is returned when the token rejects the PIN
	// (CKR_PIN_INCORRECT). The login is never retried: each failed attempt
	// brings the token closer to locking itself. After it, the Token makes
	// no further login attempt for its lifetime.
	ErrWrongPIN = seam("hsm: wrong PIN (not retried)", keystore.ErrPINRefused)

	// ErrPINLocked is returned when the token reports that the user PIN is
	// locked (CKR_PIN_LOCKED) or expired; only the security officer can
	// reset it.
	ErrPINLocked = seam("hsm: user PIN is locked", keystore.ErrPINRefused)

	// ErrMasterKeyMissing is returned by every wallet operation and by the
	// backup ceremony steps when the token holds no master key.
	ErrMasterKeyMissing = errors.New("hsm: token has no master key")

	// ErrMasterKeyExists is returned by CreateMasterKey,
	// CreateMasterKeyForBackup, CreateTransportKey and ImportMasterKey when
	// the token already holds a master key.
	ErrMasterKeyExists = errors.New("hsm: token already has a master key")

	// ErrMasterKeyExportable is returned by wallet operations while the
	// master key is still extractable: a backup ceremony was started with
	// CreateMasterKeyForBackup and not closed with FinishMasterKeyBackup.
	// Nothing is sealed under, or unsealed with, a key that can leave the
	// token. It is also returned when the master key is not sensitive.
	ErrMasterKeyExportable = errors.New("hsm: master key is still extractable: finish the backup ceremony first")

	// ErrNotExportable is returned by WrapMasterKey when the master key is
	// not extractable (it was made by CreateMasterKey, or
	// FinishMasterKeyBackup has run): it can never leave the token again.
	ErrNotExportable = errors.New("hsm: master key is not extractable")

	// ErrWrongMasterKey is returned by RestoreWallet when the export was
	// sealed under a different master key (the check values differ), and by
	// ImportMasterKey when the unwrapped key does not match the check value
	// the primary token printed.
	ErrWrongMasterKey = errors.New("hsm: sealed under a different master key")

	// ErrTransportKey is returned by ImportMasterKey when the token has no
	// transport key or the package was wrapped for another one, and by
	// CreateTransportKey when one already exists.
	ErrTransportKey = errors.New("hsm: transport key missing, duplicated or not the one the package was wrapped for")

	// ErrWalletNotFound is returned when no wallet has the given label.
	ErrWalletNotFound = seam("hsm: wallet not found", keystore.ErrWalletNotFound)

	// ErrWalletExists is returned by CreateWallet, ImportWallet,
	// ImportMnemonic and RestoreWallet when a wallet with the label exists,
	// and by RestoreWallet when the same wallet (same id) is already stored
	// under another label.
	ErrWalletExists = errors.New("hsm: wallet already exists")

	// ErrSealBroken is returned when a sealed wallet fails to open: its
	// ciphertext, tag or MAC was altered, or its header (wallet id, format
	// version, scheme, kind) differs from what it was sealed with. Only
	// the standard return codes of a failed tag or MAC, and the one the
	// probe saw this token give for a tampered seal (SoftHSM 2.6:
	// CKR_GENERAL_ERROR for a GCM tag), are read as a broken seal; any
	// other code is reported as the fault it is.
	ErrSealBroken = errors.New("hsm: sealed wallet failed authentication")

	// ErrNoSealScheme is returned by CreateMasterKey and
	// CreateMasterKeyForBackup when the token can run no seal scheme
	// (neither AES-256-GCM nor AES-256-CBC-PAD with HMAC-SHA-256).
	ErrNoSealScheme = errors.New("hsm: the token offers no seal scheme nanokms can use")

	// ErrSchemeUnsupported is returned when a seal scheme is asked for,
	// or a token's master keys are of a scheme, that the token cannot run
	// (the probe says why), and by WrapMasterKey when the backup token
	// does not offer the primary's scheme.
	ErrSchemeUnsupported = errors.New("hsm: seal scheme not available on this token")

	// ErrSchemeMismatch is returned when a wallet is sealed with another
	// scheme than the token's master keys are for.
	ErrSchemeMismatch = errors.New("hsm: the wallet is sealed with another scheme than the token's master keys")

	// ErrNoCheckValue is returned by WrapMasterKey and ImportMasterKey
	// when the master key check value, which the backup ceremony compares
	// between the tokens, cannot be computed on this token (aes-256-gcm on
	// a token that makes its own GCM IVs). MasterKeyAttributes,
	// ExportWallet, RestoreWallet and the wallet directory go on without
	// a check value instead.
	ErrNoCheckValue = errors.New("hsm: the master key check value cannot be computed on this token")

	// ErrNoDataObjects is returned when the token refuses the wallet's data
	// object (NSS softokn keeps no CKO_DATA token objects): configure a
	// wallet directory (Config.WalletDir).
	ErrNoDataObjects = errors.New("hsm: the token keeps no data objects: wallets need a wallet directory")

	// ErrNoWrapMethod is returned by WrapMasterKey when the primary and the
	// backup token share no wrapping method.
	ErrNoWrapMethod = errors.New("hsm: the tokens share no key wrapping method")

	// ErrBadBlob is returned when a sealed blob, a wallet export or a
	// master-key package is malformed or of an unknown format version.
	ErrBadBlob = errors.New("hsm: malformed or unknown sealed data")

	// ErrBadMnemonic is returned by ImportMnemonic when the phrase is not a
	// valid BIP39 English mnemonic (word count, unknown word, checksum).
	ErrBadMnemonic = errors.New("hsm: invalid BIP39 mnemonic")

	// ErrIndexRange is returned for an account index a wallet cannot derive:
	// BIP39 wallets use hardened SLIP-0010 indexes, so index < 2^31.
	ErrIndexRange = errors.New("hsm: account index out of range for this wallet kind")

	// ErrAccountMismatch is returned by SignFor when the wallet's key at
	// the index is not the expected account's: the wallet under the label
	// was replaced. No signature is made.
	ErrAccountMismatch = errors.New("hsm: the wallet's key is not the expected account's")

	// ErrDuplicateObject is returned when an exact lookup finds more than
	// one object (two master keys, two wallets under one label): the token
	// was changed behind nanokms's back and needs an operator.
	ErrDuplicateObject = errors.New("hsm: more than one object matches")

	// ErrSessionLost is returned when an operation failed twice because its
	// session was lost (handle invalid or closed, device removed, token not
	// present, user not logged in): once on a pooled session and once more
	// on a freshly opened one.
	ErrSessionLost = seam("hsm: token session lost", keystore.ErrTokenUnavailable)

	// ErrTokenUnavailable is returned by every method of a Token while
	// its token is unavailable: it went away (removed, its connection or
	// its store lost, its objects no longer visible) and the Token is
	// reconnecting, or the token refused the PIN while the Token
	// reconnected (then the error also wraps ErrWrongPIN or
	// ErrPINLocked, and nothing more is tried: see Token.Status). It
	// wraps the cause. Nothing was done on the token; the same call may
	// succeed once Token.Available reports the token back.
	ErrTokenUnavailable = seam("hsm: the token is unavailable", keystore.ErrTokenUnavailable)

	// ErrClosed is returned by every method of a Token after Close has
	// started, including to callers that were waiting for a session.
	ErrClosed = errors.New("hsm: token closed")
)

// ConfigError reports an invalid argument: a Config field, a wallet label, a
// PIN source. Field names the input; Reason never contains secret material.
type ConfigError struct {
	Field  string
	Reason string
}

// Error implements error.
func (e *ConfigError) Error() string { return "hsm: " + e.Field + ": " + e.Reason }

// As implements errors.As for the key store contract: a ConfigError for a
// wallet label (Field "label") is a *keystore.LabelError.
func (e *ConfigError) As(target any) bool {
	if t, ok := target.(**keystore.LabelError); ok && e.Field == "label" {
		*t = &keystore.LabelError{Reason: e.Reason}
		return true
	}
	return false
}

// seamError is a sentinel of this package that also matches a sentinel
// of the key store contract (errors.Is).
type seamError struct {
	msg  string
	also error
}

// seam returns a sentinel with text msg that also matches also.
func seam(msg string, also error) error { return &seamError{msg: msg, also: also} }

// Error implements error.
func (e *seamError) Error() string { return e.msg }

// Is reports whether target is the contract's sentinel e matches.
func (e *seamError) Is(target error) bool { return target == e.also }
