//go:build cgo

package hsm

import (
	"bytes"
	"fmt"

	"github.com/miekg/pkcs11"
)

// The session copy of the master keys.
//
// Some tokens pay for every use of a token key: NSS softokn 3.87 reads
// the key from its SQLite key database on every C_DecryptInit (about
// 230 µs, most of a signature through it; docs/BENCHMARKS.md), while a
// session object, which it keeps in memory, costs about 1.4 µs. So a
// Token keeps, where the token allows it, a session-object copy of its
// master keys and unseals with it:
//
//   - The copy is made (C_CopyObject with CKA_TOKEN false, nothing else
//     changed) when the Token first finds its master keys usable: at Open
//     when the token has them, else after the operation that makes them
//     usable (CreateMasterKey, FinishMasterKeyBackup, ImportMasterKey),
//     and again after a recovery from token loss. It is made in a session
//     of its own, the holder, which stays open while the copy is in use:
//     a session object dies with the session that made it, and is
//     visible to and usable from every session of the application that
//     made it, so the pool's sessions unseal with it (TestSessionCopy
//     shows it on the three tested tokens).
//   - A key the token holds as non-copyable (CKA_COPYABLE false, which
//     nanokms sets where the token enforces it: SoftHSM) is never asked
//     for a copy; a token that refuses C_CopyObject leaves the Token on
//     the token object. Either is reported (SessionCopy), never an error.
//   - Before it is used, the copy is read back (from another session than
//     the holder): a session object (CKA_TOKEN false), sensitive, not
//     extractable, private, with the token key's class, type and CKA_ID;
//     and a seal made with the token object must open with the copy, so
//     the copy is the same key (a GCM tag or an HMAC under another key
//     fails, but with probability 2^-128). A copy that fails any of it is
//     destroyed and not used.
//   - Seals are made with the token object; unseals with the copy. An
//     unseal that fails with the copy for any reason but the loss of the
//     pool session (its handle gone with a holder closed under it, a
//     device error, a failed tag) is made again at once with the token
//     object, and if that works the copy is dropped (destroyed, its
//     holder closed) and made anew by a later operation, at most
//     maxCopyRemakes times until the token is reopened or recovers. A
//     wrong key never signs: a blob opens only under the key that sealed
//     it, and SignFor checks the derived key against the account.
//   - Close destroys the copy and closes its holder. Recovery does the
//     same before it reconnects, and the token found again gets a new
//     copy; so does a login found lost (every session of the process
//     closed, the holder with them).
//
// What changes for the key: see docs/KEYS.md ("The session copy"). The
// copy is as sensitive and as non-extractable as the token object; it is
// held in the token's memory for sessions, for as long as the Token runs,
// instead of being loaded from the token's storage for each use.

// maxCopyRemakes bounds the copies made again after one was lost in use,
// between recoveries.
const maxCopyRemakes = 3

// copyCheckAAD is the associated data of the seal that shows a copy is
// the token object's key.
const copyCheckAAD = "nanokms/session-copy-check/v1"

// sessionCopy is a session-object copy of the master keys, made in the
// holder session sh of the module instance p.
type sessionCopy struct {
	p      p11
	sh     pkcs11.SessionHandle
	scheme SealScheme
	h      pkcs11.ObjectHandle // the AES-256 key's copy
	mac    pkcs11.ObjectHandle // the HMAC key's, for SchemeAESCBCHMAC
}

// keys returns m with the copy's handles in place of the token objects'.
func (c *sessionCopy) keys(m masterState) masterState {
	m.h = c.h
	if m.scheme == SchemeAESCBCHMAC {
		m.mac = c.mac
	}
	return m
}

// destroy destroys the copy and closes its holder. Errors are of no
// consequence: the copy may be gone already, and closing the holder
// destroys it anyway.
func (c *sessionCopy) destroy() {
	for _, h := range []pkcs11.ObjectHandle{c.h, c.mac} {
		if h != 0 {
			_ = c.p.DestroyObject(c.sh, h)
		}
	}
	_ = c.p.CloseSession(c.sh)
}

// copyState is what a Token knows of its copy, besides the copy itself;
// guarded by Token.mu.
type copyState struct {
	tried  bool   // a copy was made, or found impossible, for the master keys in use
	reason string // why there is no copy
	lost   int    // copies dropped in use since the Token opened or recovered
}

// SessionCopy returns whether the Token unseals with a session-object
// copy of its master keys, and if not, why.
func (t *Token) SessionCopy() SessionCopy {
	t.cpMu.RLock()
	used := t.cp != nil
	t.cpMu.RUnlock()
	t.mu.Lock()
	st := t.cps
	t.mu.Unlock()
	r := SessionCopy{Used: used, Lost: st.lost}
	if !used {
		r.Reason = st.reason
		if r.Reason == "" {
			r.Reason = "not made (yet): the token shows no usable master key"
		}
	}
	return r
}

