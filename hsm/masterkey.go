//go:build cgo

package hsm

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// masterState caches the master keys' handles once they are known to be in
// their final state (sensitive, not extractable). Object handles stay
// valid for every session of the process; the cache is dropped on any
// session loss.
type masterState struct {
	scheme SealScheme
	h      pkcs11.ObjectHandle // the AES-256 master key
	mac    pkcs11.ObjectHandle // the HMAC key, for SchemeAESCBCHMAC
}

// masterKeyIDLen is the length of the master key's random CKA_ID.
const masterKeyIDLen = 16

// checkAAD is the associated data of the key check value computation of
// aes-256-gcm; checkMACPrefix starts the MAC input of
// aes-256-cbc-pad+hmac-sha-256's.
const (
	checkAAD       = "nanokms/master-key-check/v1"
	checkMACPrefix = "nanokms/master-key-check/cbc-hmac/v1\x00"
)

// masterKeyTemplate is the template of C_GenerateKey for the AES master
// key. forBackup makes it extractable and modifiable, for a backup
// ceremony (CreateMasterKeyForBackup); FinishMasterKeyBackup then turns
// CKA_EXTRACTABLE off for good. Attributes the token does not know (the
// probe's findings) are left out by the caller, and reported.
func masterKeyTemplate(id []byte, forBackup bool) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		// An AES secret key of 32 bytes: AES-256.
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		// A token object: it persists after the session and the process.
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		// Private: invisible and unusable until C_Login as the user.
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		// Sensitive: C_GetAttributeValue never returns CKA_VALUE.
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		// Not extractable: C_WrapKey refuses it, so the key never leaves
		// the token. Only a backup ceremony starts extractable, and
		// FinishMasterKeyBackup ends that (one way: PKCS#11 lets
		// CKA_EXTRACTABLE go from true to false only).
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, forBackup),
		// Its only uses: sealing (encrypt) and unsealing (decrypt) wallet
		// secrets, with AES-GCM or AES-CBC-PAD as the scheme says, and
		// the key check value.
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		// Never a key-wrapping key, a MAC or signing key, or a base key
		// for derivation.
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		// Attributes frozen at creation. A backup-ceremony key must stay
		// modifiable so that CKA_EXTRACTABLE can be turned off.
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, forBackup),
		// No C_CopyObject duplicates (a v2.40 attribute), not even the
		// session copy nanokms itself would make (sessioncopy.go): on a
		// token that enforces it, the token object does every unseal.
		pkcs11.NewAttribute(pkcs11.CKA_COPYABLE, false),
		// No C_DestroyObject (a v2.40 attribute): every wallet depends on
		// this key; only re-initialising the token removes it.
		pkcs11.NewAttribute(pkcs11.CKA_DESTROYABLE, false),
		// Found by this fixed label; the id is drawn from the token RNG.
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, MasterKeyLabel),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
}

// macKeyAttrs is the template of C_GenerateKey for the HMAC key of
// aes-256-cbc-pad+hmac-sha-256 (token true), and for the probe's
// throw-away copy (token false).
func macKeyAttrs(token bool, label string, id []byte, forBackup bool) []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{
		// A generic secret of 32 bytes: the HMAC-SHA-256 key.
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		// A token object, like the master key (the probe's: a session
		// object).
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, token),
		// Private, sensitive, and extractable only during a backup
		// ceremony: the same protection as the master key.
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, forBackup),
		// Its only uses: computing (sign) and checking (verify) the MAC of
		// sealed wallets, and the key check value.
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	if !token {
		return t
	}
	return append(t,
		// Frozen, except during a backup ceremony (see masterKeyTemplate).
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, forBackup),
		// No copies, no C_DestroyObject (v2.40 attributes).
		pkcs11.NewAttribute(pkcs11.CKA_COPYABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_DESTROYABLE, false),
		// A random id of its own (not the master key's: see
		// createMasterKey).
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	)
}

// masterKeyFind matches the AES master key: the token object, not its
// session copy (sessioncopy.go).
func masterKeyFind() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, MasterKeyLabel),
	}
}

// macKeyFind matches the HMAC key (the token object).
func macKeyFind() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, MACKeyLabel),
	}
}

func (t *Token) forgetMaster() {
	t.mu.Lock()
	t.master = nil
	t.mu.Unlock()
}

// errNoMAC is the not-found value of the MAC key lookup.
var errNoMAC = errors.New("no MAC key")

