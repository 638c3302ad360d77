//go:build cgo

package hsm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/internal/backoff"
)

// Token loss and recovery.
//
// A token can go away under a running Token: a hardware token is pulled
// out, a network HSM drops the connection, a software token's files are
// renamed, hidden by a mount or emptied. Modules say so in different
// ways: CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, lost sessions, or (SoftHSM)
// nothing at all: its lookups just stop finding objects. So when an
// operation fails in a way the token's absence could explain (suspect),
// the Token looks (verify): is the token still in its slot, with the same
// serial, initialised, answering on a session, and does it still show the
// master key it has shown before? If not, the Token is unavailable: every
// call returns ErrTokenUnavailable at once, without touching the module,
// and one goroutine reconnects with a capped exponential backoff
// (attempt): it closes every pooled session, finds the token again by
// label, serial and URI (C_GetSlotList: slot ids may change), opens a
// session, logs in with exactly one C_Login when the session is not logged
// in, and checks the master key. A refused PIN (CKR_PIN_INCORRECT,
// CKR_PIN_LOCKED) ends recovery for good: it is never sent again.
//
// Some modules never see a token again once it has gone, whatever their
// caller does short of C_Finalize and C_Initialize: SoftHSM 2.6 marks a
// token whose directory vanished as invalid for the life of its
// C_Initialize, and never re-reads an object file it once read and then
// found empty. This package never calls C_Finalize (other users of the
// module in the process, crypto11 among them, would lose their sessions
// and logins). Instead, when the module instance in use cannot find the
// token (or no longer shows a master key it had shown) and a fresh process
// of the same module does see the token (reload.go), the Token loads a
// fresh instance of the module beside the old one, initialises it with
// the same parameters, and continues on it. The old instance stays loaded
// and initialised, its other users untouched; each fresh instance costs
// about a megabyte that is never returned, at most maxReloads per Token.

// maxReloads bounds the fresh module instances one Token loads.
const maxReloads = 16

// recoveryConfig is how a Token recovers.
type recoveryConfig struct {
	min, max time.Duration
	// fresh loads a fresh instance of the module, beside the one in use;
	// nil: reloading is off (Config.NoModuleReload) or not possible here.
	fresh func() (p11, error)
	// present reports whether a fresh process of the module sees the
	// token (nil) or why not.
	present func(ctx context.Context, want Config) error
}

func newRecoveryConfig(cfg Config) recoveryConfig {
	rc := recoveryConfig{min: cfg.RecoverMin, max: cfg.RecoverMax}
	if rc.min <= 0 {
		rc.min = DefaultRecoverMin
	}
	if rc.max <= 0 {
		rc.max = DefaultRecoverMax
	}
	return rc
}

// availability is a Token's TokenStatus, and what waits on it.
type availability struct {
	mu      sync.Mutex
	st      TokenStatus
	changed chan struct{} // closed and replaced when st changes
	running bool          // a recovery goroutine runs
	done    chan struct{} // closed when it has ended
	closed  bool          // Close has started: no recovery starts
}

// Status returns the Token's availability.
func (t *Token) Status() TokenStatus {
	t.av.mu.Lock()
	defer t.av.mu.Unlock()
	st := t.av.st
	st.Available = !t.av.down()
	return st
}

func (a *availability) down() bool { return a.st.Cause != nil }

// Available reports whether the token can be used now, and a channel
// closed when the Token's status changes: its availability, and the
// outcome of each recovery attempt.
func (t *Token) Available() (ok bool, changed <-chan struct{}) {
	t.av.mu.Lock()
	defer t.av.mu.Unlock()
	if t.av.changed == nil {
		t.av.changed = make(chan struct{})
	}
	return !t.av.down(), t.av.changed
}

// notify wakes the waiters of Available; a.mu is held.
func (a *availability) notify() {
	if a.changed != nil {
		close(a.changed)
		a.changed = nil
	}
}

// unavailable returns the error of every call while the token is
// unavailable, or nil.
func (t *Token) unavailable() error {
	t.av.mu.Lock()
	defer t.av.mu.Unlock()
	if !t.av.down() {
		return nil
	}
	return t.unavailableErr(t.av.st)
}

func (t *Token) unavailableErr(st TokenStatus) error {
	if st.Final {
		return fmt.Errorf("%w: token %q: recovery stopped, an operator must act: %w", ErrTokenUnavailable, t.name, st.Cause)
	}
	return fmt.Errorf("%w: token %q (reconnecting since %s): %w", ErrTokenUnavailable, t.name, st.Since.UTC().Format(time.RFC3339), st.Cause)
}

// pinRefused reports whether err says the token refused the PIN.
func pinRefused(err error) bool { return errors.Is(err, ErrWrongPIN) || errors.Is(err, ErrPINLocked) }