// ensureCopy makes the copy of the master keys m (which masterKey found
// usable) unless one was made, or found impossible, already.
func (s *session) ensureCopy(m masterState) {
	t := s.t
	t.mu.Lock()
	tried := t.cps.tried
	t.mu.Unlock()
	if tried {
		return
	}
	t.cpMake.Lock()
	defer t.cpMake.Unlock()
	t.mu.Lock()
	tried = t.cps.tried
	t.mu.Unlock()
	if tried {
		return
	}
	c, reason, again := s.makeCopy(m)
	if c != nil {
		t.cpMu.Lock()
		old := t.cp
		t.cp = c
		t.cpMu.Unlock()
		if old != nil {
			old.destroy()
		}
	}
	t.mu.Lock()
	// A lost session is tried again by the next operation; anything else
	// stands until the token is reopened or recovers.
	t.cps.tried = !again
	t.cps.reason = reason
	t.mu.Unlock()
}

// makeCopy makes and checks a copy of the master keys m. It returns the
// copy, or why there is none and whether a later try may succeed (the
// session was lost).
func (s *session) makeCopy(m masterState) (*sessionCopy, string, bool) {
	t := s.t
	handles := m.handles()
	if !t.unknownAttrs[pkcs11.CKA_COPYABLE] {
		for _, h := range handles {
			a, err := s.p.GetAttributeValue(s.sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_COPYABLE, nil)})
			if isSessionLost(err) {
				return nil, fmt.Sprintf("not made: %v", err), true
			}
			if v := attrBytes(a, pkcs11.CKA_COPYABLE); err == nil && len(v) == 1 && v[0] == 0 {
				return nil, "not made: the master key is not copyable (CKA_COPYABLE false, which this token enforces)", false
			}
		}
	}
	sh, err := s.p.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return nil, fmt.Sprintf("not made: its session could not be opened (%v)", err), isSessionLost(err)
	}
	c := &sessionCopy{p: s.p, sh: sh, scheme: m.scheme}
	fail := func(what string, err error) (*sessionCopy, string, bool) {
		c.destroy()
		if err != nil {
			return nil, fmt.Sprintf("not used: %s (%v)", what, err), isSessionLost(err)
		}
		return nil, "not used: " + what, false
	}
	info, err := s.p.GetSessionInfo(sh)
	if err != nil {
		return fail("its session could not be read", err)
	}
	if info.State == pkcs11.CKS_RO_PUBLIC_SESSION || info.State == pkcs11.CKS_RW_PUBLIC_SESSION {
		// The login went with every other session: the operation that
		// called will find out; the next one makes the copy.
		c.destroy()
		return nil, "not made: the token was not logged in", true
	}
	for i, h := range handles {
		ch, err := s.p.CopyObject(sh, h, []*pkcs11.Attribute{
			// A session object: it lives in the holder session, and dies
			// with it. Everything else is copied as it is.
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		})
		if err != nil {
			return fail("the token refused the copy", err)
		}
		if i == 0 {
			c.h = ch
		} else {
			c.mac = ch
		}
		if why, err := s.sameObject(h, ch); why != "" || err != nil {
			return fail(why, err)
		}
	}
	if err := s.sameKeys(m, c.keys(m)); err != nil {
		return fail("a seal made with the token object did not open with the copy", err)
	}
	return c, "", false
}

// copyAttrs are the attributes of a copy that are read back and compared
// with the token object's.
var copyAttrs = []uint{pkcs11.CKA_TOKEN, pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_PRIVATE, pkcs11.CKA_CLASS, pkcs11.CKA_KEY_TYPE, pkcs11.CKA_ID}

// sameObject checks, on s's session (not the holder), that the copy ch of
// the token object h is a session object with h's protection, class, type
// and id. It returns what is wrong, or the error that kept it from
// looking.
func (s *session) sameObject(h, ch pkcs11.ObjectHandle) (string, error) {
	read := func(o pkcs11.ObjectHandle) ([]*pkcs11.Attribute, error) {
		q := make([]*pkcs11.Attribute, len(copyAttrs))
		for i, a := range copyAttrs {
			q[i] = pkcs11.NewAttribute(a, nil)
		}
		return s.p.GetAttributeValue(s.sh, o, q)
	}
	orig, err := read(h)
	if err != nil {
		return "the master key's attributes could not be read", err
	}
	cp, err := read(ch)
	if err != nil {
		return "the copy's attributes could not be read from another session", err
	}
	switch {
	case attrBool(cp, pkcs11.CKA_TOKEN):
		return "the copy is a token object", nil
	case !attrBool(cp, pkcs11.CKA_SENSITIVE):
		return "the copy is not sensitive", nil
	case attrBool(cp, pkcs11.CKA_EXTRACTABLE):
		return "the copy is extractable", nil
	case !attrBool(cp, pkcs11.CKA_PRIVATE):
		return "the copy is not private", nil
	}
	for _, a := range []uint{pkcs11.CKA_CLASS, pkcs11.CKA_KEY_TYPE, pkcs11.CKA_ID} {
		if !bytes.Equal(attrBytes(cp, a), attrBytes(orig, a)) || attrBytes(orig, a) == nil {
			return fmt.Sprintf("the copy's %s differs from the master key's", attrName(a)), nil
		}
	}
	return "", nil
}

