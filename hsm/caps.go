package hsm

import (
	"fmt"
	"strings"
)

// SealScheme names how wallet secrets are sealed under a token's master
// key(s). A token's scheme is chosen when its master key is made (from
// what the token offers, or by the operator) and recorded in every sealed
// blob; it never changes for that key.
type SealScheme uint8

const (
	// SchemeAESGCM is AES-256-GCM under the master key, with a 96-bit IV
	// and a 128-bit tag; the blob header is the associated data.
	SchemeAESGCM SealScheme = 1
	// SchemeAESCBCHMAC is AES-256-CBC-PAD under the master key, then
	// HMAC-SHA-256 under a second key on the token over the blob header,
	// the IV and the ciphertext (encrypt-then-MAC); the MAC is checked on
	// the token (C_Verify) before anything is decrypted. For tokens
	// without AES-GCM.
	SchemeAESCBCHMAC SealScheme = 2
)

// Schemes lists the seal schemes in order of preference.
var Schemes = []SealScheme{SchemeAESGCM, SchemeAESCBCHMAC}

// String returns the scheme's name: "aes-256-gcm" or
// "aes-256-cbc-pad+hmac-sha-256".
func (s SealScheme) String() string {
	switch s {
	case SchemeAESGCM:
		return "aes-256-gcm"
	case SchemeAESCBCHMAC:
		return "aes-256-cbc-pad+hmac-sha-256"
	}
	return fmt.Sprintf("scheme(%d)", uint8(s))
}

// ParseSealScheme parses a scheme name as String returns it.
func ParseSealScheme(name string) (SealScheme, error) {
	for _, s := range Schemes {
		if name == s.String() {
			return s, nil
		}
	}
	names := make([]string, len(Schemes))
	for i, s := range Schemes {
		names[i] = s.String()
	}
	return 0, &ConfigError{Field: "scheme", Reason: fmt.Sprintf("%q is not a seal scheme (want %s)", name, strings.Join(names, " or "))}
}

// IVSource says who makes a GCM IV.
type IVSource uint8

const (
	// IVCaller: nanokms draws the IV from the token's RNG and passes it.
	IVCaller IVSource = 1
	// IVToken: the token makes the IV itself (as Thales Luna and AWS
	// CloudHSM do) and writes it into the parameters; nanokms stores it.
	IVToken IVSource = 2
)

// String returns "caller" or "token".
func (s IVSource) String() string {
	switch s {
	case IVCaller:
		return "caller"
	case IVToken:
		return "token"
	}
	return "none"
}

// ModuleInfo is what C_GetInfo reports about a PKCS#11 library.
type ModuleInfo struct {
	Path            string // as loaded: absolute, symlinks resolved
	Manufacturer    string
	Description     string
	LibraryVersion  string // "3.87"
	CryptokiVersion string // the PKCS#11 version it implements, "2.40"
	// Params is true when initialisation parameters were passed (their
	// text is not repeated: it may name private paths).
	Params bool
}

// TokenInfo is what C_GetTokenInfo reports about the token.
type TokenInfo struct {
	Slot            uint
	Label           string
	Manufacturer    string
	Model           string
	Serial          string
	Flags           uint // CKF_ flags of CK_TOKEN_INFO
	MinPINLen       uint
	MaxPINLen       uint
	HardwareVersion string
	FirmwareVersion string
}

// MechanismInfo is one mechanism nanokms can use, with what the token says
// about it (C_GetMechanismInfo).
type MechanismInfo struct {
	Type       uint
	Name       string // "CKM_AES_GCM"
	MinKeySize uint   // in the mechanism's unit (bytes for AES, bits for RSA)
	MaxKeySize uint
	Flags      uint   // CKF_ENCRYPT, CKF_WRAP, …
	Use        string // what nanokms uses it for
}

// FlagNames returns the operations Flags allows, as lower-case words.
func (m MechanismInfo) FlagNames() []string {
	var out []string
	for _, f := range mechFlagNames {
		if m.Flags&f.flag != 0 {
			out = append(out, f.name)
		}
	}
	return out
}

var mechFlagNames = []struct {
	flag uint
	name string
}{
	{0x100, "encrypt"}, {0x200, "decrypt"}, {0x400, "digest"}, {0x800, "sign"},
	{0x2000, "verify"}, {0x8000, "generate"}, {0x10000, "generate_key_pair"},
	{0x20000, "wrap"}, {0x40000, "unwrap"}, {0x80000, "derive"},
}

// SchemeSupport is what the probe found for one seal scheme.
type SchemeSupport struct {
	Scheme SealScheme
	// Usable is true when a throw-away seal and unseal on the token
	// worked and a tampered seal failed to open.
	Usable bool
	// Reason says why it is not usable (a missing mechanism, or the
	// call that failed and its return code).
	Reason string
	// IV and MultiPart describe AES-GCM: who makes the IV, and whether
	// the token needs multi-part calls (C_EncryptUpdate/C_EncryptFinal)
	// because it lacks single-part C_Encrypt.
	IV        IVSource
	MultiPart bool
	// FailureCode is the return code with which the token refused the
	// tampered seal: a failed GCM tag or a failed MAC. For AES-GCM only
	// this code and the standard ones (CKR_ENCRYPTED_DATA_INVALID,
	// CKR_AEAD_DECRYPT_FAILED, …) are read as a broken seal on this token;
	// any other code is a fault and is reported as one. For the MAC a
	// code other than CKR_SIGNATURE_INVALID is never taken on trust: the
	// MAC is recomputed on the token and compared.
	FailureCode uint
}