// lose marks the token unavailable with cause (what verify found; seen is
// the operation's error that led there) and starts recovery, unless the
// token refused the PIN. It returns the operation's error. The error
// does not wrap seen: a "wallet not found" from a token that is gone was
// not true.
func (t *Token) lose(cause, seen error) error {
	if seen != nil && !errors.Is(cause, seen) {
		cause = fmt.Errorf("%w (the operation failed with: %v)", cause, seen)
	}
	t.av.mu.Lock()
	if !t.av.down() {
		t.av.st = TokenStatus{Cause: cause, Since: time.Now(), Losses: t.av.st.Losses + 1, Reloads: t.av.st.Reloads}
		t.av.notify()
	}
	if pinRefused(cause) && !t.av.st.Final {
		t.av.st.Cause, t.av.st.Final = cause, true
		t.av.notify()
	}
	start := !t.av.running && !t.av.closed && !t.av.st.Final
	if start {
		t.av.running, t.av.done = true, make(chan struct{})
	}
	done, st := t.av.done, t.av.st
	t.av.mu.Unlock()
	if start {
		go t.recoverLoop(done)
	}
	return t.unavailableErr(st)
}

// stopRecovery makes sure no recovery runs or starts; for Close, after
// t.life has ended.
func (t *Token) stopRecovery() {
	t.av.mu.Lock()
	t.av.closed = true
	running, done := t.av.running, t.av.done
	t.av.mu.Unlock()
	if running {
		<-done
	}
}

// suspect reports whether err could be the token's absence in disguise:
// any return code from the module, a lost session, and the "not found"
// and "broken" answers a token gives once its objects are gone.
func suspect(err error) bool {
	switch {
	case errors.Is(err, ErrTokenUnavailable), errors.Is(err, ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case codeOf(err) != 0, pinRefused(err),
		errors.Is(err, ErrSessionLost), errors.Is(err, ErrWalletNotFound),
		errors.Is(err, ErrMasterKeyMissing), errors.Is(err, ErrSealBroken):
		return true
	}
	return false
}

// Errors verify and recovery report as causes.
var (
	errMasterGone  = errors.New("hsm: the master key the token showed before is no longer visible (its objects are gone)")
	errOtherMaster = errors.New("hsm: the token holds another master key than before")
	errOtherToken  = errors.New("hsm: the slot no longer holds the token (another label or serial, or not initialised)")
)

// verify checks, for the caller holding the slot s, that the token is
// still there and usable: its slot answers with the same label and
// serial, it is initialised, a session opens (logged in, if need be), the
// master key it showed before is still visible, and the wallet directory
// is still a directory. It returns nil if so, else what is wrong. The
// check runs on a session of its own when s has one (the operation that
// failed may have left it busy), else on a new session for s.
func (t *Token) verify(s *poolSlot) error {
	ti, err := t.p.GetTokenInfo(t.slot)
	if err != nil {
		return fmt.Errorf("hsm: reading the token's description: %w", err)
	}
	if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 ||
		(t.want.TokenLabel != "" && ti.Label != t.want.TokenLabel) ||
		(t.want.TokenSerial != "" && ti.SerialNumber != t.want.TokenSerial) {
		return errOtherToken
	}
	sh := s.sh
	if s.open {
		if sh, err = t.p.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION); err != nil {
			return fmt.Errorf("hsm: opening a session: %w", err)
		}
		// s's session keeps the process's login: closing this one does
		// not log out.
		defer func() { _ = t.p.CloseSession(sh) }()
		info, err := t.p.GetSessionInfo(sh)
		if err != nil {
			return fmt.Errorf("hsm: the token's session: %w", err)
		}
		if info.State == pkcs11.CKS_RO_PUBLIC_SESSION || info.State == pkcs11.CKS_RW_PUBLIC_SESSION {
			// The login went (and s's session, and the session copy's,
			// with it): s is of no use.
			t.discard(s)
			t.endCopy("not made yet: the login was lost and made again")
			if err := t.login(t.p, sh); err != nil {
				return err
			}
		}
	} else {
		if err := t.ensureSession(s); err != nil {
			return err
		}
		sh = s.sh
	}
	t.mu.Lock()
	saw := t.masterID != nil
	t.mu.Unlock()
	if saw {
		sess := &session{t: t, p: t.p, sh: sh, secret: s.secret}
		if _, err := sess.findMaster(); err != nil {
			if errors.Is(err, ErrMasterKeyMissing) {
				return errMasterGone
			}
			return err
		}
	}
	if t.dir != nil {
		if _, err := openWalletDir(t.dir.path); err != nil {
			return err
		}
	}
	return nil
}

// Check looks at the token now (as verify does after a suspect error) and
// returns nil if it is usable; if it is gone, the Token turns unavailable
// and Check returns ErrTokenUnavailable. A service calls it now and then
// so that its health follows the token even when no request comes.
func (t *Token) Check(ctx context.Context) error {
	if err := t.unavailable(); err != nil {
		return err
	}
	s, err := t.acquire(ctx)
	if err != nil {
		return err
	}
	defer t.release(s)
	if err := t.unavailable(); err != nil {
		return err
	}
	if cause := t.verify(s); cause != nil {
		return t.lose(cause, nil)
	}
	return nil
}