// findMaster returns the master keys' handles and scheme whatever their
// state: the AES key, and the HMAC key when there is one (its presence
// makes the scheme aes-256-cbc-pad+hmac-sha-256).
func (s *session) findMaster() (masterState, error) {
	h, err := s.findOne(masterKeyFind(), "master key "+MasterKeyLabel, ErrMasterKeyMissing)
	if err != nil {
		return masterState{}, fmt.Errorf("token %q: %w", s.t.name, err)
	}
	m := masterState{scheme: SchemeAESGCM, h: h}
	mac, err := s.findOne(macKeyFind(), "MAC key "+MACKeyLabel, errNoMAC)
	switch {
	case err == nil:
		m.scheme, m.mac = SchemeAESCBCHMAC, mac
	case !errors.Is(err, errNoMAC):
		return masterState{}, err
	}
	return m, nil
}

// handles returns the master keys' handles (AES first).
func (m masterState) handles() []pkcs11.ObjectHandle {
	if m.scheme == SchemeAESCBCHMAC {
		return []pkcs11.ObjectHandle{m.h, m.mac}
	}
	return []pkcs11.ObjectHandle{m.h}
}

// masterKey returns the master keys (the token objects) for sealing or
// unsealing. It refuses keys that are extractable or not sensitive
// (ErrMasterKeyExportable), and a scheme this token cannot run
// (ErrSchemeUnsupported). Keys it accepts get their session copy
// (sessioncopy.go) if they have none yet.
func (s *session) masterKey() (masterState, error) {
	m, err := s.masterKeyObjects()
	if err != nil {
		return masterState{}, err
	}
	s.ensureCopy(m)
	return m, nil
}

// masterKeyObjects is masterKey without the session copy.
func (s *session) masterKeyObjects() (masterState, error) {
	s.t.mu.Lock()
	m := s.t.master
	s.t.mu.Unlock()
	if m != nil {
		return *m, nil
	}
	ms, err := s.findMaster()
	if err != nil {
		return masterState{}, err
	}
	var id []byte
	for i, h := range ms.handles() {
		a, err := s.p.GetAttributeValue(s.sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		})
		if err != nil {
			return masterState{}, fmt.Errorf("hsm: reading master key attributes: %w", err)
		}
		if !attrBool(a, pkcs11.CKA_SENSITIVE) || attrBool(a, pkcs11.CKA_EXTRACTABLE) {
			return masterState{}, fmt.Errorf("token %q: %w", s.t.name, ErrMasterKeyExportable)
		}
		if i == 0 {
			id = attrBytes(a, pkcs11.CKA_ID)
		}
	}
	if sup := s.t.caps.SchemeSupport(ms.scheme); !sup.Usable {
		return masterState{}, fmt.Errorf("%w: token %q holds %s master keys, but %s", ErrSchemeUnsupported, s.t.name, ms.scheme, sup.Reason)
	}
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	switch {
	case s.t.masterID == nil:
		s.t.masterID = append([]byte{}, id...)
	case !bytes.Equal(s.t.masterID, id):
		// Not the key this Token has been sealing and unsealing with: the
		// token was re-made behind its back (recover.go refuses it too).
		return masterState{}, fmt.Errorf("%w: token %q: the master key's CKA_ID is %x, not the %x it had", errOtherMaster, s.t.name, id, s.t.masterID)
	}
	s.t.instanceSawMaster = true
	s.t.master = &ms
	return ms, nil
}

// gcm returns the GCM operation under the master key, as the probe found
// the token does it.
func (s *session) gcm(key pkcs11.ObjectHandle) gcmOp {
	sup := s.t.caps.SchemeSupport(SchemeAESGCM)
	return gcmOp{p: s.p, sh: s.sh, key: key, ivSource: sup.IV, multi: sup.MultiPart}
}

func (s *session) cbc(m masterState) cbcOp {
	return cbcOp{p: s.p, sh: s.sh, enc: m.h, mac: m.mac}
}

// noCheckReason is why a token cannot compute the check value.
const noCheckReason = "the token makes its own GCM IVs, so the aes-256-gcm key check value (a GCM tag under a fixed IV) cannot be computed"