// Attribute is a protective attribute of key and data objects.
type Attribute string

// The protective attributes the probe tests.
const (
	AttrSensitive   Attribute = "sensitive"
	AttrExtractable Attribute = "extractable"
	AttrCopyable    Attribute = "copyable"
	AttrDestroyable Attribute = "destroyable"
	AttrModifiable  Attribute = "modifiable"
	AttrPrivate     Attribute = "private"
)

// AttributeSupport is what the probe found for one protective attribute,
// by trying it on throw-away session objects.
type AttributeSupport struct {
	Attribute Attribute
	// Known is false when the token refused the attribute
	// (CKR_ATTRIBUTE_TYPE_INVALID): nanokms leaves it out of every
	// template for this token.
	Known bool
	// Enforced is true when the token held the protection the attribute
	// asks for (see Detail for the test).
	Enforced bool
	// Detail says what was tried and what the token did.
	Detail string
}

// WalletStorage is what the probe found about storing wallets on the
// token as data objects.
type WalletStorage struct {
	// Tested is false until Token.ProbeWalletStorage has run.
	Tested bool
	// TokenObjects is true when the token keeps CKO_DATA token objects.
	TokenObjects bool
	// Private is true when it accepts them with CKA_PRIVATE.
	Private bool
	// Detail says what the token answered.
	Detail string
}

// SessionCopy says whether a Token unseals with a session-object copy of
// its master keys (C_CopyObject with CKA_TOKEN false, held in a session
// of its own for the life of the Token), which spares tokens that load a
// token key from storage at every use (NSS softokn) that cost. It is used
// only where the token allows the copy and the copy reads back as
// protected as the key; docs/KEYS.md says what it changes.
type SessionCopy struct {
	// Used is true while the Token unseals with a copy.
	Used bool
	// Reason says why no copy is used: none made yet (no usable master
	// key), the key is not copyable, the token refused the copy (the
	// function and its return code), the copy was not as protected as
	// the key or did not open a seal of the key, or copies kept being
	// lost in use.
	Reason string
	// Lost counts the copies that stopped working in use (their session
	// closed under them, …) since the Token opened or last recovered:
	// each was dropped, its unseal made with the token object instead,
	// and a new copy made.
	Lost int
}

// Capabilities is what a token offers nanokms, read from the token and
// tried on it when it is opened: never assumed. Token.Capabilities
// returns it.
type Capabilities struct {
	Module ModuleInfo
	Token  TokenInfo
	// Offered is the number of mechanisms C_GetMechanismList lists.
	Offered int
	// Mechanisms are those of them nanokms uses, in a fixed order.
	Mechanisms []MechanismInfo
	// Schemes has an entry for every scheme of Schemes, in that order.
	Schemes []SchemeSupport
	// Attributes has an entry for each protective attribute.
	Attributes []AttributeSupport
	// Wrap and Unwrap are the backup ceremony's wrapping methods this
	// token can wrap with (as a primary) and unwrap with (as a backup),
	// in order of preference ("rsa-oaep-sha1").
	Wrap, Unwrap []string
	// WalletStorage is filled by Token.ProbeWalletStorage.
	WalletStorage WalletStorage
}

// Scheme returns the scheme a new master key on this token gets: the first
// usable one of Schemes, or 0 when none is.
func (c Capabilities) Scheme() SealScheme {
	for _, s := range c.Schemes {
		if s.Usable {
			return s.Scheme
		}
	}
	return 0
}

// SchemeSupport returns the entry of scheme s.
func (c Capabilities) SchemeSupport(s SealScheme) SchemeSupport {
	for _, x := range c.Schemes {
		if x.Scheme == s {
			return x
		}
	}
	return SchemeSupport{Scheme: s, Reason: "not probed"}
}

// UsableSchemes returns the usable schemes, in order of preference.
func (c Capabilities) UsableSchemes() []SealScheme {
	var out []SealScheme
	for _, s := range c.Schemes {
		if s.Usable {
			out = append(out, s.Scheme)
		}
	}
	return out
}

// NotEnforced returns the protective attributes the token does not
// enforce (unknown to it, or known but not held).
func (c Capabilities) NotEnforced() []AttributeSupport {
	var out []AttributeSupport
	for _, a := range c.Attributes {
		if !a.Enforced {
			out = append(out, a)
		}
	}
	return out
}

// Attribute returns the entry of a.
func (c Capabilities) Attribute(a Attribute) AttributeSupport {
	for _, x := range c.Attributes {
		if x.Attribute == a {
			return x
		}
	}
	return AttributeSupport{Attribute: a, Detail: "not probed"}
}
