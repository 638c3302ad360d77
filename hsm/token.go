//go:build cgo

package hsm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unsafe"

	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/internal/p11uri"
)

var _ KeyStore = (*Token)(nil)

// PKCS11 reports whether this build can open PKCS#11 tokens: true with cgo
// (this file); false without, where Open returns ErrNoCgo. Package
// internal/buildinfo states the same for the hot side, which does not
// link hsm (TestPKCS11Constant checks that the two agree).
const PKCS11 = true

// Token is an open PKCS#11 token: a bounded pool of logged-in sessions and
// the operations nanokms performs with them. It is safe for concurrent use;
// at most PoolSize operations run on the token at once, the others wait for
// a session (or for their context, or for Close).
type Token struct {
	// p and slot are the module instance and the slot the Token works
	// with. Recovery (recover.go) replaces them while it holds every pool
	// slot; operations read them while they hold one.
	p    p11
	slot uint
	name string // label, serial or URI, for messages
	// want is how the token is found again after a loss: the configured
	// label, serial and URI, with the serial the token had at Open.
	want Config
	// life ends when Close starts: it bounds recovery and its probes.
	life     context.Context
	endLife  context.CancelFunc
	av       availability
	recovery recoveryConfig

	// caps is what the probe found when the Token was opened; it does not
	// change (ProbeWalletStorage fills WalletStorage, under mu).
	caps         Capabilities
	unknownAttrs map[uint]bool // attribute types the token does not know
	dir          *walletDir    // nil: wallets are data objects on the token

	slots   chan *poolSlot
	size    int
	closing chan struct{}
	once    sync.Once

	// mem holds every slot's secret buffer, locked in RAM; freed by Close
	// after every slot is back. pinMem holds the Token's copy of the PIN
	// (replaced by ChangePIN), guarded by loginMu.
	mem    *lockedMem
	pinMem *lockedMem
	pin    []byte

	loginMu     sync.Mutex
	pinRejected error // ErrWrongPIN or ErrPINLocked once the token refused the PIN; never cleared

	mu      sync.Mutex // guards master, wallets, masterID and instanceSawMaster
	master  *masterState
	wallets map[string]sealedBlob // sealed blobs by label, for Sign and PublicKey
	// masterID is the CKA_ID of the master key when it was first seen
	// (nil: never seen): a token found again after a loss must hold the
	// same key. instanceSawMaster says the module instance in use has
	// shown it (see recover.go).
	masterID          []byte
	instanceSawMaster bool

	// createMu serialises, within the process, the operations that check
	// a label (or the master key) is free and then create the object.
	createMu sync.Mutex

	// cp is the session-object copy of the master keys that unseals, or
	// nil (sessioncopy.go). cpMu guards it: read-locked while an unseal
	// uses its handles, write-locked to replace or drop it. cpMake lets
	// one operation at a time make a copy; cps (under mu) is what is
	// known about it besides.
	cpMu   sync.RWMutex
	cp     *sessionCopy
	cpMake sync.Mutex
	cps    copyState
}

// poolSlot is one place in the pool: a session (when open) and the locked
// buffer that operations on it use for secrets.
type poolSlot struct {
	sh     pkcs11.SessionHandle
	open   bool
	secret []byte // slotSecretLen bytes of locked memory
}

// slotSecretLen is the locked scratch each session gets: the unsealed
// secret, the derived account key, and the BIP39 seed and normalised
// mnemonic of an import.
const slotSecretLen = 1024

// Offsets in a slot's secret buffer.
const (
	offSecret  = 0   // unsealed wallet secret, up to 64 bytes
	offKey     = 64  // derived account private key, 32 bytes
	offBIP39   = 128 // BIP39 seed being imported, 64 bytes
	offPhrase  = 256 // normalised mnemonic, up to bip39MaxPhrase bytes
	endScratch = offPhrase + bip39MaxPhrase
	offUnseal  = 512 // the token's output while unsealing (plaintext and padding)
	unsealLen  = 128
)

// The layout fits the buffer (a negative array length does not compile).
var (
	_ [offUnseal - endScratch]byte
	_ [slotSecretLen - offUnseal - unsealLen]byte
)