// recoverLoop runs attempts with a capped exponential backoff until one
// succeeds, the PIN is refused, or the Token closes.
func (t *Token) recoverLoop(done chan struct{}) {
	defer close(done)
	pace := backoff.Capped{Min: t.recovery.min, Max: t.recovery.max}
	for {
		var err error
		if !backoff.Sleep(t.life, pace.Next()) {
			err = ErrClosed
		} else {
			err = t.attempt()
		}
		// Whether to go on is decided, and running cleared, in the same
		// critical section as the status: a loss noticed right after a
		// recovery starts a new one.
		t.av.mu.Lock()
		switch {
		case errors.Is(err, ErrClosed):
		case err == nil:
			t.av.st = TokenStatus{Losses: t.av.st.Losses, Reloads: t.av.st.Reloads}
			t.av.notify()
		case pinRefused(err):
			t.av.st.Attempts++
			t.av.st.Cause, t.av.st.Final = err, true
			t.av.notify()
		default:
			t.av.st.Attempts++
			t.av.st.Cause = err
			t.av.notify()
		}
		stop := err == nil || errors.Is(err, ErrClosed) || t.av.st.Final
		if stop {
			t.av.running = false
		}
		t.av.mu.Unlock()
		if stop {
			return
		}
	}
}

// takeAll takes every slot of the pool, waiting for running operations,
// or returns ErrClosed.
func (t *Token) takeAll() ([]*poolSlot, error) {
	all := make([]*poolSlot, 0, t.size)
	for len(all) < t.size {
		select {
		case s := <-t.slots:
			all = append(all, s)
		case <-t.closing:
			for _, s := range all {
				t.slots <- s
			}
			return nil, ErrClosed
		}
	}
	return all, nil
}

// attempt is one try at reconnecting. It holds every pool slot, so no
// operation runs meanwhile.
func (t *Token) attempt() error {
	all, err := t.takeAll()
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range all {
			t.slots <- s
		}
	}()
	for _, s := range all {
		if s.open {
			_ = t.p.CloseSession(s.sh) // it may be gone already
			s.open = false
		}
	}
	t.forgetMaster()
	t.forgetWallets()
	t.endCopy("not made yet: the token is being reconnected")
	err = t.reconnect(t.p, all[0])
	if err == nil || pinRefused(err) || !t.stale(err) {
		return err
	}
	// The module instance in use does not see the token (or its master
	// key) again; a fresh instance might.
	t.av.mu.Lock()
	reloads := t.av.st.Reloads
	t.av.mu.Unlock()
	switch {
	case t.recovery.fresh == nil || t.recovery.present == nil:
		return err
	case reloads >= maxReloads:
		return fmt.Errorf("%w; %d fresh module instances were loaded already: restart the process", err, reloads)
	}
	if perr := t.recovery.present(t.life, t.want); perr != nil {
		return fmt.Errorf("%w; a fresh process of the module does not see it either: %v", err, perr)
	}
	if s := all[0]; s.open { // reconnect got as far as a session
		_ = t.p.CloseSession(s.sh)
		s.open = false
	}
	t.av.mu.Lock()
	t.av.st.Reloads++
	t.av.mu.Unlock()
	np, lerr := t.recovery.fresh()
	if lerr != nil {
		return fmt.Errorf("%w; loading a fresh instance of the module: %w", err, lerr)
	}
	return t.reconnect(traced{p: np}, all[0])
}

// stale reports whether err, from reconnect, says the module instance in
// use has lost sight of the token: it finds no such token (or cannot read
// it), or it no longer shows the master key it had shown.
func (t *Token) stale(err error) bool {
	if errors.Is(err, ErrTokenNotFound) || errors.Is(err, errOtherToken) {
		return true
	}
	t.mu.Lock()
	saw := t.instanceSawMaster
	t.mu.Unlock()
	return saw && errors.Is(err, errMasterGone)
}

// reconnect finds the token again on the module instance p (which becomes
// the Token's once it shows the token), opens a session into s, logs in
// if that session is not logged in, and checks the master key.
func (t *Token) reconnect(p p11, s *poolSlot) error {
	slot, err := findSlot(p, t.want)
	if err != nil {
		return err
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("hsm: token %q: %w", t.name, err)
	}
	info, err := p.GetSessionInfo(sh)
	if err == nil && (info.State == pkcs11.CKS_RO_PUBLIC_SESSION || info.State == pkcs11.CKS_RW_PUBLIC_SESSION) {
		err = t.login(p, sh)
	}
	if err != nil {
		_ = p.CloseSession(sh)
		return fmt.Errorf("hsm: token %q: %w", t.name, err)
	}
	if p != t.p {
		t.mu.Lock()
		t.instanceSawMaster = false
		t.mu.Unlock()
	}
	t.p, t.slot = p, slot
	s.sh, s.open = sh, true
	t.mu.Lock()
	saw := t.masterID != nil
	t.mu.Unlock()
	if !saw {
		return nil
	}
	sess := &session{t: t, p: p, sh: sh, secret: s.secret}
	_, err = sess.masterKey()
	clear(s.secret)
	if errors.Is(err, ErrMasterKeyMissing) {
		return errMasterGone
	}
	return err
}