// checkValue computes the key check value of the master keys m, as 16 hex
// digits. It identifies the keys and reveals nothing about them.
//
// aes-256-gcm: the first 8 bytes of the GCM tag of 16 zero bytes under a
// zero IV and checkAAD (the value nanokms has always computed). The IV is
// fixed so that the value is; the plaintext is too, so the repeated IV
// reveals nothing, and a random 96-bit seal IV never equals it in
// practice. A token that makes its own GCM IVs cannot compute it
// (ErrNoCheckValue): the callers that only report or record the value go
// on without it, and the identity of the master key is then established
// by unsealing (see RestoreWallet).
//
// aes-256-cbc-pad+hmac-sha-256: the first 8 bytes of the HMAC (under the
// MAC key) of checkMACPrefix ‖ AES-CBC-PAD (under the AES key, zero IV) of
// 16 zero bytes, so that it changes with either key.
func (s *session) checkValue(m masterState) (string, error) {
	var zero [16]byte
	switch m.scheme {
	case SchemeAESGCM:
		g := s.gcm(m.h)
		if g.ivSource == IVToken {
			return "", fmt.Errorf("%w: token %q: %s", ErrNoCheckValue, s.t.name, noCheckReason)
		}
		var iv [gcmIVLen]byte
		ct, _, err := g.encrypt(iv[:], []byte(checkAAD), zero[:])
		if err != nil {
			return "", fmt.Errorf("hsm: computing the key check value: %w", err)
		}
		if len(ct) != len(zero)+gcmTagLen {
			return "", fmt.Errorf("hsm: key check value: AES-GCM returned %d bytes", len(ct))
		}
		return hex.EncodeToString(ct[len(zero) : len(zero)+checkLen]), nil
	case SchemeAESCBCHMAC:
		c := s.cbc(m)
		var iv [cbcIVLen]byte
		ct, err := c.encrypt(iv[:], zero[:])
		if err != nil {
			return "", fmt.Errorf("hsm: computing the key check value: %w", err)
		}
		tag, err := c.sign(append([]byte(checkMACPrefix), ct...))
		if err != nil {
			return "", fmt.Errorf("hsm: computing the key check value: %w", err)
		}
		return hex.EncodeToString(tag[:checkLen]), nil
	}
	return "", fmt.Errorf("%w: %s", ErrSchemeUnsupported, m.scheme)
}

// optionalCheckValue is checkValue for the callers that only record or
// report it: "" when the token cannot compute it (ErrNoCheckValue).
func (s *session) optionalCheckValue(m masterState) (string, error) {
	check, err := s.checkValue(m)
	if errors.Is(err, ErrNoCheckValue) {
		return "", nil
	}
	return check, err
}

// CreateMasterKey generates the master key on the token: AES-256,
// sensitive, never extractable, not modifiable, with a random id (see
// masterKeyTemplate for every attribute), and, for the scheme
// aes-256-cbc-pad+hmac-sha-256, its HMAC key alike. scheme 0 takes the
// token's preferred scheme (Capabilities.Scheme). It returns
// ErrMasterKeyExists if the token has one, ErrNoSealScheme when the token
// can run no scheme, ErrSchemeUnsupported when it cannot run the one
// asked for. A master key made this way can never be backed up; for a
// backup token use CreateMasterKeyForBackup.
func (t *Token) CreateMasterKey(ctx context.Context, scheme SealScheme) error {
	return t.createMasterKey(ctx, scheme, false)
}

// CreateMasterKeyForBackup starts a backup ceremony: it generates the master
// keys like CreateMasterKey but extractable (and so modifiable), so that
// WrapMasterKey can hand them to backup tokens. Wallet operations refuse to
// use them (ErrMasterKeyExportable) until FinishMasterKeyBackup makes them
// non-extractable for good. Every backup token must offer the scheme
// (WrapMasterKey checks). docs/KEYS.md describes the ceremony.
func (t *Token) CreateMasterKeyForBackup(ctx context.Context, scheme SealScheme) error {
	return t.createMasterKey(ctx, scheme, true)
}

// chooseScheme resolves scheme 0 to the token's preferred one and checks
// that the token can run it.
func (t *Token) chooseScheme(scheme SealScheme) (SealScheme, error) {
	if scheme == 0 {
		scheme = t.caps.Scheme()
		if scheme == 0 {
			var reasons []string
			for _, s := range t.caps.Schemes {
				reasons = append(reasons, s.Scheme.String()+": "+s.Reason)
			}
			return 0, fmt.Errorf("%w: token %q (%s)", ErrNoSealScheme, t.name, joinSemi(reasons))
		}
		return scheme, nil
	}
	if sup := t.caps.SchemeSupport(scheme); !sup.Usable {
		return 0, fmt.Errorf("%w: token %q cannot use %s: %s", ErrSchemeUnsupported, t.name, scheme, sup.Reason)
	}
	return scheme, nil
}

