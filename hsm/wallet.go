//go:build cgo

package hsm

import (
	"context"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/nano"
)

// walletTemplate is the template of C_CreateObject for a wallet.
func walletTemplate(label string, blob []byte) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		// A data object: opaque bytes to the token. The secret inside is
		// sealed under the master key; the object itself is not a key.
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
		// A token object: it persists.
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		// Private: invisible until C_Login as the user.
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		// Frozen: the sealed blob and label cannot be changed in place.
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
		// Marks nanokms's objects among others on the token.
		pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, Application),
		// The wallet's name; unique among nanokms wallets on the token.
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		// The versioned sealed blob (see blob.go).
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, blob),
	}
}

func walletFind(label string) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
		pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, Application),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
}

func walletFindAll() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
		pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, Application),
	}
}

// findWallet returns the sealed blob stored under label: a data object on
// the token, or a file of the wallet directory.
func (s *session) findWallet(label string) (sealedBlob, error) {
	notFound := func() error { return fmt.Errorf("%w: %q on token %q", ErrWalletNotFound, label, s.t.name) }
	if d := s.t.dir; d != nil {
		b, err := d.get(label)
		if errors.Is(err, ErrWalletNotFound) {
			return sealedBlob{}, notFound()
		}
		return b, err
	}
	h, err := s.findOne(walletFind(label), fmt.Sprintf("wallet %q", label), ErrWalletNotFound)
	if err != nil {
		if errors.Is(err, ErrWalletNotFound) {
			return sealedBlob{}, notFound()
		}
		return sealedBlob{}, err
	}
	a, err := s.p.GetAttributeValue(s.sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if err != nil {
		return sealedBlob{}, fmt.Errorf("hsm: reading wallet %q: %w", label, err)
	}
	b, err := parseBlob(attrBytes(a, pkcs11.CKA_VALUE))
	if err != nil {
		return sealedBlob{}, fmt.Errorf("wallet %q: %w", label, err)
	}
	return b, nil
}

// allWallets returns every stored wallet.
func (s *session) allWallets() ([]storedWallet, error) {
	if d := s.t.dir; d != nil {
		return d.list()
	}
	hs, err := s.findAll(walletFindAll(), "wallets")
	if err != nil {
		return nil, err
	}
	out := make([]storedWallet, 0, len(hs))
	for _, h := range hs {
		a, err := s.p.GetAttributeValue(s.sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("hsm: reading a wallet: %w", err)
		}
		label := string(attrBytes(a, pkcs11.CKA_LABEL))
		b, err := parseBlob(attrBytes(a, pkcs11.CKA_VALUE))
		if err != nil {
			return nil, fmt.Errorf("wallet %q: %w", label, err)
		}
		out = append(out, storedWallet{label: label, blob: b})
	}
	return out, nil
}

// cachedWallet returns the sealed blob of the wallet under label, reading it
// from the token only the first time. Looking a data object up costs
// SoftHSM a scan of every object on the token (about 0.2 ms with one
// wallet, 1 ms with twenty), more than the signature itself; the blob is
// ciphertext that the token authenticates at every unseal, and wallet
// objects are never modified (CKA_MODIFIABLE false) nor deleted by
// nanokms. A wallet deleted or replaced by another program is noticed when
// the Token is reopened or a session is lost.
func (s *session) cachedWallet(label string) (sealedBlob, error) {
	s.t.mu.Lock()
	b, ok := s.t.wallets[label]
	s.t.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := s.findWallet(label)
	if err != nil {
		return sealedBlob{}, err
	}
	s.t.rememberWallet(label, b)
	return b, nil
}

func (t *Token) rememberWallet(label string, b sealedBlob) {
	t.mu.Lock()
	if t.wallets == nil {
		t.wallets = make(map[string]sealedBlob)
	}
	t.wallets[label] = b
	t.mu.Unlock()
}

func (t *Token) forgetWallet(label string) {
	t.mu.Lock()
	delete(t.wallets, label)
	t.mu.Unlock()
}

func (t *Token) forgetWallets() {
	t.mu.Lock()
	t.wallets = nil
	t.mu.Unlock()
}

// labelFree returns ErrWalletExists if a wallet has label.
func (s *session) labelFree(label string) error {
	exists := func() error { return fmt.Errorf("%w: %q on token %q", ErrWalletExists, label, s.t.name) }
	if d := s.t.dir; d != nil {
		ok, err := d.exists(label)
		if err != nil {
			return err
		}
		if ok {
			return exists()
		}
		return nil
	}
	_, err := s.findOne(walletFind(label), fmt.Sprintf("wallet %q", label), ErrWalletNotFound)
	switch {
	case err == nil:
		return exists()
	case errors.Is(err, ErrWalletNotFound):
		return nil
	}
	return err
}

// seal seals secret (of kind's length) under the master keys, in the
// token's scheme, with a fresh wallet id and IV from the token RNG (or the
// IV the token makes), and stores it under label.
func (s *session) seal(label string, kind WalletKind, secret []byte) (WalletInfo, error) {
	if len(secret) != kind.secretLen() {
		panic("hsm: seal: secret length does not match its kind")
	}
	m, err := s.masterKey()
	if err != nil {
		return WalletInfo{}, err
	}
	if err := s.labelFree(label); err != nil {
		return WalletInfo{}, err
	}
	b := sealedBlob{version: blobVersion, scheme: m.scheme, kind: kind}
	ivLen, bodyLen, _, _ := sealedLens(m.scheme, kind)
	rnd, err := s.random(len(b.id) + ivLen)
	if err != nil {
		return WalletInfo{}, err
	}
	copy(b.id[:], rnd)
	iv := rnd[len(b.id):]
	switch m.scheme {
	case SchemeAESGCM:
		g := s.gcm(m.h)
		if g.ivSource == IVToken {
			iv = make([]byte, gcmIVLen) // the token fills it
		}
		b.ct, b.iv, err = g.encrypt(iv, b.aad(), secret)
		if err != nil {
			return WalletInfo{}, err
		}
		if len(b.iv) != gcmIVLen || (g.ivSource == IVToken && isZero(b.iv)) {
			return WalletInfo{}, fmt.Errorf("hsm: token %q returned no usable GCM IV", s.t.name)
		}
	case SchemeAESCBCHMAC:
		c := s.cbc(m)
		b.iv = iv
		if b.ct, err = c.encrypt(b.iv, secret); err != nil {
			return WalletInfo{}, err
		}
		if len(b.ct) == bodyLen {
			b.mac, err = c.sign(b.macInput())
			if err != nil {
				return WalletInfo{}, err
			}
		}
	}
	if len(b.ct) != bodyLen {
		return WalletInfo{}, fmt.Errorf("hsm: %s returned %d bytes, want %d", m.scheme, len(b.ct), bodyLen)
	}
	return s.store(label, &b, m)
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// store writes an already sealed blob under label: a private data object
// on the token, or a file of the wallet directory (which also records the
// master key check value, when the token can compute it).
func (s *session) store(label string, b *sealedBlob, m masterState) (WalletInfo, error) {
	if d := s.t.dir; d != nil {
		check, err := s.optionalCheckValue(m)
		if err != nil {
			return WalletInfo{}, err
		}
		doc, err := marshalExport(label, b, check)
		if err != nil {
			return WalletInfo{}, err
		}
		if err := d.create(label, append(doc, '\n')); err != nil {
			return WalletInfo{}, err
		}
		return b.info(label), nil
	}
	if _, err := s.p.CreateObject(s.sh, s.t.template(walletTemplate(label, b.marshal()))); err != nil {
		err = fmt.Errorf("hsm: storing wallet %q: %w", label, err)
		if isCode(err, ckrAttributeValueInvalid) || isCode(err, ckrAttributeTypeInvalid) || isCode(err, ckrTemplateInconsistent) {
			return WalletInfo{}, fmt.Errorf("%w: %w", ErrNoDataObjects, err)
		}
		return WalletInfo{}, err
	}
	return b.info(label), nil
}

// unseal opens b into dst (kind's length) with the master keys: for
// aes-256-cbc-pad+hmac-sha-256 the token checks the MAC first, and nothing
// is decrypted unless it holds. It unseals with the session copy of the
// keys when there is one; an unseal that fails with the copy, except by
// the loss of this session, is made again with the token objects, and the
// copy is dropped if they open it or if its handle is no longer valid
// (sessioncopy.go).
func (s *session) unseal(dst []byte, b *sealedBlob) error {
	m, err := s.masterKey()
	if err != nil {
		return err
	}
	if b.scheme != m.scheme {
		return fmt.Errorf("%w: the wallet is sealed with %s, the master keys of token %q are for %s", ErrSchemeMismatch, b.scheme, s.t.name, m.scheme)
	}
	c := s.t.copyFor(s.p)
	if c == nil {
		return s.unsealWith(dst, b, m)
	}
	err = s.unsealWith(dst, b, c.keys(m))
	s.t.cpMu.RUnlock()
	if err == nil || isSessionLost(err) {
		return err
	}
	// The copy failed, or the blob is bad: the token objects decide.
	err2 := s.unsealWith(dst, b, m)
	if err2 == nil || isStaleHandle(err) {
		s.t.dropCopy(c, err)
	}
	return err2
}

// unsealWith is unseal with the keys m.
func (s *session) unsealWith(dst []byte, b *sealedBlob, m masterState) error {
	var err error
	out := s.secret[offUnseal : offUnseal+unsealLen]
	defer clear(out)
	var pt []byte
	switch b.scheme {
	case SchemeAESGCM:
		pt, err = s.gcm(m.h).decrypt(out, b.iv, b.aad(), b.ct)
	case SchemeAESCBCHMAC:
		c := s.cbc(m)
		msg := b.macInput()
		if err := c.verify(msg, b.mac); err != nil {
			if macMismatch(c, msg, b.mac, err) {
				return fmt.Errorf("%w (%w)", ErrSealBroken, err)
			}
			return fmt.Errorf("hsm: checking the seal's MAC: %w", err)
		}
		pt, err = c.decrypt(out, b.iv, b.ct)
	}
	switch {
	case err == nil:
	case b.scheme == SchemeAESGCM && s.t.isGCMFailure(err),
		b.scheme == SchemeAESCBCHMAC && (isCode(err, ckrEncryptedDataInvalid) || isCode(err, ckrEncryptedDataLenRange)):
		return fmt.Errorf("%w (%w)", ErrSealBroken, err)
	default:
		return fmt.Errorf("hsm: unsealing (%s): %w", b.scheme, err)
	}
	if len(pt) != len(dst) {
		return fmt.Errorf("%w: opened to %d bytes, want %d", ErrSealBroken, len(pt), len(dst))
	}
	copy(dst, pt)
	return nil
}

// CreateWallet creates a wallet under label: a 32-byte Nano seed drawn from
// the token's RNG, sealed under the master key. It returns ErrWalletExists
// if the label is taken. The seed exists outside the token only in locked
// memory, for the C_Encrypt call.
func (t *Token) CreateWallet(ctx context.Context, label string) (WalletInfo, error) {
	if err := validLabel(label); err != nil {
		return WalletInfo{}, err
	}
	t.createMu.Lock()
	defer t.createMu.Unlock()
	var info WalletInfo
	err := t.do(ctx, func(s *session) error {
		seed := s.secret[offSecret : offSecret+nano.SeedSize]
		if err := s.randomInto(seed); err != nil {
			return err
		}
		var err error
		info, err = s.seal(label, KindSeed, seed)
		return err
	})
	return info, err
}

// ImportWallet seals an existing Nano seed under label (a ceremony step).
// The caller wipes seed.
func (t *Token) ImportWallet(ctx context.Context, label string, seed *nano.Seed) (WalletInfo, error) {
	if err := validLabel(label); err != nil {
		return WalletInfo{}, err
	}
	if seed == nil {
		return WalletInfo{}, &ConfigError{Field: "seed", Reason: "nil"}
	}
	t.createMu.Lock()
	defer t.createMu.Unlock()
	var info WalletInfo
	err := t.do(ctx, func(s *session) error {
		buf := s.secret[offSecret : offSecret+nano.SeedSize]
		copy(buf, seed[:])
		var err error
		info, err = s.seal(label, KindSeed, buf)
		return err
	})
	return info, err
}

// ImportMnemonic checks a BIP39 English mnemonic (word count, words,
// checksum), computes its 64-byte BIP39 seed with passphrase (which may be
// empty), and seals that seed under label as a KindBIP39 wallet. Account i
// of the wallet is the SLIP-0010 ed25519 key at m/44'/165'/i', as in
// Nault, the Ledger Nano app and nanocurrency-web; every index below 2^31
// is usable. The caller wipes mnemonic and passphrase. Errors never echo
// a word.
func (t *Token) ImportMnemonic(ctx context.Context, label string, mnemonic, passphrase []byte) (WalletInfo, error) {
	if err := validLabel(label); err != nil {
		return WalletInfo{}, err
	}
	t.createMu.Lock()
	defer t.createMu.Unlock()
	var info WalletInfo
	err := t.do(ctx, func(s *session) error {
		seed := (*[bip39SeedLen]byte)(s.secret[offBIP39 : offBIP39+bip39SeedLen])
		if err := bip39Seed(seed, mnemonic, passphrase, s.secret[offPhrase:endScratch]); err != nil {
			return err
		}
		var err error
		info, err = s.seal(label, KindBIP39, seed[:])
		return err
	})
	return info, err
}

// ListWallets returns every nanokms wallet on the token, in the token's
// order. It reads the sealed blobs' headers only.
func (t *Token) ListWallets(ctx context.Context) ([]WalletInfo, error) {
	var out []WalletInfo
	err := t.do(ctx, func(s *session) error {
		ws, err := s.allWallets()
		if err != nil {
			return err
		}
		out = make([]WalletInfo, 0, len(ws))
		for _, w := range ws {
			out = append(out, w.blob.info(w.label))
		}
		return nil
	})
	return out, err
}

// Wallet returns the description of the wallet under label.
func (t *Token) Wallet(ctx context.Context, label string) (WalletInfo, error) {
	var info WalletInfo
	err := t.do(ctx, func(s *session) error {
		b, err := s.findWallet(label)
		if err != nil {
			return err
		}
		info = b.info(label)
		return nil
	})
	return info, err
}

// withAccountKey unseals wallet's secret into locked memory, derives the
// private key of account index there, calls fn with it, and wipes both,
// whatever happens. This runs for every signature and public key: nothing
// derived is cached.
func (t *Token) withAccountKey(ctx context.Context, wallet string, index uint32, fn func(*nano.PrivateKey)) error {
	if err := validLabel(wallet); err != nil {
		return err
	}
	return t.do(ctx, func(s *session) error {
		defer clear(s.secret)
		b, err := s.cachedWallet(wallet)
		if err != nil {
			return err
		}
		if b.kind == KindBIP39 && index >= hardened {
			return fmt.Errorf("%w: %d ≥ 2^31 in BIP39 wallet %q", ErrIndexRange, index, wallet)
		}
		secret := s.secret[offSecret : offSecret+b.kind.secretLen()]
		if err := s.unseal(secret, &b); err != nil {
			t.forgetWallet(wallet)
			return fmt.Errorf("wallet %q: %w", wallet, err)
		}
		key := (*nano.PrivateKey)(s.secret[offKey : offKey+nano.PrivateKeySize])
		switch b.kind {
		case KindSeed:
			*key = nano.DeriveKey((*nano.Seed)(secret), index)
		case KindBIP39:
			if err := slip10NanoKey(key, (*[bip39SeedLen]byte)(secret), index); err != nil {
				return err
			}
		}
		clear(secret)
		fn(key)
		return nil
	})
}

// PublicKey returns the public key of account index of wallet.
func (t *Token) PublicKey(ctx context.Context, wallet string, index uint32) (nano.PublicKey, error) {
	var pub nano.PublicKey
	err := t.withAccountKey(ctx, wallet, index, func(k *nano.PrivateKey) {
		pub = k.PublicKey()
	})
	return pub, err
}

// Sign signs a block hash with account index of wallet: it unseals the
// wallet's secret into locked memory, derives the account key, signs, and
// wipes, for this one signature. The signature is Ed25519-BLAKE2b and
// deterministic. Sign returns an error wrapping ErrWalletNotFound,
// ErrMasterKeyMissing, ErrMasterKeyExportable, ErrSealBroken,
// ErrIndexRange, ErrSessionLost or ErrClosed as documented on each, or
// ctx's error while waiting for a session.
func (t *Token) Sign(ctx context.Context, wallet string, index uint32, hash nano.Hash) (nano.Signature, error) {
	sig, _, err := t.sign(ctx, wallet, index, nil, hash)
	return sig, err
}

// SignFor is Sign for a caller that knows which account the key must be:
// it derives the key of account index of wallet and signs hash only if
// that key's public key is account. Otherwise it makes no signature and
// returns an error wrapping ErrAccountMismatch (the wallet under that label
// is not the one the account was derived from). Its other errors are
// Sign's.
func (t *Token) SignFor(ctx context.Context, wallet string, index uint32, account nano.PublicKey, hash nano.Hash) (nano.Signature, error) {
	sig, got, err := t.sign(ctx, wallet, index, &account, hash)
	if err == nil && got != account {
		return nano.Signature{}, fmt.Errorf("%w: wallet %q index %d derives %s, not %s", ErrAccountMismatch, wallet, index, got.Address(), account.Address())
	}
	return sig, err
}

// sign derives the key of account index of wallet and signs hash with it,
// unless want is set and the key's public key is not *want. It returns the
// signature (zero when none was made) and the key's public key.
func (t *Token) sign(ctx context.Context, wallet string, index uint32, want *nano.PublicKey, hash nano.Hash) (nano.Signature, nano.PublicKey, error) {
	var sig nano.Signature
	var pub nano.PublicKey
	err := t.withAccountKey(ctx, wallet, index, func(k *nano.PrivateKey) {
		sk := nano.NewSigningKey(k)
		defer sk.Wipe()
		if pub = sk.Public(); want == nil || pub == *want {
			sig = sk.Sign(hash[:])
		}
	})
	if err != nil {
		return nano.Signature{}, nano.PublicKey{}, err
	}
	return sig, pub, nil
}

// ExportWallet returns the wallet under label as a document holding its
// sealed blob and metadata (label, id, kind, scheme, and the master key's
// check value unless the token cannot compute it): ciphertext only, for
// RestoreWallet on a token with the same master key.
func (t *Token) ExportWallet(ctx context.Context, label string) ([]byte, error) {
	if err := validLabel(label); err != nil {
		return nil, err
	}
	var out []byte
	err := t.do(ctx, func(s *session) error {
		b, err := s.findWallet(label)
		if err != nil {
			return err
		}
		mk, err := s.masterKey()
		if err != nil {
			return err
		}
		if b.scheme != mk.scheme {
			return fmt.Errorf("%w: wallet %q is sealed with %s, the master keys of token %q are for %s", ErrSchemeMismatch, label, b.scheme, t.name, mk.scheme)
		}
		check, err := s.optionalCheckValue(mk)
		if err != nil {
			return err
		}
		out, err = marshalExport(label, &b, check)
		return err
	})
	return out, err
}

// RestoreWallet stores a wallet exported by ExportWallet under label. It
// refuses an export made under another master key (ErrWrongMasterKey), one
// that does not unseal here (ErrSealBroken: altered ciphertext, or altered
// wallet id, version or kind), a taken label or a wallet id already stored
// (ErrWalletExists). The blob is stored exactly as exported.
//
// What proves that the export belongs to this token's master key is the
// unseal: the blob's GCM tag or MAC authenticates it under the key it was
// sealed with, so it opens under no other (but with probability 2^-128).
// The check values, when both the export and this token have one, only
// tell a wrong master key (ErrWrongMasterKey) from an altered blob before
// the unseal. When either lacks one (a token that makes its own GCM IVs
// cannot compute it) an export under another master key is refused as
// ErrSealBroken: the two cannot be told apart then.
func (t *Token) RestoreWallet(ctx context.Context, label string, export []byte) (WalletInfo, error) {
	if err := validLabel(label); err != nil {
		return WalletInfo{}, err
	}
	e, b, err := parseExport(export)
	if err != nil {
		return WalletInfo{}, err
	}
	t.createMu.Lock()
	defer t.createMu.Unlock()
	var info WalletInfo
	err = t.do(ctx, func(s *session) error {
		mk, err := s.masterKey()
		if err != nil {
			return err
		}
		check, err := s.optionalCheckValue(mk)
		if err != nil {
			return err
		}
		compared := check != "" && e.MasterKeyCheck != ""
		if compared && check != e.MasterKeyCheck {
			return fmt.Errorf("%w: export check value %s, token %q has %s", ErrWrongMasterKey, e.MasterKeyCheck, t.name, check)
		}
		secret := s.secret[offSecret : offSecret+b.kind.secretLen()]
		err = s.unseal(secret, &b)
		clear(secret)
		if err != nil {
			if !compared && errors.Is(err, ErrSealBroken) {
				return fmt.Errorf("restoring wallet %s: %w (without check values to compare, a wallet sealed under another master key and an altered one look alike)", b.id, err)
			}
			return fmt.Errorf("restoring wallet %s: %w", b.id, err)
		}
		if err := s.labelFree(label); err != nil {
			return err
		}
		if err := s.idFree(b.id); err != nil {
			return err
		}
		info, err = s.store(label, &b, mk)
		return err
	})
	return info, err
}

// idFree returns ErrWalletExists if a stored wallet has id.
func (s *session) idFree(id WalletID) error {
	ws, err := s.allWallets()
	if err != nil {
		return err
	}
	for _, w := range ws {
		if w.blob.id == id {
			return fmt.Errorf("%w: wallet %s is stored as %q", ErrWalletExists, id, w.label)
		}
	}
	return nil
}
