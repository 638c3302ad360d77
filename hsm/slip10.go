package hsm

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/binary"

	"github.com/nanokms/nanokms/nano"
)

// hardened marks a SLIP-0010 hardened index.
const hardened = 1 << 31

// nanoCoinType is Nano's SLIP-0044 coin type.
const nanoCoinType = 165

// slip10NanoKey writes into key the Nano private key of account index of a
// BIP39 seed: the SLIP-0010 ed25519 private key at m/44'/165'/index' (every
// level hardened, as ed25519 requires). That 32-byte key is used as the
// Ed25519-BLAKE2b private key, as Nault, the Ledger Nano app and
// nanocurrency-web do. index must be below 2^31.
func slip10NanoKey(key *nano.PrivateKey, seed *[bip39SeedLen]byte, index uint32) error {
	if index >= hardened {
		return ErrIndexRange
	}
	var (
		i    [64]byte // I = IL ‖ IR: key ‖ chain code
		data [1 + 32 + 4]byte
	)
	defer clear(i[:])
	defer clear(data[:])
	mac := hmac.New(sha512.New, []byte("ed25519 seed"))
	mac.Write(seed[:])
	mac.Sum(i[:0])
	for _, idx := range [...]uint32{44 | hardened, nanoCoinType | hardened, index | hardened} {
		data[0] = 0
		copy(data[1:33], i[:32])
		binary.BigEndian.PutUint32(data[33:], idx)
		mac = hmac.New(sha512.New, i[32:])
		mac.Write(data[:])
		mac.Sum(i[:0])
	}
	copy(key[:], i[:32])
	return nil
}