func (t *Token) createMasterKey(ctx context.Context, scheme SealScheme, forBackup bool) error {
	scheme, err := t.chooseScheme(scheme)
	if err != nil {
		return err
	}
	t.createMu.Lock()
	defer t.createMu.Unlock()
	return t.do(ctx, func(s *session) error {
		if _, err := s.findMaster(); err == nil {
			return fmt.Errorf("token %q: %w", t.name, ErrMasterKeyExists)
		} else if !errors.Is(err, ErrMasterKeyMissing) {
			return err
		}
		if _, err := s.findOne(macKeyFind(), "MAC key "+MACKeyLabel, errNoMAC); err == nil {
			return fmt.Errorf("%w: token %q has a MAC key %s without a master key: another program changed it", ErrDuplicateObject, t.name, MACKeyLabel)
		} else if !errors.Is(err, errNoMAC) {
			return err
		}
		// Two ids: NSS softokn derives a token object's handle from its
		// CKA_ID, so two keys sharing one share a handle.
		ids, err := s.random(2 * masterKeyIDLen)
		if err != nil {
			return err
		}
		id, macID := ids[:masterKeyIDLen], ids[masterKeyIDLen:]
		// The MAC key first: a token left with only a MAC key (a failure
		// between the two calls) is refused above, and an operator sees
		// it; a master key alone would silently be an aes-256-gcm one.
		if scheme == SchemeAESCBCHMAC {
			mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil)}
			if _, err := s.p.GenerateKey(s.sh, mech, t.template(macKeyAttrs(true, MACKeyLabel, macID, forBackup))); err != nil {
				return fmt.Errorf("hsm: token %q: generating the HMAC-SHA-256 key: %w", t.name, err)
			}
		}
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}
		if _, err := s.p.GenerateKey(s.sh, mech, t.template(masterKeyTemplate(id, forBackup))); err != nil {
			return fmt.Errorf("hsm: token %q: generating the AES-256 master key: %w", t.name, err)
		}
		t.forgetMaster()
		return nil
	})
}

// template leaves out of a template the attributes this token does not
// know (Capabilities.Attributes).
func (t *Token) template(a []*pkcs11.Attribute) []*pkcs11.Attribute {
	return filterTemplate(a, t.unknownAttrs)
}

// MasterKeyAttributes reads back the master key's security attributes and
// its check value. It never reads CKA_VALUE (the token would refuse).
// For aes-256-cbc-pad+hmac-sha-256 the flags are those of both keys
// together: Sensitive only when both are, Extractable when either is. On
// a token that cannot compute the check value (aes-256-gcm with IVs the
// token makes) Check is empty and NoCheckReason says why; that is not an
// error.
func (t *Token) MasterKeyAttributes(ctx context.Context) (MasterKeyInfo, error) {
	var info MasterKeyInfo
	err := t.do(ctx, func(s *session) error {
		m, err := s.findMaster()
		if err != nil {
			return err
		}
		info = MasterKeyInfo{Scheme: m.scheme, Sensitive: true, AlwaysSensitive: true, NeverExtractable: true, Local: true}
		for i, h := range m.handles() {
			a, err := s.p.GetAttributeValue(s.sh, h, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
				pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_ALWAYS_SENSITIVE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_NEVER_EXTRACTABLE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, nil),
				pkcs11.NewAttribute(pkcs11.CKA_LOCAL, nil),
			})
			if err != nil {
				return fmt.Errorf("hsm: reading master key attributes: %w", err)
			}
			if i == 0 {
				info.Label = string(attrBytes(a, pkcs11.CKA_LABEL))
				info.ID = append([]byte(nil), attrBytes(a, pkcs11.CKA_ID)...)
			} else {
				info.MACLabel = string(attrBytes(a, pkcs11.CKA_LABEL))
			}
			info.Sensitive = info.Sensitive && attrBool(a, pkcs11.CKA_SENSITIVE)
			info.AlwaysSensitive = info.AlwaysSensitive && attrBool(a, pkcs11.CKA_ALWAYS_SENSITIVE)
			info.Extractable = info.Extractable || attrBool(a, pkcs11.CKA_EXTRACTABLE)
			info.NeverExtractable = info.NeverExtractable && attrBool(a, pkcs11.CKA_NEVER_EXTRACTABLE)
			info.Modifiable = info.Modifiable || attrBool(a, pkcs11.CKA_MODIFIABLE)
			info.Local = info.Local && attrBool(a, pkcs11.CKA_LOCAL)
		}
		check, err := s.checkValue(m)
		switch {
		case err == nil:
			info.Check = check
		case errors.Is(err, ErrNoCheckValue):
			info.NoCheckReason = noCheckReason
		default:
			return err
		}
		return nil
	})
	return info, err
}

func joinSemi(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += "; "
		}
		out += x
	}
	return out
}

// MasterKeyScheme returns the seal scheme of the token's master keys, or
// ErrMasterKeyMissing.
func (t *Token) MasterKeyScheme(ctx context.Context) (SealScheme, error) {
	var scheme SealScheme
	err := t.do(ctx, func(s *session) error {
		m, err := s.findMaster()
		scheme = m.scheme
		return err
	})
	return scheme, err
}
