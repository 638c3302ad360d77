package nano

import (
	"crypto/ed25519"
	"math/big"
	"testing"

	"filippo.io/edwards25519"
)

// groupOrder is L = 2^252 + 27742317777372353535851937790883648493.
var groupOrder, _ = new(big.Int).SetString("7237005577332262213973186563042994811857633956429185510497495186547683868493", 10)

func leBytes(n *big.Int) [32]byte {
	var out [32]byte
	b := n.Bytes()
	for i := range b {
		out[i] = b[len(b)-1-i]
	}
	return out
}

func TestVerifyRejectsNonCanonicalS(t *testing.T) {
	priv, _ := ParsePrivateKey("B928631BB2416D6689775ECF21695EB1E159626D10557E7BE15BF0D579264AE4")
	pub := priv.PublicKey()
	msg := []byte("nanokms strict verification")
	sig := Sign(&priv, msg)
	if !Verify(pub, msg, sig) {
		t.Fatal("canonical signature does not verify")
	}
	// S + L is the same scalar mod L: a lax verifier accepts it.
	var sLE [32]byte
	copy(sLE[:], sig[32:])
	var sBE [32]byte
	for i := range sLE {
		sBE[i] = sLE[31-i]
	}
	s := new(big.Int).SetBytes(sBE[:])
	if s.Cmp(groupOrder) >= 0 {
		t.Fatal("Sign produced a non-canonical S")
	}
	sPlusL := new(big.Int).Add(s, groupOrder)
	if sPlusL.BitLen() > 256 {
		t.Skip("S+L does not fit 32 bytes for this signature") // cannot happen: S < L < 2^253
	}
	malleated := sig
	enc := leBytes(sPlusL)
	copy(malleated[32:], enc[:])
	if Verify(pub, msg, malleated) {
		t.Error("Verify accepted S ≥ L")
	}
}

func TestVerifyRejectsBadEncodings(t *testing.T) {
	priv, _ := ParsePrivateKey("30660E2EF516B8E60FEDDCF3079C8A0B11DF561AF4EEBA903D558DE9DB99F864")
	pub := priv.PublicKey()
	msg := []byte{1, 2, 3}
	sig := Sign(&priv, msg)
	// A public key that is not a point: y = 2 has no x on the curve.
	var notPoint PublicKey
	notPoint[0] = 2
	if _, err := new(edwards25519.Point).SetBytes(notPoint[:]); err == nil {
		t.Fatal("test key unexpectedly decodes")
	}
	if Verify(notPoint, msg, sig) {
		t.Error("Verify accepted an invalid public key")
	}
	if Verify(pub, msg, Signature{}) {
		t.Error("Verify accepted the zero signature")
	}
	for i := 0; i < SignatureSize*8; i += 37 {
		bad := sig
		bad[i/8] ^= 1 << (i % 8)
		if Verify(pub, msg, bad) {
			t.Errorf("Verify accepted a signature with bit %d flipped", i)
		}
	}
}

// TestNotRFC8032 makes sure the hash is BLAKE2b: the same private key gives
// a different public key under SHA-512 Ed25519.
func TestNotRFC8032(t *testing.T) {
	priv, _ := ParsePrivateKey("B928631BB2416D6689775ECF21695EB1E159626D10557E7BE15BF0D579264AE4")
	std := ed25519.NewKeyFromSeed(priv[:]).Public().(ed25519.PublicKey)
	if got := priv.PublicKey(); string(got[:]) == string(std) {
		t.Fatal("public key equals the SHA-512 Ed25519 one")
	}
	if got := PublicKey(std).String(); got != "92BA0CF6E9BB6E9F949FC87D48565F7FE6DE80D761364447199F71F7D680BAB5" {
		t.Errorf("reference SHA-512 key = %s", got)
	}
}

func TestSigningKeyWipe(t *testing.T) {
	priv, _ := ParsePrivateKey("30660E2EF516B8E60FEDDCF3079C8A0B11DF561AF4EEBA903D558DE9DB99F864")
	sk := NewSigningKey(&priv)
	if sk.Public() != priv.PublicKey() {
		t.Fatal("public keys differ")
	}
	sk.Wipe()
	if sk.prefix != ([32]byte{}) || sk.scalar != (edwards25519.Scalar{}) {
		t.Error("Wipe left secret material")
	}
	defer func() {
		if recover() == nil {
			t.Error("Sign after Wipe did not panic")
		}
	}()
	sk.Sign([]byte{1})
}
