//go:build cgo

package hsm

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"
)

// The backup ceremony copies the master key from a primary token to backup
// tokens without the key ever existing outside a token:
//
//	backup:  CreateTransportKey         → transport public key (not secret)
//	primary: CreateMasterKeyForBackup   (once, before any wallet)
//	primary: WrapMasterKey(public key)  → package, once per backup token
//	primary: FinishMasterKeyBackup      (the key is never extractable again)
//	backup:  ImportMasterKey(package)   (checks the check value, then
//	                                     destroys the transport key)
//
// The wrapping is RSA-OAEP (SHA-1, MGF1-SHA-1: the only OAEP parameters
// SoftHSM 2.6 accepts; SHA-1 is not a weakness inside OAEP) under a 3072-bit
// key generated on the backup token, whose private half is sensitive,
// non-extractable and usable only to unwrap. docs/KEYS.md has the operator's
// steps.

// transportKeyBits is the size of the transport key.
const transportKeyBits = 3072

func oaepMechanism() []*pkcs11.Mechanism {
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP,
		pkcs11.NewOAEPParams(pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, pkcs11.CKZ_DATA_SPECIFIED, nil))}
}

func transportPublicTemplate(id []byte) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		// Stored on the token, so the ceremony may span processes.
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		// Public key: readable without login, which is harmless.
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		// RSA-3072, e = 65537.
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, transportKeyBits),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
		// This copy is only read out; the primary wraps with its own
		// session copy, so it has no use on this token.
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, TransportKeyLabel),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
}

func transportPrivateTemplate(id []byte) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		// Stored on the token, so the ceremony may span processes.
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		// Usable only after login as the user.
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		// Never readable, never leaves the token.
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		// Its one use: C_UnwrapKey of the master key. It cannot decrypt
		// data (which would let the unwrapped key be read) nor sign.
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, TransportKeyLabel),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
}

// importedMasterTemplate is the C_UnwrapKey template for the master key on
// a backup token: masterKeyTemplate without CKA_VALUE_LEN (the wrapped key
// sets it) and without CKA_MODIFIABLE, which SoftHSM 2.6 refuses in an
// unwrap template (CKR_ATTRIBUTE_READ_ONLY); the copy is therefore
// modifiable, like a primary that went through the ceremony. PKCS#11 lets
// CKA_EXTRACTABLE and CKA_SENSITIVE change only towards safety.
func importedMasterTemplate(id []byte) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		// An AES secret key (the primary's: AES-256, checked by the check value).
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		// Persistent, and private to the logged-in user.
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		// Never readable, never extractable: this copy goes nowhere.
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		// Seal and unseal only.
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		// No duplicates.
		pkcs11.NewAttribute(pkcs11.CKA_COPYABLE, false),
		// The primary's label and id.
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, MasterKeyLabel),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
}

func transportFind(class uint) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, TransportKeyLabel),
	}
}

// errNoTransport is the not-found value of transport key lookups.
var errNoTransport = errors.New("no transport key")

// transportPublicDER reads the public key at h as PKIX DER.
func (s *session) transportPublicDER(h pkcs11.ObjectHandle) ([]byte, error) {
	a, err := s.p.GetAttributeValue(s.sh, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("hsm: reading the transport public key: %w", err)
	}
	e := new(big.Int).SetBytes(attrBytes(a, pkcs11.CKA_PUBLIC_EXPONENT))
	if !e.IsInt64() || e.Int64() > 1<<31 {
		return nil, fmt.Errorf("hsm: transport public key: exponent out of range")
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(attrBytes(a, pkcs11.CKA_MODULUS)), E: int(e.Int64())}
	return x509.MarshalPKIXPublicKey(pub)
}

// CreateTransportKey is the first step on a backup token: it generates the
// RSA-3072 transport key pair that will receive the master key and returns
// its public key (PKIX DER; not secret) for WrapMasterKey on the primary.
// If the token already has a transport key, its public key is returned
// again, so the step can be repeated. It returns ErrMasterKeyExists if the
// token already holds a master key.
func (t *Token) CreateTransportKey(ctx context.Context) ([]byte, error) {
	t.createMu.Lock()
	defer t.createMu.Unlock()
	var der []byte
	err := t.do(ctx, func(s *session) error {
		if _, err := s.findMaster(); err == nil {
			return fmt.Errorf("token %q: %w", t.name, ErrMasterKeyExists)
		} else if !errors.Is(err, ErrMasterKeyMissing) {
			return err
		}
		pubH, err := s.findOne(transportFind(pkcs11.CKO_PUBLIC_KEY), "transport public key", errNoTransport)
		switch {
		case err == nil:
			if _, err := s.findOne(transportFind(pkcs11.CKO_PRIVATE_KEY), "transport private key", errNoTransport); err != nil {
				return fmt.Errorf("%w: %w", ErrTransportKey, err)
			}
			der, err = s.transportPublicDER(pubH)
			return err
		case !errors.Is(err, errNoTransport):
			return err
		}
		id, err := s.random(masterKeyIDLen)
		if err != nil {
			return err
		}
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)}
		pubH, _, err = s.p.GenerateKeyPair(s.sh, mech, transportPublicTemplate(id), transportPrivateTemplate(id))
		if err != nil {
			return fmt.Errorf("hsm: token %q: C_GenerateKeyPair(RSA-%d transport key): %w", t.name, transportKeyBits, err)
		}
		der, err = s.transportPublicDER(pubH)
		return err
	})
	return der, err
}

