package hsm

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	_ "embed"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/text/unicode/norm"
)

// bip39English is the BIP39 English wordlist, as published with BIP39
// (2048 lines, 13116 bytes, SHA-256 2f5eed53…24dbda; checked by a test).
//
//go:embed bip39-english.txt
var bip39English string

// bip39Words maps each word to its 11-bit index.
var bip39Words = sync.OnceValue(func() map[string]uint16 {
	words := strings.Split(strings.TrimSuffix(bip39English, "\n"), "\n")
	if len(words) != 2048 {
		panic("hsm: embedded BIP39 wordlist does not hold 2048 words")
	}
	m := make(map[string]uint16, len(words))
	for i, w := range words {
		m[w] = uint16(i)
	}
	return m
})

// Sizes of the BIP39 steps.
const (
	bip39SeedLen   = 64
	bip39MaxWords  = 24
	bip39MaxPhrase = bip39MaxWords*9 - 1 // words of at most 8 letters, one space between
)

// bip39Seed checks mnemonic (words separated by white space, any letter
// case) against the English wordlist and its checksum, then writes the
// 64-byte BIP39 seed, PBKDF2-HMAC-SHA512(NFKD(phrase),
// "mnemonic"‖NFKD(passphrase), 2048), into seed. scratch holds the
// normalised phrase and must be at least bip39MaxPhrase bytes; both are
// the caller's (locked) memory and the caller wipes them. Errors never
// contain a word of the mnemonic.
func bip39Seed(seed *[bip39SeedLen]byte, mnemonic, passphrase, scratch []byte) error {
	// The English words are lowercase ASCII, so NFKD of a valid phrase is
	// the words joined by single spaces; build that in scratch.
	if len(scratch) < bip39MaxPhrase {
		panic("hsm: BIP39 scratch buffer too small")
	}
	var (
		entropyBits [33]byte // 24 words × 11 bits = 264 bits
		nwords      int
		phrase      = scratch[:0:bip39MaxPhrase] // never reallocated: 24 words fit
		word        [8]byte
	)
	defer clear(entropyBits[:])
	defer clear(word[:])
	dict := bip39Words()
	i := 0
	for i < len(mnemonic) {
		for i < len(mnemonic) && isSpace(mnemonic[i]) {
			i++
		}
		if i == len(mnemonic) {
			break
		}
		start := i
		for i < len(mnemonic) && !isSpace(mnemonic[i]) {
			i++
		}
		if nwords == bip39MaxWords {
			return fmt.Errorf("%w: more than %d words", ErrBadMnemonic, bip39MaxWords)
		}
		w := mnemonic[start:i]
		if len(w) > len(word) {
			return fmt.Errorf("%w: word %d is not in the BIP39 English list", ErrBadMnemonic, nwords+1)
		}
		for j, c := range w {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			word[j] = c
		}
		idx, ok := dict[string(word[:len(w)])] // the compiler does not copy for a map lookup
		if !ok {
			return fmt.Errorf("%w: word %d is not in the BIP39 English list", ErrBadMnemonic, nwords+1)
		}
		for b := 0; b < 11; b++ {
			if idx&(1<<(10-b)) != 0 {
				bit := nwords*11 + b
				entropyBits[bit/8] |= 0x80 >> (bit % 8)
			}
		}
		if nwords > 0 {
			phrase = append(phrase, ' ')
		}
		phrase = append(phrase, word[:len(w)]...)
		nwords++
	}
	switch nwords {
	case 12, 15, 18, 21, 24:
	default:
		return fmt.Errorf("%w: %d words; want 12, 15, 18, 21 or 24", ErrBadMnemonic, nwords)
	}
	csBits := nwords / 3
	entBytes := (nwords*11 - csBits) / 8
	sum := sha256.Sum256(entropyBits[:entBytes])
	defer clear(sum[:])
	for b := 0; b < csBits; b++ {
		bit := entBytes*8 + b
		got := entropyBits[bit/8]&(0x80>>(bit%8)) != 0
		want := sum[b/8]&(0x80>>(b%8)) != 0
		if got != want {
			return fmt.Errorf("%w: checksum mismatch", ErrBadMnemonic)
		}
	}

	salt := make([]byte, 0, len("mnemonic")+len(passphrase))
	salt = append(salt, "mnemonic"...)
	normPass := norm.NFKD.Bytes(passphrase)
	salt = append(salt, normPass...)
	if len(normPass) > 0 && len(passphrase) > 0 && &normPass[0] != &passphrase[0] {
		clear(normPass) // a normalised copy; the caller wipes the original
	}
	defer clear(salt)
	pbkdf2SHA512(seed, phrase, salt, 2048)
	return nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// pbkdf2SHA512 writes the first (and only) 64-byte block of
// PBKDF2-HMAC-SHA512(password, salt, iter) into out (RFC 8018, section
// 5.2). It exists so that the password stays in a wipeable []byte; the
// standard library's PBKDF2 takes it as a string.
func pbkdf2SHA512(out *[64]byte, password, salt []byte, iter int) {
	prf := hmac.New(sha512.New, password)
	var u [64]byte
	var ctr [4]byte
	binary.BigEndian.PutUint32(ctr[:], 1)
	prf.Write(salt)
	prf.Write(ctr[:])
	prf.Sum(u[:0])
	*out = u
	for n := 1; n < iter; n++ {
		prf.Reset()
		prf.Write(u[:])
		prf.Sum(u[:0])
		for j := range out {
			out[j] ^= u[j]
		}
	}
	clear(u[:])
	prf.Reset()
}
