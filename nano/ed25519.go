package nano

import (
	"encoding/binary"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/blake2b"
)

// DeriveKey returns the private key at index of seed:
// BLAKE2b-256(seed ‖ uint32-BE(index)). The caller wipes the result.
func DeriveKey(seed *Seed, index uint32) PrivateKey {
	var buf [SeedSize + 4]byte
	copy(buf[:], seed[:])
	binary.BigEndian.PutUint32(buf[SeedSize:], index)
	k := PrivateKey(blake2b.Sum256(buf[:]))
	wipe(buf[:])
	return k
}

// SigningKey is a private key expanded for signing: the clamped secret
// scalar, the nonce prefix and the public key, computed once. It exists so
// that repeated signatures cost one scalar multiplication each, and so that
// the public key used in signing can never be mismatched with the secret
// (a mismatch would leak the key). Create it with NewSigningKey; call Wipe
// when done. The zero value is not usable.
type SigningKey struct {
	scalar edwards25519.Scalar
	prefix [32]byte
	public PublicKey
	ok     bool
}

// NewSigningKey expands k. It does not retain k.
func NewSigningKey(k *PrivateKey) *SigningKey {
	sk := new(SigningKey)
	sk.init(k)
	return sk
}

func (sk *SigningKey) init(k *PrivateKey) {
	h := blake2b.Sum512(k[:])
	// SetBytesWithClamping cannot fail on a 32-byte input.
	if _, err := sk.scalar.SetBytesWithClamping(h[:32]); err != nil {
		panic("nano: clamping a 32-byte scalar failed")
	}
	copy(sk.prefix[:], h[32:])
	wipe(h[:])
	A := new(edwards25519.Point).ScalarBaseMult(&sk.scalar)
	copy(sk.public[:], A.Bytes())
	sk.ok = true
}

// Public returns the key's public key.
func (sk *SigningKey) Public() PublicKey { return sk.public }

// Wipe overwrites the expanded secret. sk must not be used afterwards.
func (sk *SigningKey) Wipe() {
	sk.scalar = edwards25519.Scalar{}
	wipe(sk.prefix[:])
	sk.ok = false
}

// Sign returns the Ed25519-BLAKE2b signature of msg (for a block: its
// 32-byte hash). Signatures are deterministic and canonical (S < L). Sign
// panics if sk was wiped or not made by NewSigningKey.
func (sk *SigningKey) Sign(msg []byte) Signature {
	if !sk.ok {
		panic("nano: Sign with a wiped or uninitialised SigningKey")
	}
	var digest [64]byte
	h, _ := blake2b.New512(nil) // no key: cannot fail
	h.Write(sk.prefix[:])
	h.Write(msg)
	h.Sum(digest[:0])
	r, err := new(edwards25519.Scalar).SetUniformBytes(digest[:])
	if err != nil {
		panic("nano: 64-byte scalar reduction failed")
	}
	R := new(edwards25519.Point).ScalarBaseMult(r)

	var sig Signature
	copy(sig[:32], R.Bytes())

	h.Reset()
	h.Write(sig[:32])
	h.Write(sk.public[:])
	h.Write(msg)
	h.Sum(digest[:0])
	k, err := new(edwards25519.Scalar).SetUniformBytes(digest[:])
	if err != nil {
		panic("nano: 64-byte scalar reduction failed")
	}
	S := new(edwards25519.Scalar).MultiplyAdd(k, &sk.scalar, r)
	copy(sig[32:], S.Bytes())
	*r = edwards25519.Scalar{}
	wipe(digest[:])
	return sig
}

// PublicKey returns the public key of k.
func (k *PrivateKey) PublicKey() PublicKey {
	var sk SigningKey
	sk.init(k)
	pub := sk.public
	sk.Wipe()
	return pub
}

// Sign signs msg with k. It expands k on every call; to sign many messages
// with one key, use NewSigningKey.
func Sign(k *PrivateKey, msg []byte) Signature {
	var sk SigningKey
	sk.init(k)
	sig := sk.Sign(msg)
	sk.Wipe()
	return sig
}

// Verify reports whether sig is a valid Ed25519-BLAKE2b signature of msg by
// pub. It is strict: the public key and R must be valid point encodings and
// S must be canonical (S < L); any other signature is invalid.
func Verify(pub PublicKey, msg []byte, sig Signature) bool {
	A, err := new(edwards25519.Point).SetBytes(pub[:])
	if err != nil {
		return false
	}
	S, err := new(edwards25519.Scalar).SetCanonicalBytes(sig[32:])
	if err != nil {
		return false
	}
	var digest [64]byte
	h, _ := blake2b.New512(nil)
	h.Write(sig[:32])
	h.Write(pub[:])
	h.Write(msg)
	h.Sum(digest[:0])
	k, err := new(edwards25519.Scalar).SetUniformBytes(digest[:])
	if err != nil {
		return false
	}
	minusA := new(edwards25519.Point).Negate(A)
	// R' = [S]B − [k]A; valid when it encodes to R.
	R := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(k, minusA, S)
	var enc [32]byte
	copy(enc[:], R.Bytes())
	return enc == [32]byte(sig[:32])
}