// Open loads the module (once per process, with Config.ModuleParams),
// finds the token, opens the first session, logs in with exactly one
// C_Login, and probes what the token offers (Capabilities). A wrong PIN
// returns ErrWrongPIN and is never retried. CKR_USER_ALREADY_LOGGED_IN
// (another part of the process logged in) counts as success.
func Open(ctx context.Context, cfg Config) (*Token, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := loadModule(cfg.Module, cfg.ModuleParams)
	if err != nil {
		return nil, err
	}
	t, err := open(ctx, m, cfg)
	if err != nil {
		return nil, err
	}
	t.caps.Module.Path = m.path
	if freshModules && !cfg.NoModuleReload {
		module, params := cfg.Module, cfg.ModuleParams
		t.recovery.fresh = func() (p11, error) { return loadFreshModule(module, params) }
		t.recovery.present = func(ctx context.Context, want Config) error {
			return presentInFreshProcess(ctx, module, params, want)
		}
	}
	return t, nil
}

// open is Open on a given PKCS#11 implementation; the tests pass a fake.
func open(ctx context.Context, raw p11, cfg Config) (*Token, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := traced{p: raw}
	size := cfg.PoolSize
	if size == 0 {
		size = DefaultPoolSize
	}
	var dir *walletDir
	if cfg.WalletDir != "" {
		var err error
		if dir, err = openWalletDir(cfg.WalletDir); err != nil {
			return nil, err
		}
	}
	slot, err := findSlot(p, cfg)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ti, err := p.GetTokenInfo(slot)
	if err != nil {
		return nil, fmt.Errorf("hsm: token %q: %w", tokenName(cfg), err)
	}
	mem, err := newLockedMem(size * slotSecretLen)
	if err != nil {
		return nil, err
	}
	pinMem, err := newLockedMem(cfg.PIN.Len())
	if err != nil {
		mem.free()
		return nil, err
	}
	t := &Token{
		p:        p,
		slot:     slot,
		name:     tokenName(cfg),
		want:     Config{TokenLabel: cfg.TokenLabel, TokenSerial: ti.SerialNumber, URI: cfg.URI},
		recovery: newRecoveryConfig(cfg),
		dir:      dir,
		slots:    make(chan *poolSlot, size),
		size:     size,
		closing:  make(chan struct{}),
		mem:      mem,
		pinMem:   pinMem,
	}
	t.life, t.endLife = context.WithCancel(context.Background())
	t.pin = pinMem.b
	copy(t.pin, cfg.PIN.bytes())
	fail := func(err error) (*Token, error) {
		t.endLife()
		mem.free()
		pinMem.free()
		return nil, err
	}

	first := &poolSlot{}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fail(fmt.Errorf("hsm: token %q: %w", t.name, err))
	}
	first.sh, first.open = sh, true
	if err := t.login(p, sh); err != nil {
		_ = p.CloseSession(sh) // never C_Logout: see the package doc
		return fail(err)
	}
	caps, err := probe(p, slot, nil)
	if err != nil {
		_ = p.CloseSession(sh)
		return fail(fmt.Errorf("hsm: token %q: probing what it offers: %w", t.name, err))
	}
	caps.Module.Params = cfg.ModuleParams != ""
	t.caps = *caps
	t.unknownAttrs = omittedAttributes(caps.Attributes)
	for i := 0; i < size; i++ {
		s := first
		if i > 0 {
			s = &poolSlot{}
		}
		off := i * slotSecretLen
		s.secret = mem.b[off : off+slotSecretLen : off+slotSecretLen]
		t.slots <- s
	}
	t.prepare(ctx)
	return t, nil
}

// prepare looks at the master keys once the Token is open, so that their
// session copy (sessioncopy.go) is made now when the token has usable
// ones. Whatever it finds is left for the operations to report: a token
// without a master key opens as well.
func (t *Token) prepare(ctx context.Context) {
	s, err := t.acquire(ctx)
	if err != nil {
		return
	}
	defer t.release(s)
	if err := t.ensureSession(s); err != nil {
		return
	}
	_, _ = (&session{t: t, p: t.p, sh: s.sh, secret: s.secret}).masterKey()
}