// WrapMasterKey wraps the primary's master key for one backup token, under
// the transport public key that CreateTransportKey printed there, and
// returns the package for ImportMasterKey. The master key must still be
// extractable: made by CreateMasterKeyForBackup and not yet finished
// (ErrNotExportable otherwise). The package is ciphertext for the backup
// token's transport key only.
func (t *Token) WrapMasterKey(ctx context.Context, transportPublicKey []byte) ([]byte, error) {
	pk, err := x509.ParsePKIXPublicKey(transportPublicKey)
	if err != nil {
		return nil, &ConfigError{Field: "transport public key", Reason: "not a PKIX DER public key"}
	}
	pub, ok := pk.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() < transportKeyBits || pub.N.BitLen() > 8192 || pub.E != 65537 {
		return nil, &ConfigError{Field: "transport public key", Reason: fmt.Sprintf("want RSA of %d to 8192 bits with e = 65537", transportKeyBits)}
	}
	var out []byte
	err = t.do(ctx, func(s *session) error {
		h, err := s.findMaster()
		if err != nil {
			return err
		}
		a, err := s.p.GetAttributeValue(s.sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		})
		if err != nil {
			return fmt.Errorf("hsm: reading master key attributes: %w", err)
		}
		if !attrBool(a, pkcs11.CKA_EXTRACTABLE) {
			return fmt.Errorf("token %q: %w", t.name, ErrNotExportable)
		}
		check, err := s.checkValue(h)
		if err != nil {
			return err
		}
		wrapping, err := s.p.CreateObject(s.sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			// A session object: gone when the session closes.
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			// Used for this one C_WrapKey and nothing else.
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, pub.N.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(pub.E)).Bytes()),
		})
		if err != nil {
			return fmt.Errorf("hsm: importing the transport public key: C_CreateObject: %w", err)
		}
		defer func() {
			// A session object: it would die with the session anyway.
			_ = s.p.DestroyObject(s.sh, wrapping)
		}()
		wrapped, err := s.p.WrapKey(s.sh, oaepMechanism(), wrapping, h)
		if err != nil {
			return fmt.Errorf("hsm: token %q: C_WrapKey(RSA-OAEP): %w", t.name, err)
		}
		out, err = json.MarshalIndent(masterPackage{
			Format:       masterPackageFormat,
			KeyID:        hex.EncodeToString(attrBytes(a, pkcs11.CKA_ID)),
			Check:        check,
			TransportKey: TransportKeyFingerprint(transportPublicKey),
			Mechanism:    wrapMechanismName,
			Wrapped:      base64.StdEncoding.EncodeToString(wrapped),
		}, "", "  ")
		return err
	})
	return out, err
}

// FinishMasterKeyBackup ends the backup ceremony on the primary: it turns
// the master key's CKA_EXTRACTABLE off, which PKCS#11 never lets anyone
// turn back on. From then on the key can never be wrapped again and wallet
// operations accept it. It does nothing if the key is already
// non-extractable.
func (t *Token) FinishMasterKeyBackup(ctx context.Context) error {
	t.createMu.Lock()
	defer t.createMu.Unlock()
	return t.do(ctx, func(s *session) error {
		h, err := s.findMaster()
		if err != nil {
			return err
		}
		a, err := s.p.GetAttributeValue(s.sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil)})
		if err != nil {
			return fmt.Errorf("hsm: reading master key attributes: %w", err)
		}
		if !attrBool(a, pkcs11.CKA_EXTRACTABLE) {
			return nil
		}
		if err := s.p.SetAttributeValue(s.sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false)}); err != nil {
			return fmt.Errorf("hsm: token %q: making the master key non-extractable: %w", t.name, err)
		}
		t.forgetMaster()
		return nil
	})
}

// ImportMasterKey is the last step on a backup token: it unwraps the
// package from WrapMasterKey with the transport key as a sensitive,
// non-extractable master key, checks that its check value equals the
// primary's (ErrWrongMasterKey otherwise, and the key is destroyed), and
// destroys the transport key pair. It returns ErrMasterKeyExists if the
// token has a master key, ErrTransportKey if it has no transport key or
// the package was made for another one.
func (t *Token) ImportMasterKey(ctx context.Context, pkg []byte) error {
	p, id, wrapped, err := parseMasterPackage(pkg)
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
		privH, err := s.findOne(transportFind(pkcs11.CKO_PRIVATE_KEY), "transport private key", errNoTransport)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrTransportKey, err)
		}
		pubH, err := s.findOne(transportFind(pkcs11.CKO_PUBLIC_KEY), "transport public key", errNoTransport)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrTransportKey, err)
		}
		der, err := s.transportPublicDER(pubH)
		if err != nil {
			return err
		}
		if TransportKeyFingerprint(der) != p.TransportKey {
			return fmt.Errorf("%w: the package was wrapped for transport key %s, this token has %s", ErrTransportKey, p.TransportKey, TransportKeyFingerprint(der))
		}
		h, err := s.p.UnwrapKey(s.sh, oaepMechanism(), privH, wrapped, importedMasterTemplate(id))
		if err != nil {
			if isSessionLost(err) {
				return err
			}
			return fmt.Errorf("%w: C_UnwrapKey: %w", ErrBadBlob, err)
		}
		check, err := s.checkValue(h)
		if err != nil || check != p.Check {
			_ = s.p.DestroyObject(s.sh, h)
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: unwrapped key has check value %s, the primary printed %s", ErrWrongMasterKey, check, p.Check)
		}
		if err := s.p.DestroyObject(s.sh, privH); err != nil {
			return fmt.Errorf("hsm: destroying the transport private key: %w", err)
		}
		if err := s.p.DestroyObject(s.sh, pubH); err != nil {
			return fmt.Errorf("hsm: destroying the transport public key: %w", err)
		}
		t.forgetMaster()
		return nil
	})
}
