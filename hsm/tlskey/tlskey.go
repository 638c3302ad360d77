package tlskey

import (
	"errors"
	"strconv"
	"time"

	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/internal/conffile"
)

// The package's errors. Besides these, Open and Generate return package
// hsm's sentinels where they mean the same thing (hsm.ErrModule,
// hsm.ErrTokenNotFound, hsm.ErrWrongPIN, hsm.ErrPINLocked, hsm.ErrNoCgo),
// a *hsm.ConfigError for invalid input, or an error wrapping the PKCS#11
// return code (errors.Is(err, pkcs11.Error(pkcs11.CKR_…))). No error holds
// a PIN.
var (
	// ErrModuleInUse is returned by Open and Generate when something else
	// in the process (package hsm, a test helper) initialised the PKCS#11
	// module before crypto11 could: crypto11 refuses a module it did not
	// initialise. Open TLS keys first (see the package doc).
	ErrModuleInUse = errors.New("tlskey: the PKCS#11 module was initialised by another part of this process before the TLS key was opened")

	// ErrKeyNotFound is returned by Open when no ECDSA key pair (private
	// and public half) on the token has the label.
	ErrKeyNotFound = errors.New("tlskey: no TLS key pair with this label")

	// ErrDuplicateKey is returned by Open when more than one key pair has
	// the label: the token was changed by another program.
	ErrDuplicateKey = errors.New("tlskey: more than one key pair has this label")

	// ErrLabelExists is returned by Generate when a private key, a secret
	// key or a certificate on the token already has the label. Nothing is
	// created.
	ErrLabelExists = errors.New("tlskey: the label is already in use on the token")

	// ErrKeyType is returned by Open when the key pair with the label is
	// not ECDSA on P-256 or P-384, and by Sign for a digest that does not
	// fit the key (wrong length, no hash, or a hash TLS does not use with
	// the curve).
	ErrKeyType = errors.New("tlskey: not an ECDSA P-256 or P-384 key, or a digest it does not sign")

	// ErrNotProtected is returned by Generate when the token made a key
	// that is not sensitive, is extractable, or has other uses than
	// signing, whatever the template said. The key pair is destroyed.
	ErrNotProtected = errors.New("tlskey: the token did not apply the key template's protections")

	// ErrSessionLost is returned by Sign when the token no longer knows the
	// session or the key (the token was removed, or reset): crypto11 does
	// not reopen sessions, so the process must restart.
	ErrSessionLost = errors.New("tlskey: token session lost")

	// ErrClosed is returned by Sign and Info after Close.
	ErrClosed = errors.New("tlskey: key closed")
)

// DefaultSessions is Config.Sessions when zero: how many signatures (TLS
// handshakes) a token's key can make at once.
const DefaultSessions = 2

// MaxSessions bounds Config.Sessions.
const MaxSessions = 16

// SessionWait is how long a signature waits for a free session before it
// fails (and with it the handshake).
const SessionWait = 10 * time.Second

// MaxLabelLen is the longest key label accepted, in bytes.
const MaxLabelLen = conffile.MaxKeyLabelLen

// Config says which token and which key pair.
type Config struct {
	// Module is the path of the PKCS#11 library. Required.
	Module string
	// TokenLabel selects the token by its label (1 to 32 bytes).
	// crypto11 takes the first token with the label: give every token a
	// label of its own. Required.
	TokenLabel string
	// PIN is the user PIN (hsm.ReadPIN). Required by the first Open or
	// Generate of a token in the process; neither keeps it, so the caller
	// may Wipe it once they return.
	PIN *hsm.PIN
	// KeyLabel is the key pair's CKA_LABEL: 1 to MaxLabelLen bytes of
	// printable UTF-8. Required.
	KeyLabel string
	// Sessions bounds the token's concurrent signatures; 0 means
	// DefaultSessions. Only the first Open or Generate of a token in the
	// process sets it.
	Sessions int
}

func (c *Config) validate() error {
	if c.Module == "" {
		return &hsm.ConfigError{Field: "Module", Reason: "required: the path of the PKCS#11 library"}
	}
	if c.TokenLabel == "" {
		return &hsm.ConfigError{Field: "TokenLabel", Reason: "required"}
	}
	if len(c.TokenLabel) > 32 {
		return &hsm.ConfigError{Field: "TokenLabel", Reason: "longer than the 32 bytes a token label holds"}
	}
	if err := CheckLabel(c.KeyLabel); err != nil {
		return err
	}
	if c.PIN == nil || c.PIN.Len() == 0 {
		return &hsm.ConfigError{Field: "PIN", Reason: "required"}
	}
	if c.Sessions < 0 || c.Sessions > MaxSessions {
		return &hsm.ConfigError{Field: "Sessions", Reason: "must be between 0 (default " + strconv.Itoa(DefaultSessions) + ") and " + strconv.Itoa(MaxSessions)}
	}
	return nil
}

// CheckLabel returns a *hsm.ConfigError (Field "KeyLabel") unless label is
// a valid key label: 1 to MaxLabelLen bytes of printable UTF-8 without
// leading or trailing space (conffile.CheckKeyLabel, the rule the
// configuration files apply).
func CheckLabel(label string) error {
	if msg := conffile.CheckKeyLabel(label); msg != "" {
		return &hsm.ConfigError{Field: "KeyLabel", Reason: msg}
	}
	return nil
}

// Info describes a key pair as the token reports it. It holds nothing
// secret.
type Info struct {
	Label string
	ID    []byte // CKA_ID, from the token's RNG when Generate made the key
	Curve string // "P-256" or "P-384"
	// The private key's protective attributes, read back from the token.
	Sensitive, AlwaysSensitive    bool
	Extractable, NeverExtractable bool
	Local                         bool // generated on the token
	Private, Modifiable           bool
	// Its uses: nanokms keys can only sign.
	Sign, Decrypt, Unwrap, Derive bool
}
