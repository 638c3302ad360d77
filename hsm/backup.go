//go:build cgo

package hsm

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
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
// The wrapping is RSA-OAEP (SHA-1, MGF1-SHA-1: the OAEP parameters that
// SoftHSM 2.6, opencryptoki 3.8 and NSS 3.87 all accept; SHA-1 is not a
// weakness inside OAEP) under a 3072-bit key generated on the backup
// token, whose private half is sensitive, non-extractable and usable only
// to unwrap. The tokens may be of different kinds: the backup token's
// transport key file states the seal schemes and wrapping methods it
// offers (BackupTarget), and the primary refuses a backup token that
// cannot use its scheme or unwrap what it can wrap. Every key of the
// scheme travels: for aes-256-cbc-pad+hmac-sha-256 the AES key and the
// HMAC key. docs/KEYS.md has the operator's steps.

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

// importedMasterTemplate is the C_UnwrapKey template for the AES master
// key on a backup token: masterKeyTemplate without CKA_VALUE_LEN (the
// wrapped key sets it) and without CKA_MODIFIABLE, which SoftHSM 2.6
// refuses in an unwrap template (CKR_ATTRIBUTE_READ_ONLY); the copy is
// therefore modifiable, like a primary that went through the ceremony.
// PKCS#11 lets CKA_EXTRACTABLE and CKA_SENSITIVE change only towards
// safety.
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
		// No duplicates (a v2.40 attribute).
		pkcs11.NewAttribute(pkcs11.CKA_COPYABLE, false),
		// Destroyable, unlike a primary's: ImportMasterKey destroys a copy
		// whose check value is not the primary's.
		pkcs11.NewAttribute(pkcs11.CKA_DESTROYABLE, true),
		// The primary's label and id.
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, MasterKeyLabel),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
}

// importedMACTemplate is the C_UnwrapKey template for the HMAC key of
// aes-256-cbc-pad+hmac-sha-256 on a backup token: macKeyAttrs for a token
// key without CKA_VALUE_LEN and CKA_MODIFIABLE (as above), destroyable.
func importedMACTemplate(id []byte) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		// A generic secret: the primary's HMAC-SHA-256 key.
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		// Persistent, private, never readable, never extractable.
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		// MAC and MAC check only.
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		// No duplicates; destroyable for the check (see above).
		pkcs11.NewAttribute(pkcs11.CKA_COPYABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_DESTROYABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, MACKeyLabel),
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
		pubH, _, err = s.p.GenerateKeyPair(s.sh, mech, t.template(transportPublicTemplate(id)), t.template(transportPrivateTemplate(id)))
		if err != nil {
			return fmt.Errorf("hsm: token %q: generating the RSA-%d transport key: %w", t.name, transportKeyBits, err)
		}
		der, err = s.transportPublicDER(pubH)
		return err
	})
	return der, err
}

// BackupTarget returns what this token offers as a backup token: the seal
// schemes it can use and the wrapping methods it can unwrap. The transport
// key file carries it to the primary.
func (t *Token) BackupTarget() BackupTarget {
	c := t.Capabilities()
	return BackupTarget{Schemes: c.UsableSchemes(), Unwrap: c.Unwrap}
}