// omittedAttributes returns the attribute types left out of this token's
// templates: those it does not know (CKR_ATTRIBUTE_TYPE_INVALID), and the
// v2.40 additions CKA_COPYABLE and CKA_DESTROYABLE where it knows but does
// not enforce them. Those would change nothing, and NSS softokn 3.87,
// which takes them on session objects, fails C_GenerateKey of a token
// object that carries them (CKR_GENERAL_ERROR: its database has no place
// for them). Either way they are reported as not enforced.
func omittedAttributes(as []AttributeSupport) map[uint]bool {
	out := map[uint]bool{}
	for _, a := range as {
		switch {
		case !a.Known:
			out[attrTypes[a.Attribute]] = true
		case !a.Enforced && (a.Attribute == AttrCopyable || a.Attribute == AttrDestroyable):
			out[attrTypes[a.Attribute]] = true
		}
	}
	return out
}

// tokenName is how messages name the configured token.
func tokenName(cfg Config) string {
	switch {
	case cfg.TokenLabel != "":
		return cfg.TokenLabel
	case cfg.TokenSerial != "":
		return "serial " + cfg.TokenSerial
	case cfg.URI != nil:
		if l, ok := cfg.URI.Get(p11uri.Token); ok {
			return l
		}
		return cfg.URI.String()
	}
	return "?"
}

// Capabilities returns what the probe found when the Token was opened
// (and, after ProbeWalletStorage, about wallet storage).
func (t *Token) Capabilities() Capabilities {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.caps
	c.Mechanisms = append([]MechanismInfo(nil), c.Mechanisms...)
	c.Schemes = append([]SchemeSupport(nil), c.Schemes...)
	c.Attributes = append([]AttributeSupport(nil), c.Attributes...)
	c.Wrap = append([]string(nil), c.Wrap...)
	c.Unwrap = append([]string(nil), c.Unwrap...)
	return c
}

// WalletDir returns the wallet directory, or "" when wallets are data
// objects on the token.
func (t *Token) WalletDir() string {
	if t.dir == nil {
		return ""
	}
	return t.dir.path
}

// findSlot returns the slot of the one initialised token matching the
// label, serial and URI of cfg (what is not set matches anything).
func findSlot(p p11, cfg Config) (uint, error) {
	label, serial, uri := cfg.TokenLabel, cfg.TokenSerial, cfg.URI
	ids, err := p.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("hsm: listing the slots: %w", err)
	}
	var lib pkcs11.Info
	if uri != nil {
		if lib, err = p.GetInfo(); err != nil {
			return 0, fmt.Errorf("hsm: reading the module's description: %w", err)
		}
	}
	var (
		found      []uint
		unreadable []error
	)
	for _, id := range ids {
		ti, err := p.GetTokenInfo(id)
		if err != nil {
			// Another token of the module may be unreadable for a moment
			// (SoftHSM, while another process writes it): it is not the
			// one we look for unless nothing else matches.
			unreadable = append(unreadable, fmt.Errorf("slot %d: %w", id, err))
			continue
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		if label != "" && ti.Label != label {
			continue
		}
		if serial != "" && ti.SerialNumber != serial {
			continue
		}
		if uri != nil {
			si, err := p.GetSlotInfo(id)
			if err != nil {
				unreadable = append(unreadable, fmt.Errorf("slot %d: %w", id, err))
				continue
			}
			d := p11uri.TokenDescription{
				Token: ti.Label, Manufacturer: ti.ManufacturerID, Serial: ti.SerialNumber, Model: ti.Model,
				LibraryManufacturer: lib.ManufacturerID, LibraryDescription: lib.LibraryDescription,
				LibraryVersion:   versionString(lib.LibraryVersion),
				SlotManufacturer: si.ManufacturerID, SlotDescription: si.SlotDescription, SlotID: uint64(id),
			}
			if !uri.MatchesToken(d) {
				continue
			}
		}
		found = append(found, id)
	}
	var what []string
	if label != "" {
		what = append(what, fmt.Sprintf("label %q", label))
	}
	if serial != "" {
		what = append(what, fmt.Sprintf("serial %q", serial))
	}
	if uri != nil {
		what = append(what, fmt.Sprintf("URI %s", uri))
	}
	w := strings.Join(what, " ")
	switch len(found) {
	case 0:
		if len(unreadable) > 0 {
			return 0, fmt.Errorf("%w: %s (%d slots could not be read: %w)", ErrTokenNotFound, w, len(unreadable), errors.Join(unreadable...))
		}
		return 0, fmt.Errorf("%w: %s", ErrTokenNotFound, w)
	case 1:
		return found[0], nil
	}
	return 0, fmt.Errorf("%w: %d tokens with %s", ErrTokenAmbiguous, len(found), w)
}

