//go:build cgo

package hsm

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// masterState caches the master key's handle once it is known to be in its
// final state (sensitive, not extractable). Object handles stay valid for
// every session of the process; the cache is dropped on any session loss.
type masterState struct {
	h pkcs11.ObjectHandle
}

// masterKeyIDLen is the length of the master key's random CKA_ID.
const masterKeyIDLen = 16

// checkAAD is the associated data of the key check value computation.
const checkAAD = "nanokms/master-key-check/v1"

// masterKeyTemplate is the template of C_GenerateKey for the master key.
// forBackup makes it extractable and modifiable, for a backup ceremony
// (CreateMasterKeyForBackup); FinishMasterKeyBackup then turns
// CKA_EXTRACTABLE off for good.
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
		// Its only uses: AES-GCM seal (encrypt) and unseal (decrypt) of
		// wallet secrets, and the key check value.
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
		// No C_CopyObject duplicates.
		pkcs11.NewAttribute(pkcs11.CKA_COPYABLE, false),
		// Found by this fixed label; the id is drawn from the token RNG.
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, MasterKeyLabel),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
}

// masterKeyFind matches the master key.
func masterKeyFind() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, MasterKeyLabel),
	}
}

func (t *Token) forgetMaster() {
	t.mu.Lock()
	t.master = nil
	t.mu.Unlock()
}

// findMaster returns the master key's handle whatever its state.
func (s *session) findMaster() (pkcs11.ObjectHandle, error) {
	h, err := s.findOne(masterKeyFind(), "master key "+MasterKeyLabel, ErrMasterKeyMissing)
	if err != nil {
		return 0, fmt.Errorf("token %q: %w", s.t.name, err)
	}
	return h, nil
}

// masterKey returns the master key's handle for sealing or unsealing. It
// refuses a key that is extractable or not sensitive (ErrMasterKeyExportable).
func (s *session) masterKey() (pkcs11.ObjectHandle, error) {
	s.t.mu.Lock()
	m := s.t.master
	s.t.mu.Unlock()
	if m != nil {
		return m.h, nil
	}
	h, err := s.findMaster()
	if err != nil {
		return 0, err
	}
	a, err := s.p.GetAttributeValue(s.sh, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
	})
	if err != nil {
		return 0, fmt.Errorf("hsm: reading master key attributes: %w", err)
	}
	if !attrBool(a, pkcs11.CKA_SENSITIVE) || attrBool(a, pkcs11.CKA_EXTRACTABLE) {
		return 0, fmt.Errorf("token %q: %w", s.t.name, ErrMasterKeyExportable)
	}
	s.t.mu.Lock()
	s.t.master = &masterState{h: h}
	s.t.mu.Unlock()
	return h, nil
}

// checkValue computes the key check value of key: the first 8 bytes of the
// GCM tag of 16 zero bytes under a zero IV and checkAAD, as hex. The IV is
// fixed so that the value is; the plaintext is too, so the repeated IV
// reveals nothing, and a random 96-bit seal IV never equals it in practice.
func (s *session) checkValue(key pkcs11.ObjectHandle) (string, error) {
	var iv [gcmIVLen]byte
	var zero [16]byte
	ct, err := s.encrypt(key, iv[:], []byte(checkAAD), zero[:])
	if err != nil {
		return "", fmt.Errorf("hsm: computing the key check value: %w", err)
	}
	if len(ct) != len(zero)+gcmTagLen {
		return "", fmt.Errorf("hsm: key check value: AES-GCM returned %d bytes", len(ct))
	}
	return hex.EncodeToString(ct[len(zero) : len(zero)+checkLen]), nil
}

// CreateMasterKey generates the master key on the token: AES-256,
// sensitive, never extractable, not modifiable, with a random id (see
// masterKeyTemplate for every attribute). It returns ErrMasterKeyExists if
// the token has one. A master key made this way can never be backed up;
// for a backup token use CreateMasterKeyForBackup.
func (t *Token) CreateMasterKey(ctx context.Context) error {
	return t.createMasterKey(ctx, false)
}

// CreateMasterKeyForBackup starts a backup ceremony: it generates the master
// key like CreateMasterKey but extractable (and so modifiable), so that
// WrapMasterKey can hand it to backup tokens. Wallet operations refuse to
// use it (ErrMasterKeyExportable) until FinishMasterKeyBackup makes it
// non-extractable for good. docs/KEYS.md describes the ceremony.
func (t *Token) CreateMasterKeyForBackup(ctx context.Context) error {
	return t.createMasterKey(ctx, true)
}

func (t *Token) createMasterKey(ctx context.Context, forBackup bool) error {
	t.createMu.Lock()
	defer t.createMu.Unlock()
	return t.do(ctx, func(s *session) error {
		if _, err := s.findMaster(); err == nil {
			return fmt.Errorf("token %q: %w", t.name, ErrMasterKeyExists)
		} else if !errors.Is(err, ErrMasterKeyMissing) {
			return err
		}
		id, err := s.random(masterKeyIDLen)
		if err != nil {
			return err
		}
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}
		if _, err := s.p.GenerateKey(s.sh, mech, masterKeyTemplate(id, forBackup)); err != nil {
			return fmt.Errorf("hsm: token %q: C_GenerateKey(AES-256 master key): %w", t.name, err)
		}
		t.forgetMaster()
		return nil
	})
}

// MasterKeyAttributes reads back the master key's security attributes and
// its check value. It never reads CKA_VALUE (the token would refuse).
func (t *Token) MasterKeyAttributes(ctx context.Context) (MasterKeyInfo, error) {
	var info MasterKeyInfo
	err := t.do(ctx, func(s *session) error {
		h, err := s.findMaster()
		if err != nil {
			return err
		}
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
		check, err := s.checkValue(h)
		if err != nil {
			return err
		}
		info = MasterKeyInfo{
			Label:            string(attrBytes(a, pkcs11.CKA_LABEL)),
			ID:               append([]byte(nil), attrBytes(a, pkcs11.CKA_ID)...),
			Sensitive:        attrBool(a, pkcs11.CKA_SENSITIVE),
			AlwaysSensitive:  attrBool(a, pkcs11.CKA_ALWAYS_SENSITIVE),
			Extractable:      attrBool(a, pkcs11.CKA_EXTRACTABLE),
			NeverExtractable: attrBool(a, pkcs11.CKA_NEVER_EXTRACTABLE),
			Modifiable:       attrBool(a, pkcs11.CKA_MODIFIABLE),
			Local:            attrBool(a, pkcs11.CKA_LOCAL),
			Check:            check,
		}
		return nil
	})
	return info, err
}