// WrapMasterKey wraps the primary's master keys for one backup token,
// under the transport public key that CreateTransportKey printed there,
// and returns the package for ImportMasterKey. target is what the backup
// token offers: it must be able to use the master keys' scheme
// (ErrSchemeUnsupported otherwise) and unwrap a method this token can wrap
// with (ErrNoWrapMethod). The master keys must still be extractable: made
// by CreateMasterKeyForBackup and not yet finished (ErrNotExportable
// otherwise). The package is ciphertext for the backup token's transport
// key only.
func (t *Token) WrapMasterKey(ctx context.Context, transportPublicKey []byte, target BackupTarget) ([]byte, error) {
	pk, err := x509.ParsePKIXPublicKey(transportPublicKey)
	if err != nil {
		return nil, &ConfigError{Field: "transport public key", Reason: "not a PKIX DER public key"}
	}
	pub, ok := pk.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() < transportKeyBits || pub.N.BitLen() > 8192 || pub.E != 65537 {
		return nil, &ConfigError{Field: "transport public key", Reason: fmt.Sprintf("want RSA of %d to 8192 bits with e = 65537", transportKeyBits)}
	}
	method := ""
	for _, w := range t.Capabilities().Wrap {
		for _, u := range target.Unwrap {
			if w == u && method == "" {
				method = w
			}
		}
	}
	if method == "" {
		return nil, fmt.Errorf("%w: token %q wraps with %v, the backup token unwraps %v", ErrNoWrapMethod, t.name, t.Capabilities().Wrap, target.Unwrap)
	}
	var out []byte
	err = t.do(ctx, func(s *session) error {
		m, err := s.findMaster()
		if err != nil {
			return err
		}
		offered := false
		for _, sc := range target.Schemes {
			offered = offered || sc == m.scheme
		}
		if !offered {
			return fmt.Errorf("%w: the master keys of token %q are for %s, which the backup token does not offer (it offers %v)", ErrSchemeUnsupported, t.name, m.scheme, target.Schemes)
		}
		pkg := &parsedPackage{scheme: m.scheme, transportKey: TransportKeyFingerprint(transportPublicKey), mechanism: method}
		roles := schemeRoles(m.scheme)
		for i, h := range m.handles() {
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
			pkg.keys = append(pkg.keys, wrappedKey{role: roles[i], id: append([]byte(nil), attrBytes(a, pkcs11.CKA_ID)...)})
		}
		if pkg.check, err = s.checkValue(m); err != nil {
			return err
		}
		wrapping, err := s.p.CreateObject(s.sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			// A session object: gone when the session closes.
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			// Used for these C_WrapKey calls and nothing else.
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, pub.N.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(pub.E)).Bytes()),
		})
		if err != nil {
			return fmt.Errorf("hsm: importing the transport public key: %w", err)
		}
		defer func() {
			// A session object: it would die with the session anyway.
			_ = s.p.DestroyObject(s.sh, wrapping)
		}()
		for i, h := range m.handles() {
			w, err := s.p.WrapKey(s.sh, oaepMechanism(), wrapping, h)
			if err != nil {
				return fmt.Errorf("hsm: token %q: wrapping the %s key (RSA-OAEP): %w", t.name, roles[i], err)
			}
			pkg.keys[i].wrapped = w
		}
		out, err = marshalPackage(pkg)
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
		m, err := s.findMaster()
		if err != nil {
			return err
		}
		// The HMAC key first, the AES key last: a failure in between
		// leaves the AES key extractable, which every wallet operation
		// refuses, and the step can be run again.
		hs := m.handles()
		for i := len(hs) - 1; i >= 0; i-- {
			h := hs[i]
			a, err := s.p.GetAttributeValue(s.sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil)})
			if err != nil {
				return fmt.Errorf("hsm: reading master key attributes: %w", err)
			}
			if !attrBool(a, pkcs11.CKA_EXTRACTABLE) {
				continue
			}
			if err := s.p.SetAttributeValue(s.sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false)}); err != nil {
				return fmt.Errorf("hsm: token %q: making the master key non-extractable: %w", t.name, err)
			}
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
func (t *Token) ImportMasterKey(ctx context.Context, pkgData []byte) error {
	p, err := parseMasterPackage(pkgData)
	if err != nil {
		return err
	}
	if _, err := t.chooseScheme(p.scheme); err != nil {
		return err
	}
	if !containsString(t.Capabilities().Unwrap, p.mechanism) {
		return fmt.Errorf("%w: token %q cannot unwrap %s", ErrNoWrapMethod, t.name, p.mechanism)
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
		if TransportKeyFingerprint(der) != p.transportKey {
			return fmt.Errorf("%w: the package was wrapped for transport key %s, this token has %s", ErrTransportKey, p.transportKey, TransportKeyFingerprint(der))
		}
		var made []pkcs11.ObjectHandle
		undo := func() {
			for _, h := range made {
				_ = s.p.DestroyObject(s.sh, h)
			}
		}
		m := masterState{scheme: p.scheme}
		// The HMAC key first (see createMasterKey).
		if k := p.key(roleMAC); k != nil {
			h, err := s.p.UnwrapKey(s.sh, oaepMechanism(), privH, k.wrapped, t.template(importedMACTemplate(k.id)))
			if err != nil {
				if isSessionLost(err) {
					return err
				}
				return fmt.Errorf("%w: unwrapping the MAC key: %w", ErrBadBlob, err)
			}
			made, m.mac = append(made, h), h
			if err := s.holdProtection(h, "MAC key"); err != nil {
				undo()
				return err
			}
		}
		k := p.key(roleEncrypt)
		h, err := s.p.UnwrapKey(s.sh, oaepMechanism(), privH, k.wrapped, t.template(importedMasterTemplate(k.id)))
		if err != nil {
			undo()
			if isSessionLost(err) {
				return err
			}
			return fmt.Errorf("%w: unwrapping the master key: %w", ErrBadBlob, err)
		}
		made, m.h = append(made, h), h
		if err := s.holdProtection(h, "master key"); err != nil {
			undo()
			return err
		}
		check, err := s.checkValue(m)
		if err != nil || check != p.check {
			undo()
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: unwrapped keys have check value %s, the primary printed %s", ErrWrongMasterKey, check, p.check)
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

// holdProtection reads back an unwrapped key's CKA_SENSITIVE and
// CKA_EXTRACTABLE and, where the token did not set them as the template
// asked (opencryptoki 3.8's C_UnwrapKey makes keys non-sensitive and
// extractable whatever the template says), sets them: PKCS#11 lets both
// change towards safety. A key that still is not sensitive and
// non-extractable is an error (ErrMasterKeyExportable); the caller
// destroys it.
func (s *session) holdProtection(h pkcs11.ObjectHandle, what string) error {
	read := func() (sensitive, extractable bool, err error) {
		a, err := s.p.GetAttributeValue(s.sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		})
		if err != nil {
			return false, false, fmt.Errorf("hsm: reading the unwrapped %s's attributes: %w", what, err)
		}
		return attrBool(a, pkcs11.CKA_SENSITIVE), attrBool(a, pkcs11.CKA_EXTRACTABLE), nil
	}
	sens, extr, err := read()
	if err != nil || (sens && !extr) {
		return err
	}
	var set []*pkcs11.Attribute
	if !sens {
		set = append(set, pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true))
	}
	if extr {
		set = append(set, pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false))
	}
	if err := s.p.SetAttributeValue(s.sh, h, set); err != nil {
		return fmt.Errorf("%w: token %q unwrapped the %s sensitive=%v extractable=%v, against the template, and refused to correct it: %w", ErrMasterKeyExportable, s.t.name, what, sens, extr, err)
	}
	if sens, extr, err = read(); err != nil {
		return err
	}
	if !sens || extr {
		return fmt.Errorf("%w: token %q keeps the unwrapped %s sensitive=%v extractable=%v", ErrMasterKeyExportable, s.t.name, what, sens, extr)
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