// login performs exactly one C_Login as the user on the session sh of the
// module instance p, unless the token already refused the PIN, in which
// case it makes no call at all.
func (t *Token) login(p p11, sh pkcs11.SessionHandle) error {
	t.loginMu.Lock()
	defer t.loginMu.Unlock()
	if t.pinRejected != nil {
		return t.pinRejected
	}
	// The string aliases the locked PIN bytes: no copy on the Go heap.
	// pkcs11.Ctx.Login copies it into C memory for the call only.
	pin := unsafe.String(unsafe.SliceData(t.pin), len(t.pin))
	err := p.Login(sh, pkcs11.CKU_USER, pin)
	switch {
	case err == nil, isCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN):
		return nil
	case isCode(err, pkcs11.CKR_PIN_INCORRECT):
		t.pinRejected = fmt.Errorf("%w: token %q", ErrWrongPIN, t.name)
		return t.pinRejected
	case isCode(err, pkcs11.CKR_PIN_LOCKED), isCode(err, pkcs11.CKR_PIN_EXPIRED):
		t.pinRejected = fmt.Errorf("%w: token %q: %w", ErrPINLocked, t.name, err)
		return t.pinRejected
	}
	return fmt.Errorf("hsm: token %q: logging in: %w", t.name, err)
}

// ChangePIN changes the user PIN (C_SetPIN, in a logged-in session, from
// the PIN the Token was opened with to newPIN), and keeps newPIN for later
// logins. The token's PIN-length rules apply (CKR_PIN_LEN_RANGE,
// Capabilities().Token.MinPINLen and MaxPINLen). The caller wipes newPIN.
func (t *Token) ChangePIN(ctx context.Context, newPIN *PIN) error {
	if newPIN == nil || newPIN.Len() == 0 {
		return &ConfigError{Field: "new PIN", Reason: "empty"}
	}
	nm, err := newLockedMem(newPIN.Len())
	if err != nil {
		return err
	}
	copy(nm.b, newPIN.bytes())
	err = t.do(ctx, func(s *session) error {
		t.loginMu.Lock()
		defer t.loginMu.Unlock()
		old := unsafe.String(unsafe.SliceData(t.pin), len(t.pin))
		nw := unsafe.String(unsafe.SliceData(nm.b), len(nm.b))
		if err := s.p.SetPIN(s.sh, old, nw); err != nil {
			if isCode(err, pkcs11.CKR_PIN_INCORRECT) {
				return fmt.Errorf("%w: token %q: changing the PIN: %w", ErrWrongPIN, t.name, err)
			}
			return fmt.Errorf("hsm: token %q: changing the PIN: %w", t.name, err)
		}
		t.pinMem.free()
		t.pinMem, t.pin = nm, nm.b
		return nil
	})
	if err != nil {
		nm.free()
	}
	return err
}

// session is what an operation works with: one pooled session and its
// locked scratch memory.
type session struct {
	t      *Token
	p      p11
	sh     pkcs11.SessionHandle
	secret []byte
}

// acquire takes a slot from the pool, waiting if all are busy.
func (t *Token) acquire(ctx context.Context) (*poolSlot, error) {
	select {
	case <-t.closing:
		return nil, ErrClosed
	default:
	}
	select {
	case s := <-t.slots:
		select {
		case <-t.closing:
			t.slots <- s // Close is collecting the slots
			return nil, ErrClosed
		default:
			return s, nil
		}
	case <-t.closing:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *Token) release(s *poolSlot) {
	clear(s.secret)
	t.slots <- s
}

// ensureSession opens a session in s if it has none, logging in when the
// new session is not logged in (which happens only when every session of
// the process to this token was closed, that is after a session loss).
func (t *Token) ensureSession(s *poolSlot) error {
	if s.open {
		return nil
	}
	sh, err := t.p.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("hsm: token %q: %w", t.name, err)
	}
	info, err := t.p.GetSessionInfo(sh)
	if err != nil {
		_ = t.p.CloseSession(sh)
		return fmt.Errorf("hsm: token %q: %w", t.name, err)
	}
	if info.State == pkcs11.CKS_RO_PUBLIC_SESSION || info.State == pkcs11.CKS_RW_PUBLIC_SESSION {
		if err := t.login(t.p, sh); err != nil {
			_ = t.p.CloseSession(sh)
			return err
		}
		// Handles of private objects do not survive the end of a login,
		// and the session copy went with the holder session.
		t.forgetMaster()
		t.endCopy("not made yet: the login was lost and made again")
	}
	s.sh, s.open = sh, true
	return nil
}