func attrName(a uint) string {
	switch a {
	case pkcs11.CKA_CLASS:
		return "CKA_CLASS"
	case pkcs11.CKA_KEY_TYPE:
		return "CKA_KEY_TYPE"
	case pkcs11.CKA_ID:
		return "CKA_ID"
	}
	return fmt.Sprintf("attribute %#x", a)
}

// sameKeys checks that the keys cp are the keys tok: a random secret
// sealed with tok, as wallets are sealed (the IV from the token's RNG, or
// from the token where it makes its own), must open with cp. For
// aes-256-cbc-pad+hmac-sha-256 cp's HMAC key must accept tok's MAC first.
func (s *session) sameKeys(tok, cp masterState) error {
	plain, err := s.random(32)
	if err != nil {
		return err
	}
	aad := []byte(copyCheckAAD)
	out := make([]byte, 128)
	var got []byte
	switch tok.scheme {
	case SchemeAESGCM:
		g := s.gcm(tok.h)
		iv := make([]byte, gcmIVLen)
		if g.ivSource != IVToken {
			if iv, err = s.random(gcmIVLen); err != nil {
				return err
			}
		}
		ct, ivOut, err := g.encrypt(iv, aad, plain)
		if err != nil {
			return err
		}
		if got, err = s.gcm(cp.h).decrypt(out, ivOut, aad, ct); err != nil {
			return err
		}
	case SchemeAESCBCHMAC:
		iv, err := s.random(cbcIVLen)
		if err != nil {
			return err
		}
		ct, err := s.cbc(tok).encrypt(iv, plain)
		if err != nil {
			return err
		}
		msg := append(append(append([]byte(nil), aad...), iv...), ct...)
		mac, err := s.cbc(tok).sign(msg)
		if err != nil {
			return err
		}
		if err := s.cbc(cp).verify(msg, mac); err != nil {
			return err
		}
		if got, err = s.cbc(cp).decrypt(out, iv, ct); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: %s", ErrSchemeUnsupported, tok.scheme)
	}
	if !bytes.Equal(got, plain) {
		return fmt.Errorf("it opened to other bytes")
	}
	return nil
}

// copyFor returns the copy for an unseal on the module instance p, with
// t.cpMu read-locked (the caller unlocks it after the unseal), or nil and
// nothing locked.
func (t *Token) copyFor(p p11) *sessionCopy {
	t.cpMu.RLock()
	if c := t.cp; c != nil && c.p == p {
		return c
	}
	t.cpMu.RUnlock()
	return nil
}

// dropCopy drops the copy c, which failed in use (cause) where the token
// object worked or where its handle was no longer valid: destroyed, its
// holder closed, and made anew by a later operation unless that happened
// maxCopyRemakes times already.
func (t *Token) dropCopy(c *sessionCopy, cause error) {
	t.cpMu.Lock()
	if t.cp != c {
		t.cpMu.Unlock()
		return // dropped or replaced meanwhile
	}
	t.cp = nil
	t.cpMu.Unlock()
	c.destroy()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cps.lost++
	if t.cps.lost <= maxCopyRemakes {
		t.cps.tried = false
		t.cps.reason = fmt.Sprintf("lost in use (%v): made again by the next operation", cause)
		return
	}
	t.cps.reason = fmt.Sprintf("not used: %d copies stopped working in use (the last: %v); the token object is used until the token is reopened or recovers", t.cps.lost, cause)
}

// endCopy destroys the copy, if there is one, and forgets what was known
// about it (reason says why there is none now): for Close, for recovery
// (which makes a new one on the token it finds again), and when the
// process's login was found lost (and the holder with it).
func (t *Token) endCopy(reason string) {
	t.cpMu.Lock()
	c := t.cp
	t.cp = nil
	t.cpMu.Unlock()
	if c != nil {
		c.destroy()
	}
	t.mu.Lock()
	t.cps = copyState{reason: reason}
	t.mu.Unlock()
}
