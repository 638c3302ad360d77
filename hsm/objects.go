//go:build cgo

package hsm

import (
	"fmt"

	"github.com/miekg/pkcs11"
)

// findOne returns the single object matching tmpl. It asks for two so that
// a duplicate is noticed: zero matches return notFound, two return
// ErrDuplicateObject. C_FindObjectsFinal is always called once the search
// has begun.
func (s *session) findOne(tmpl []*pkcs11.Attribute, what string, notFound error) (pkcs11.ObjectHandle, error) {
	if err := s.p.FindObjectsInit(s.sh, tmpl); err != nil {
		return 0, fmt.Errorf("hsm: finding %s: C_FindObjectsInit: %w", what, err)
	}
	hs, _, err := s.p.FindObjects(s.sh, 2)
	if ferr := s.p.FindObjectsFinal(s.sh); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return 0, fmt.Errorf("hsm: finding %s: %w", what, err)
	}
	switch len(hs) {
	case 0:
		return 0, notFound
	case 1:
		return hs[0], nil
	}
	return 0, fmt.Errorf("%w: %s", ErrDuplicateObject, what)
}

// findAll returns every object matching tmpl.
func (s *session) findAll(tmpl []*pkcs11.Attribute, what string) ([]pkcs11.ObjectHandle, error) {
	if err := s.p.FindObjectsInit(s.sh, tmpl); err != nil {
		return nil, fmt.Errorf("hsm: listing %s: C_FindObjectsInit: %w", what, err)
	}
	var all []pkcs11.ObjectHandle
	var err error
	for {
		var hs []pkcs11.ObjectHandle
		hs, _, err = s.p.FindObjects(s.sh, 64)
		if err != nil || len(hs) == 0 {
			break
		}
		all = append(all, hs...)
	}
	if ferr := s.p.FindObjectsFinal(s.sh); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("hsm: listing %s: %w", what, err)
	}
	return all, nil
}

// random returns n bytes from the token's RNG (C_GenerateRandom).
func (s *session) random(n int) ([]byte, error) {
	b, err := s.p.GenerateRandom(s.sh, n)
	if err != nil {
		return nil, fmt.Errorf("hsm: C_GenerateRandom: %w", err)
	}
	if len(b) != n {
		return nil, fmt.Errorf("hsm: C_GenerateRandom returned %d bytes, want %d", len(b), n)
	}
	return b, nil
}

// randomInto fills dst from the token's RNG and wipes the intermediate
// copy; for secrets.
func (s *session) randomInto(dst []byte) error {
	b, err := s.random(len(dst))
	if err != nil {
		return err
	}
	copy(dst, b)
	clear(b)
	return nil
}

// gcm returns the CKM_AES_GCM mechanism for iv and aad with a 128-bit tag.
// The caller frees params after the operation.
func gcm(iv, aad []byte) ([]*pkcs11.Mechanism, *pkcs11.GCMParams) {
	params := pkcs11.NewGCMParams(iv, aad, 8*gcmTagLen)
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, params
}

// encrypt is C_EncryptInit + C_Encrypt with AES-GCM under key.
func (s *session) encrypt(key pkcs11.ObjectHandle, iv, aad, plain []byte) ([]byte, error) {
	mech, params := gcm(iv, aad)
	defer params.Free()
	if err := s.p.EncryptInit(s.sh, mech, key); err != nil {
		return nil, fmt.Errorf("hsm: C_EncryptInit(AES-GCM): %w", err)
	}
	ct, err := s.p.Encrypt(s.sh, plain)
	if err != nil {
		return nil, fmt.Errorf("hsm: C_Encrypt(AES-GCM): %w", err)
	}
	return ct, nil
}

// decryptInto is C_DecryptInit + C_Decrypt with AES-GCM under key; the
// plaintext goes into dst, which must have exactly its length, and the
// intermediate copy is wiped. A failed tag check is ErrSealBroken: SoftHSM
// reports it as CKR_GENERAL_ERROR, which is read that way only here.
func (s *session) decryptInto(dst []byte, key pkcs11.ObjectHandle, iv, aad, ct []byte) error {
	mech, params := gcm(iv, aad)
	defer params.Free()
	if err := s.p.DecryptInit(s.sh, mech, key); err != nil {
		return fmt.Errorf("hsm: C_DecryptInit(AES-GCM): %w", err)
	}
	pt, err := s.p.Decrypt(s.sh, ct)
	defer clear(pt)
	switch {
	case err == nil:
	case isCode(err, pkcs11.CKR_GENERAL_ERROR),
		isCode(err, pkcs11.CKR_ENCRYPTED_DATA_INVALID),
		isCode(err, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE):
		return fmt.Errorf("%w (C_Decrypt: %w)", ErrSealBroken, err)
	default:
		return fmt.Errorf("hsm: C_Decrypt(AES-GCM): %w", err)
	}
	if len(pt) != len(dst) {
		return fmt.Errorf("%w: opened to %d bytes, want %d", ErrSealBroken, len(pt), len(dst))
	}
	copy(dst, pt)
	return nil
}