// discard closes a session that failed and forgets cached handles.
func (t *Token) discard(s *poolSlot) {
	if s.open {
		_ = t.p.CloseSession(s.sh) // it may already be gone; nothing to do about an error
	}
	s.open = false
	t.forgetMaster()
	t.forgetWallets()
}

// do runs op on a pooled session. When op (or opening the session) fails
// with a session-lost code, the session is discarded and op runs once more
// on a fresh one; a second such failure returns ErrSessionLost. When op
// fails because a cached object handle went stale, the caches are dropped
// and op runs once more on the same session. op must be safe to repeat: it
// re-reads what it needs. ctx bounds only the wait for a session: a PKCS#11
// call in progress cannot be interrupted.
//
// While the token is unavailable do returns ErrTokenUnavailable at once,
// without calling the module. When op fails in a way the token's absence
// could explain (suspect), do checks the token (verify); if it is gone,
// the Token turns unavailable, recovery starts (recover.go), and do
// returns ErrTokenUnavailable.
func (t *Token) do(ctx context.Context, op func(*session) error) error {
	if err := t.unavailable(); err != nil {
		return err
	}
	s, err := t.acquire(ctx)
	if err != nil {
		return err
	}
	defer t.release(s)
	// The token may have been found lost while this call waited.
	if err := t.unavailable(); err != nil {
		return err
	}
	err = t.run(s, op)
	if err == nil || !suspect(err) {
		return err
	}
	// The error may be the token's absence in disguise (SoftHSM answers
	// a lookup on a token whose files are gone with "no object"): look.
	if cause := t.verify(s); cause != nil {
		return t.lose(cause, err)
	}
	return err
}

// run is do's work on the slot s: op, retried as do describes.
func (t *Token) run(s *poolSlot, op func(*session) error) error {
	var last error
	staleRetried := false
	for attempt := 0; attempt < 2; attempt++ {
		if err := t.ensureSession(s); err != nil {
			if !isSessionLost(err) {
				return err
			}
			last = err
			t.discard(s)
			continue
		}
		err := op(&session{t: t, p: t.p, sh: s.sh, secret: s.secret})
		clear(s.secret)
		if isStaleHandle(err) && !staleRetried {
			// A cached handle went stale (the login was lost and found
			// again, or another process replaced the object): look it
			// up again, once, on the same session.
			staleRetried = true
			t.forgetMaster()
			t.forgetWallets()
			attempt--
			continue
		}
		if !isSessionLost(err) {
			return err
		}
		last = err
		t.discard(s)
	}
	return fmt.Errorf("%w: token %q: %w", ErrSessionLost, t.name, last)
}

// isStaleHandle reports whether err says an object handle is not (or no
// longer) valid.
func isStaleHandle(err error) bool {
	return isCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) || isCode(err, pkcs11.CKR_KEY_HANDLE_INVALID)
}

// Close waits for running operations to finish, destroys the session copy
// of the master keys, closes every session and wipes the Token's copy of
// the PIN. Callers waiting for a session, and
// every later call, get ErrClosed. Close never calls C_Logout (the login is
// shared with the rest of the process and ends when its last session
// closes). It is idempotent and always returns nil.
func (t *Token) Close() error {
	t.once.Do(func() {
		close(t.closing)
		t.endLife()
		t.stopRecovery()
		for i := 0; i < t.size; i++ {
			s := <-t.slots
			if s.open {
				_ = t.p.CloseSession(s.sh)
				s.open = false
			}
		}
		t.endCopy("the token is closed")
		t.mem.free()
		t.loginMu.Lock()
		t.pinMem.free()
		t.pin = nil
		t.loginMu.Unlock()
	})
	return nil
}
