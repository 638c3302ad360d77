package hsm

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/nano"
)

// BIP39 and Nano BIP44 vectors. The "edge defense…" mnemonic with passphrase
// "some password" is the Nano documentation's key-management test vector,
// repeated in nanocurrency-web's test/test.js (seed, index 0 and index 14);
// "hole kiss…" is nanocurrency-web's generate test, with and without a
// passphrase; "abandon … about"/"TREZOR" is the first vector of the BIP39
// reference implementation.
var bip39Vectors = []struct {
	name       string
	mnemonic   string
	passphrase string
	seed       string
	accounts   map[uint32][2]string // index → private key, public key
}{
	{
		name:       "nano-docs",
		mnemonic:   "edge defense waste choose enrich upon flee junk siren film clown finish luggage leader kid quick brick print evidence swap drill paddle truly occur",
		passphrase: "some password",
		seed:       "0dc285fde768f7ff29b66ce7252d56ed92fe003b605907f7a4f683c3dc8586d34a914d3c71fc099bb38ee4a59e5b081a3497b7a323e90cc68f67b5837690310c",
		accounts: map[uint32][2]string{
			0:  {"3be4fc2ef3f3b7374e6fc4fb6e7bb153f8a2998b3b3dab50853eabe128024143", "5b65b0e8173ee0802c2c3e6c9080d1a16b06de1176c938a924f58670904e82c4"},
			14: {"5f12e37c64daf2501c6a6a20614fd8d977fed65b5b5f0b045ec997f2ed2f53ca", "f93a61018e07825a095e8cf7bdce9242e9c12c5c41a55de597a2be93fa41306b"},
		},
	},
	{
		name:     "nanocurrency-web-generate",
		mnemonic: "hole kiss mouse jacket also board click series citizen slight kite smoke desk diary rent mercy inflict antique edge invite slush athlete total brain",
		seed:     "1accdd4c25e06e47310d0c62c290ec166071d024352e003e5366e8ba6ba523f2a0cb34116ac55a238a886778880a9b2a547112fd7cffade81d8d8d084ccb7d36",
		accounts: map[uint32][2]string{
			0: {"eb18b748bcc48f824cf8a1fe92f7fc93bfc6f2a1eb9c1d40fa26d335d8a0c30f", "a9ef7bbc004813cf75c5fc5c582066182d5c9cffd42eb7eb81cefea8e78c47c5"},
		},
	},
	{
		name:       "nanocurrency-web-generate-password",
		mnemonic:   "hole kiss mouse jacket also board click series citizen slight kite smoke desk diary rent mercy inflict antique edge invite slush athlete total brain",
		passphrase: "some password",
		seed:       "146e3e2a0530848c9174d45ecec8c3f74a7be3f1ee832f92eb6227284121eb2e48a6b8fc469403984cd5e8f0d1ed05777c78f458d0e98c911841590e5d645dc3",
		accounts: map[uint32][2]string{
			0: {"2d5851bd5a89b8c943078be6ad5bbee8aeab77d6a4744c20d1b87d78e3286b93", "923b6c7e281c1c5529fd2dc848117781216a1753cfd487fc34009f3591e636d7"},
		},
	},
	{
		name:       "bip39-reference-0",
		mnemonic:   "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
		passphrase: "TREZOR",
		seed:       "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04",
	},
}

func mustSeed(t *testing.T, mnemonic, passphrase string) [bip39SeedLen]byte {
	t.Helper()
	var seed [bip39SeedLen]byte
	scratch := make([]byte, bip39MaxPhrase)
	if err := bip39Seed(&seed, []byte(mnemonic), []byte(passphrase), scratch); err != nil {
		t.Fatalf("bip39Seed: %v", err)
	}
	return seed
}

func TestBIP39Wordlist(t *testing.T) {
	sum := sha256.Sum256([]byte(bip39English))
	if got := hex.EncodeToString(sum[:]); got != "2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda" {
		t.Fatalf("embedded wordlist SHA-256 = %s, not the published list", got)
	}
	if n := len(bip39Words()); n != 2048 {
		t.Fatalf("%d distinct words", n)
	}
}

func TestBIP39Vectors(t *testing.T) {
	for _, v := range bip39Vectors {
		t.Run(v.name, func(t *testing.T) {
			seed := mustSeed(t, v.mnemonic, v.passphrase)
			if got := hex.EncodeToString(seed[:]); got != v.seed {
				t.Fatalf("seed = %s, want %s", got, v.seed)
			}
			for index, want := range v.accounts {
				var key nano.PrivateKey
				if err := slip10NanoKey(&key, &seed, index); err != nil {
					t.Fatal(err)
				}
				if got := hex.EncodeToString(key[:]); got != want[0] {
					t.Errorf("index %d: private key %s, want %s", index, got, want[0])
				}
				pub := key.PublicKey()
				if got := hex.EncodeToString(pub[:]); got != want[1] {
					t.Errorf("index %d: public key %s, want %s", index, got, want[1])
				}
			}
		})
	}
}

func TestBIP39Normalisation(t *testing.T) {
	v := bip39Vectors[0]
	want := mustSeed(t, v.mnemonic, v.passphrase)
	messy := "  " + strings.ToUpper(strings.ReplaceAll(v.mnemonic, " ", " \t\n ")) + "\n"
	if got := mustSeed(t, messy, v.passphrase); got != want {
		t.Error("case and white space changed the seed")
	}
	// NFKD: a composed and a decomposed passphrase are the same passphrase.
	composed := mustSeed(t, v.mnemonic, "caf\u00e9")
	decomposed := mustSeed(t, v.mnemonic, "cafe\u0301")
	if composed != decomposed {
		t.Error("passphrase is not NFKD-normalised")
	}
}

func TestBIP39Invalid(t *testing.T) {
	words := strings.Fields(bip39Vectors[0].mnemonic)
	swapped := append([]string(nil), words...)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	tests := []struct {
		name, mnemonic, secretWord string
	}{
		{"empty", "", ""},
		{"11 words", strings.Repeat("abandon ", 10) + "about", ""},
		{"25 words", strings.Repeat("abandon ", 24) + "about", ""},
		{"unknown word", strings.Repeat("abandon ", 11) + "abandonx", "abandonx"},
		{"long word", strings.Repeat("abandon ", 11) + "abandonment", "abandonment"},
		{"checksum", strings.Repeat("abandon ", 11) + "abandon", ""},
		{"swapped words", strings.Join(swapped, " "), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seed [bip39SeedLen]byte
			err := bip39Seed(&seed, []byte(tt.mnemonic), nil, make([]byte, bip39MaxPhrase))
			if !errors.Is(err, ErrBadMnemonic) {
				t.Fatalf("err = %v, want ErrBadMnemonic", err)
			}
			if tt.secretWord != "" && strings.Contains(err.Error(), tt.secretWord) {
				t.Errorf("error %q echoes the mnemonic", err)
			}
		})
	}
}

func TestSLIP10IndexRange(t *testing.T) {
	var seed [bip39SeedLen]byte
	var key nano.PrivateKey
	if err := slip10NanoKey(&key, &seed, 1<<31); !errors.Is(err, ErrIndexRange) {
		t.Fatalf("err = %v, want ErrIndexRange", err)
	}
	if err := slip10NanoKey(&key, &seed, 1<<31-1); err != nil {
		t.Fatalf("largest index: %v", err)
	}
}
