//go:build cgo

package hsm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/miekg/pkcs11"
)

var _ KeyStore = (*Token)(nil)

// Token is an open PKCS#11 token: a bounded pool of logged-in sessions and
// the operations nanokms performs with them. It is safe for concurrent use;
// at most PoolSize operations run on the token at once, the others wait for
// a session (or for their context, or for Close).
type Token struct {
	p    p11
	slot uint
	name string // label or serial, for messages

	slots   chan *poolSlot
	size    int
	closing chan struct{}
	once    sync.Once

	// mem holds the Token's copy of the PIN and every slot's secret
	// buffer, locked in RAM; freed by Close after every slot is back.
	mem *lockedMem
	pin []byte

	loginMu     sync.Mutex
	pinRejected error // ErrWrongPIN or ErrPINLocked once the token refused the PIN; never cleared

	mu      sync.Mutex // guards master and wallets
	master  *masterState
	wallets map[string]sealedBlob // sealed blobs by label, for Sign and PublicKey

	// createMu serialises, within the process, the operations that check
	// a label (or the master key) is free and then create the object.
	createMu sync.Mutex
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
)

// The layout fits the buffer (a negative array length does not compile).
var _ [slotSecretLen - endScratch]byte

// Open loads the module (once per process), finds the token, opens the first
// session and logs in with exactly one C_Login. A wrong PIN returns
// ErrWrongPIN and is never retried. CKR_USER_ALREADY_LOGGED_IN (another part
// of the process logged in) counts as success.
func Open(ctx context.Context, cfg Config) (*Token, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := loadModule(cfg.Module)
	if err != nil {
		return nil, err
	}
	return open(ctx, c, cfg)
}

// open is Open on a given PKCS#11 implementation; the tests pass a fake.
func open(ctx context.Context, p p11, cfg Config) (*Token, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	size := cfg.PoolSize
	if size == 0 {
		size = DefaultPoolSize
	}
	slot, err := findSlot(p, cfg.TokenLabel, cfg.TokenSerial)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pinLen := cfg.PIN.Len()
	mem, err := newLockedMem(pinLen + size*slotSecretLen)
	if err != nil {
		return nil, err
	}
	t := &Token{
		p:       p,
		slot:    slot,
		name:    cfg.TokenLabel,
		slots:   make(chan *poolSlot, size),
		size:    size,
		closing: make(chan struct{}),
		mem:     mem,
	}
	if t.name == "" {
		t.name = "serial " + cfg.TokenSerial
	}
	t.pin = mem.b[:pinLen:pinLen]
	copy(t.pin, cfg.PIN.bytes())

	first := &poolSlot{}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		mem.free()
		return nil, fmt.Errorf("hsm: token %q: C_OpenSession: %w", t.name, err)
	}
	first.sh, first.open = sh, true
	if err := t.login(sh); err != nil {
		_ = p.CloseSession(sh) // never C_Logout: see the package doc
		mem.free()
		return nil, err
	}
	for i := 0; i < size; i++ {
		s := first
		if i > 0 {
			s = &poolSlot{}
		}
		off := pinLen + i*slotSecretLen
		s.secret = mem.b[off : off+slotSecretLen : off+slotSecretLen]
		t.slots <- s
	}
	return t, nil
}

// findSlot returns the slot of the one initialised token matching label
// and serial (an empty one matches anything).
func findSlot(p p11, label, serial string) (uint, error) {
	ids, err := p.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("hsm: C_GetSlotList: %w", err)
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
			unreadable = append(unreadable, fmt.Errorf("C_GetTokenInfo(slot %d): %w", id, err))
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
		found = append(found, id)
	}
	what := fmt.Sprintf("label %q", label)
	if serial != "" {
		what += fmt.Sprintf(" serial %q", serial)
	}
	switch len(found) {
	case 0:
		if len(unreadable) > 0 {
			return 0, fmt.Errorf("%w: %s (%d slots could not be read: %w)", ErrTokenNotFound, what, len(unreadable), errors.Join(unreadable...))
		}
		return 0, fmt.Errorf("%w: %s", ErrTokenNotFound, what)
	case 1:
		return found[0], nil
	}
	return 0, fmt.Errorf("%w: %d tokens with %s", ErrTokenAmbiguous, len(found), what)
}

// login performs exactly one C_Login as the user, unless the token already
// refused the PIN, in which case it makes no call at all.
func (t *Token) login(sh pkcs11.SessionHandle) error {
	t.loginMu.Lock()
	defer t.loginMu.Unlock()
	if t.pinRejected != nil {
		return t.pinRejected
	}
	// The string aliases the locked PIN bytes: no copy on the Go heap.
	// pkcs11.Ctx.Login copies it into C memory for the call only.
	pin := unsafe.String(unsafe.SliceData(t.pin), len(t.pin))
	err := t.p.Login(sh, pkcs11.CKU_USER, pin)
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
	return fmt.Errorf("hsm: token %q: C_Login: %w", t.name, err)
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
		return fmt.Errorf("hsm: token %q: C_OpenSession: %w", t.name, err)
	}
	info, err := t.p.GetSessionInfo(sh)
	if err != nil {
		_ = t.p.CloseSession(sh)
		return fmt.Errorf("hsm: token %q: C_GetSessionInfo: %w", t.name, err)
	}
	if info.State == pkcs11.CKS_RO_PUBLIC_SESSION || info.State == pkcs11.CKS_RW_PUBLIC_SESSION {
		if err := t.login(sh); err != nil {
			_ = t.p.CloseSession(sh)
			return err
		}
		// Handles of private objects do not survive the end of a login.
		t.forgetMaster()
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
func (t *Token) do(ctx context.Context, op func(*session) error) error {
	s, err := t.acquire(ctx)
	if err != nil {
		return err
	}
	defer t.release(s)
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

// Close waits for running operations to finish, closes every session and
// wipes the Token's copy of the PIN. Callers waiting for a session, and
// every later call, get ErrClosed. Close never calls C_Logout (the login is
// shared with the rest of the process and ends when its last session
// closes). It is idempotent and always returns nil.
func (t *Token) Close() error {
	t.once.Do(func() {
		close(t.closing)
		for i := 0; i < t.size; i++ {
			s := <-t.slots
			if s.open {
				_ = t.p.CloseSession(s.sh)
				s.open = false
			}
		}
		t.mem.free()
		t.pin = nil
	})
	return nil
}
