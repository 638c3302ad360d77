//go:build cgo

package hsm

import (
	"crypto/subtle"
	"fmt"

	"github.com/miekg/pkcs11"
)

// The token operations of the seal schemes. Every one runs on the token:
// nanokms never holds a sealing key.

// gcmOp is AES-256-GCM under key, with the IV from the caller or from the
// token, single-part or multi-part (as the probe found).
type gcmOp struct {
	p        p11
	sh       pkcs11.SessionHandle
	key      pkcs11.ObjectHandle
	ivSource IVSource
	multi    bool
}

func gcmMechanism(iv, aad []byte) ([]*pkcs11.Mechanism, *pkcs11.GCMParams) {
	params := pkcs11.NewGCMParams(iv, aad, 8*gcmTagLen)
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, params
}

// encrypt seals plain with iv (for IVToken, a zero buffer the token fills)
// and aad. It returns ciphertext ‖ tag and the IV the parameters hold after
// the operation: the one given, or the one the token made. A caller IV
// that the token replaced is returned too, so the blob always records the
// IV that was used.
func (g gcmOp) encrypt(iv, aad, plain []byte) (ct, ivOut []byte, err error) {
	mech, params := gcmMechanism(iv, aad)
	defer params.Free()
	if err := g.p.EncryptInit(g.sh, mech, g.key); err != nil {
		return nil, nil, fmt.Errorf("hsm: AES-GCM: %w", err)
	}
	if !g.multi {
		ct, err = g.p.Encrypt(g.sh, plain)
		if err != nil {
			return nil, nil, fmt.Errorf("hsm: AES-GCM: %w", err)
		}
	} else {
		part, err := g.p.EncryptUpdate(g.sh, plain)
		if err != nil {
			return nil, nil, fmt.Errorf("hsm: AES-GCM (multi-part): %w", err)
		}
		last, err := g.p.EncryptFinal(g.sh)
		if err != nil {
			return nil, nil, fmt.Errorf("hsm: AES-GCM (multi-part): %w", err)
		}
		ct = append(part, last...)
	}
	return ct, params.IV(), nil
}

// decrypt opens ct with iv and aad into dst (len(dst) ≥ len(ct)) and
// returns the plaintext, a prefix of dst. Errors are the token's, unread:
// the caller decides what a failed tag looks like on this token.
func (g gcmOp) decrypt(dst, iv, aad, ct []byte) ([]byte, error) {
	mech, params := gcmMechanism(iv, aad)
	defer params.Free()
	if err := g.p.DecryptInit(g.sh, mech, g.key); err != nil {
		return nil, err
	}
	if !g.multi {
		return g.p.DecryptInto(g.sh, ct, dst)
	}
	first, err := g.p.DecryptUpdateInto(g.sh, ct, dst)
	if err != nil {
		return nil, err
	}
	n := len(first)
	last, err := g.p.DecryptFinalInto(g.sh, dst[n:])
	if err != nil {
		return nil, err
	}
	return dst[:n+len(last)], nil
}

// cbcOp is AES-256-CBC-PAD under enc and HMAC-SHA-256 under mac.
type cbcOp struct {
	p   p11
	sh  pkcs11.SessionHandle
	enc pkcs11.ObjectHandle
	mac pkcs11.ObjectHandle
}

func cbcMechanism(iv []byte) []*pkcs11.Mechanism {
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_CBC_PAD, iv)}
}

func hmacMechanism() []*pkcs11.Mechanism {
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}
}

func (c cbcOp) encrypt(iv, plain []byte) ([]byte, error) {
	if err := c.p.EncryptInit(c.sh, cbcMechanism(iv), c.enc); err != nil {
		return nil, fmt.Errorf("hsm: AES-CBC-PAD: %w", err)
	}
	ct, err := c.p.Encrypt(c.sh, plain)
	if err != nil {
		return nil, fmt.Errorf("hsm: AES-CBC-PAD: %w", err)
	}
	return ct, nil
}

// decrypt opens ct into dst (len(dst) ≥ len(ct)). Call it only after
// verify accepted the MAC.
func (c cbcOp) decrypt(dst, iv, ct []byte) ([]byte, error) {
	if err := c.p.DecryptInit(c.sh, cbcMechanism(iv), c.enc); err != nil {
		return nil, err
	}
	return c.p.DecryptInto(c.sh, ct, dst)
}

func (c cbcOp) sign(msg []byte) ([]byte, error) {
	if err := c.p.SignInit(c.sh, hmacMechanism(), c.mac); err != nil {
		return nil, fmt.Errorf("hsm: HMAC-SHA-256: %w", err)
	}
	tag, err := c.p.Sign(c.sh, msg)
	if err != nil {
		return nil, fmt.Errorf("hsm: HMAC-SHA-256: %w", err)
	}
	if len(tag) != macLen {
		return nil, fmt.Errorf("hsm: HMAC-SHA-256 gave %d bytes, want %d", len(tag), macLen)
	}
	return tag, nil
}

// verify checks tag over msg on the token. Errors are the token's, unread.
func (c cbcOp) verify(msg, tag []byte) error {
	if err := c.p.VerifyInit(c.sh, hmacMechanism(), c.mac); err != nil {
		return err
	}
	return c.p.Verify(c.sh, msg, tag)
}

// Standard return values of a failed seal: a GCM tag (v3.0 names
// CKR_AEAD_DECRYPT_FAILED; v2.40 tokens use CKR_ENCRYPTED_DATA_INVALID)
// or a MAC.
var (
	gcmFailureCodes = []uint{ckrEncryptedDataInvalid, ckrEncryptedDataLenRange, ckrAEADDecryptFailed}
	macFailureCodes = []uint{ckrSignatureInvalid, ckrSignatureLenRange}
)

// isGCMFailure reports whether err, from opening an AES-GCM seal, says
// the tag does not authenticate: one of the standard codes, or the code the
// probe saw this token return for a tampered tag (SoftHSM 2.6 says
// CKR_GENERAL_ERROR, as its documentation of C_Decrypt does). Any other
// code is a fault of the token and is reported as one.
func (t *Token) isGCMFailure(err error) bool {
	code := codeOf(err)
	if code == 0 {
		return false
	}
	for _, c := range gcmFailureCodes {
		if code == c {
			return true
		}
	}
	probed := t.caps.SchemeSupport(SchemeAESGCM).FailureCode
	return probed != 0 && code == probed
}

// macMismatch reports whether verr, C_Verify's refusal of a blob's MAC,
// means the MAC does not match. A standard code says so. Another code is
// not taken on trust (NSS 3.87 has no fixed code for it: it was seen
// answering CKR_DEVICE_ERROR and CKR_ARGUMENTS_BAD, depending on what
// failed before): the MAC is computed
// again on the token (C_Sign) and compared, in constant time, with the
// blob's. A mismatch is a broken seal; a match, or a failing C_Sign, leaves
// verr the fault it is. Nothing is decrypted either way.
func macMismatch(c cbcOp, msg, mac []byte, verr error) bool {
	code := codeOf(verr)
	if code == 0 || isSessionLost(verr) {
		return false
	}
	for _, x := range macFailureCodes {
		if code == x {
			return true
		}
	}
	tag, err := c.sign(msg)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(tag, mac) != 1
}
