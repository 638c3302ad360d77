//go:build cgo

package hsm

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
	"github.com/nanokms/nanokms/softhsm-test/tokentest"
)

// The session copy of the master keys (sessioncopy.go) on the three
// tested implementations: made and used where the token allows it (NSS,
// opencryptoki), not on SoftHSM, which holds the key non-copyable; the
// same signatures either way; a copy whose session is closed under it
// costs nothing but a retry with the token object, and is made again;
// Close destroys it. On NSS, also: a copy the token refuses, one that
// reads back weaker than the key or is another key, and token loss.
func TestSessionCopy(t *testing.T) {
	t.Run("softhsm", func(t *testing.T) {
		for _, scheme := range []SealScheme{SchemeAESGCM, SchemeAESCBCHMAC} {
			t.Run(scheme.String(), func(t *testing.T) {
				st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("copy"))
				testSessionCopy(t, Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN)}, scheme, false)
			})
		}
	})
	t.Run("opencryptoki", func(t *testing.T) {
		o := tokentest.StartOpenCryptoki(t)
		tk := o.Token(t, "copy")
		testSessionCopy(t, Config{Module: tk.Module, TokenLabel: tk.Label, PIN: mustPIN(t, tk.PIN)}, SchemeAESCBCHMAC, true)
	})
	t.Run("nss", func(t *testing.T) {
		testSessionCopy(t, nssConfig(t), SchemeAESGCM, true)
		t.Run("refused", testCopyRefused)
		t.Run("not as the key", testCopyNotAsTheKey)
		t.Run("token loss", testCopyTokenLoss)
	})
}

// keyUses records the keys C_DecryptInit and C_VerifyInit are called with.
type keyUses struct {
	mu   sync.Mutex
	uses []keyUse
}

type keyUse struct {
	sh  pkcs11.SessionHandle
	key pkcs11.ObjectHandle
}

func recordKeyUses(f *fakeP11) *keyUses {
	u := &keyUses{}
	add := func(sh pkcs11.SessionHandle, key pkcs11.ObjectHandle) {
		u.mu.Lock()
		u.uses = append(u.uses, keyUse{sh, key})
		u.mu.Unlock()
	}
	f.Set(func(f *fakeP11) {
		f.DecryptInitFunc = func(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
			add(sh, o)
			return f.real.DecryptInit(sh, m, o)
		}
		f.VerifyInitFunc = func(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
			add(sh, o)
			return f.real.VerifyInit(sh, m, o)
		}
	})
	return u
}

// isMasterKey reports whether o is a master key (the token object), as
// opposed to the probe's throw-away keys.
func isMasterKey(f *fakeP11, sh pkcs11.SessionHandle, o pkcs11.ObjectHandle) bool {
	a, err := f.real.GetAttributeValue(sh, o, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
	})
	label := string(attrBytes(a, pkcs11.CKA_LABEL))
	return err == nil && attrBool(a, pkcs11.CKA_TOKEN) && (label == MasterKeyLabel || label == MACKeyLabel)
}

// countMasterCopies counts f's C_CopyObject calls of a master key.
func countMasterCopies(f *fakeP11) func() int {
	var mu sync.Mutex
	n := 0
	f.Set(func(f *fakeP11) {
		f.CopyObjectFunc = func(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
			if isMasterKey(f, sh, o) {
				mu.Lock()
				n++
				mu.Unlock()
			}
			return f.real.CopyObject(sh, o, a)
		}
	})
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// since returns the uses recorded after the first n.
func (u *keyUses) since(n int) []keyUse {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]keyUse(nil), u.uses[n:]...)
}

func (u *keyUses) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.uses)
}

// currentCopy returns tok's session copy, or nil.
func currentCopy(tok *Token) *sessionCopy {
	tok.cpMu.RLock()
	defer tok.cpMu.RUnlock()
	return tok.cp
}

// tokenMaster returns tok's master keys (the token objects).
func tokenMaster(t *testing.T, tok *Token) masterState {
	t.Helper()
	var m masterState
	if err := tok.do(context.Background(), func(s *session) error {
		var err error
		m, err = s.findMaster()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

// countKeys returns how many secret keys with the master key's CKA_ID id
// the session sh sees, session objects (token false) or token objects.
func countKeys(t *testing.T, p p11, sh pkcs11.SessionHandle, id []byte, token bool) int {
	t.Helper()
	if err := p.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, token),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}); err != nil {
		t.Fatal(err)
	}
	hs, _, err := p.FindObjects(sh, 16)
	if ferr := p.FindObjectsFinal(sh); err == nil {
		err = ferr
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(hs)
}

// sessionAESKey makes a throw-away AES-256 session object in sh.
func sessionAESKey(t *testing.T, p p11, sh pkcs11.SessionHandle, extra ...*pkcs11.Attribute) pkcs11.ObjectHandle {
	t.Helper()
	h, err := p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, append([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
	}, extra...))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkSessionObjectsShared shows on the token what the session copy
// relies on: a session object made in one session is usable from another
// session of the process, and dies with the session that made it (the
// other session's next use of it fails with a stale handle).
func checkSessionObjectsShared(t *testing.T, p p11, slot uint) {
	t.Helper()
	open := func() pkcs11.SessionHandle {
		sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		return sh
	}
	maker, user := open(), open()
	defer p.CloseSession(user)
	key := sessionAESKey(t, p, maker)
	iv := make([]byte, cbcIVLen)
	if err := p.EncryptInit(user, cbcMechanism(iv), key); err != nil {
		t.Fatalf("a session object used from another session: %v", err)
	}
	if ct, err := p.Encrypt(user, make([]byte, 16)); err != nil || len(ct) != 32 {
		t.Fatalf("C_Encrypt with a session object from another session: %d bytes, %v", len(ct), err)
	}
	if err := p.CloseSession(maker); err != nil {
		t.Fatal(err)
	}
	err := p.EncryptInit(user, cbcMechanism(iv), key)
	if err == nil {
		t.Fatal("a session object outlived the session that made it")
	}
	if !isStaleHandle(err) {
		t.Fatalf("a session object of a closed session: %v, want CKR_KEY_HANDLE_INVALID or CKR_OBJECT_HANDLE_INVALID", err)
	}
	t.Logf("a session object of a closed session, used: %v", err)
}

func testSessionCopy(t *testing.T, cfg Config, scheme SealScheme, wantCopy bool) {
	ctx := context.Background()
	m, err := loadModule(cfg.Module, cfg.ModuleParams)
	if err != nil {
		t.Fatal(err)
	}
	f := newFake(m)
	uses := recordKeyUses(f)
	masterCopies := countMasterCopies(f)
	tok := mustOpen(t, f, cfg)
	checkSessionObjectsShared(t, m, tok.slot)
	mustMasterKey(t, tok, scheme)
	seed := nano.Seed{0xc0, 0x9e}
	label := uniqueWallet("copy")
	if _, err := tok.ImportWallet(ctx, label, &seed); err != nil {
		t.Fatal(err)
	}
	// A session of the test's own, open throughout: it keeps the
	// process logged in after tok closes, so that its searches see
	// private objects then.
	raw, err := m.OpenSession(tok.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer m.CloseSession(raw)
	master := tokenMaster(t, tok)
	var ids [][]byte // of the master keys (AES first)
	for _, h := range master.handles() {
		a, err := m.GetAttributeValue(firstSession(t, tok), h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, nil)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, attrBytes(a, pkcs11.CKA_ID))
	}
	id := ids[0]
	// copies counts the session objects with a master key's id.
	copies := func() int {
		n := 0
		for _, id := range ids {
			n += countKeys(t, m, raw, id, false)
		}
		return n
	}
	hash := nano.Hash{0x5e, 0x55}

	sc := tok.SessionCopy()
	t.Logf("session copy: %+v", sc)
	if sc.Used != wantCopy {
		t.Fatalf("session copy used: %v (%s), want %v", sc.Used, sc.Reason, wantCopy)
	}
	if !wantCopy {
		if !strings.Contains(sc.Reason, "CKA_COPYABLE") {
			t.Fatalf("no session copy, but for another reason than CKA_COPYABLE: %s", sc.Reason)
		}
		if n := masterCopies(); n != 0 {
			t.Fatalf("%d copies of a non-copyable key asked for", n)
		}
		n := uses.count()
		mustSignAs(t, tok, label, &seed, hash)
		for _, u := range uses.since(n) {
			if u.key != master.h && u.key != master.mac {
				t.Fatalf("unsealed with key %d, not the token object", u.key)
			}
		}
		if c := copies(); c != 0 {
			t.Fatalf("%d session objects with the master keys' ids", c)
		}
		return
	}

	// Unseals use the copy, from the pool's sessions (not the holder's).
	c := currentCopy(tok)
	n := uses.count()
	for i := 0; i < 4; i++ {
		mustSignAs(t, tok, label, &seed, hash)
	}
	got := uses.since(n)
	if len(got) == 0 {
		t.Fatal("no unseal recorded")
	}
	for _, u := range got {
		if u.key != c.h && u.key != c.mac {
			t.Fatalf("unsealed with key %d, not the copy (%d, %d)", u.key, c.h, c.mac)
		}
		if u.sh == c.sh {
			t.Fatal("unsealed on the copy's own session")
		}
	}
	// Every session of the pool can use it.
	all, err := tok.takeAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if err := tok.ensureSession(s); err != nil {
			t.Fatal(err)
		}
		if err := (&session{t: tok, p: tok.p, sh: s.sh, secret: s.secret}).sameKeys(master, c.keys(master)); err != nil {
			t.Errorf("pool session %d: a seal of the token object does not open with the copy: %v", s.sh, err)
		}
	}
	for _, s := range all {
		tok.slots <- s
	}
	// It is a session object only, visible to this process's sessions.
	if c := copies(); c != len(master.handles()) {
		t.Fatalf("%d session objects with the master keys' ids, want %d", c, len(master.handles()))
	}

	// Its session closed under it: the next signature is right (made
	// with the token object), and a new copy is made. A session object
	// made meanwhile may get the dead copy's handle: it must not matter.
	if err := m.CloseSession(c.sh); err != nil {
		t.Fatal(err)
	}
	other := sessionAESKey(t, m, raw, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
	defer m.DestroyObject(raw, other)
	n = uses.count()
	mustSignAs(t, tok, label, &seed, hash)
	var usedToken bool
	for _, u := range uses.since(n) {
		usedToken = usedToken || u.key == master.h
	}
	if !usedToken {
		t.Fatal("the unseal after the copy was lost did not fall back to the token object")
	}
	sc = tok.SessionCopy()
	if sc.Lost != 1 {
		t.Fatalf("session copy %+v, want one lost", sc)
	}
	mustSignAs(t, tok, label, &seed, hash) // the next operation makes it again
	if sc = tok.SessionCopy(); !sc.Used {
		t.Fatalf("no new copy after the first was lost: %+v", sc)
	}
	if c2 := currentCopy(tok); c2 == nil || c2 == c {
		t.Fatal("no new copy")
	}

	// Copies that keep dying are not made again for ever.
	for i := 0; i < maxCopyRemakes; i++ {
		cc := currentCopy(tok)
		if cc == nil {
			t.Fatalf("no copy after %d losses", i+1)
		}
		if err := m.CloseSession(cc.sh); err != nil {
			t.Fatal(err)
		}
		mustSignAs(t, tok, label, &seed, hash)
		mustSignAs(t, tok, label, &seed, hash)
	}
	if sc = tok.SessionCopy(); sc.Used || sc.Lost != maxCopyRemakes+1 || !strings.Contains(sc.Reason, "stopped working") {
		t.Fatalf("after %d losses: %+v", maxCopyRemakes+1, sc)
	}
	n = uses.count()
	mustSignAs(t, tok, label, &seed, hash)
	for _, u := range uses.since(n) {
		if u.key != master.h && u.key != master.mac {
			t.Fatalf("unsealed with key %d after the copies were given up", u.key)
		}
	}

	// Close destroys the copy. (A fresh Token makes one again.)
	tok2 := mustOpen(t, f, cfg)
	if sc := tok2.SessionCopy(); !sc.Used {
		t.Fatalf("a Token opened on a token with a master key: %+v", sc)
	}
	mustSignAs(t, tok2, label, &seed, hash)
	tok.Close()
	if c := copies(); c != 1+len(master.handles()) { // tok2's copy and the test's own key
		t.Fatalf("%d session objects with the master keys' ids, want %d", c, 1+len(master.handles()))
	}
	tok2.Close()
	if c := copies(); c != 1 {
		t.Fatalf("%d session objects with the master keys' ids after Close, want the test's own only", c)
	}
	if c := countKeys(t, m, raw, id, true); c != 1 {
		t.Fatalf("%d token objects with the master key's id, want 1 (the search sees private objects)", c)
	}
	if sc := tok2.SessionCopy(); sc.Used {
		t.Fatalf("closed Token: %+v", sc)
	}
}

// firstSession returns a session of tok's pool (for reading attributes).
func firstSession(t *testing.T, tok *Token) pkcs11.SessionHandle {
	t.Helper()
	var sh pkcs11.SessionHandle
	if err := tok.do(context.Background(), func(s *session) error { sh = s.sh; return nil }); err != nil {
		t.Fatal(err)
	}
	return sh
}

// nssCopyToken opens the binary's NSS token through a fake over the real
// module, with inject applied before it opens, and a wallet of seed.
func nssCopyToken(t *testing.T, inject func(f *fakeP11)) (*Token, *fakeP11, string, *nano.Seed) {
	t.Helper()
	cfg := nssConfig(t)
	cfg.RecoverMin, cfg.RecoverMax = 10*time.Millisecond, 100*time.Millisecond
	m, err := loadModule(cfg.Module, cfg.ModuleParams)
	if err != nil {
		t.Fatal(err)
	}
	f := newFake(m)
	if inject != nil {
		inject(f)
	}
	tok := mustOpen(t, f, cfg)
	mustMasterKey(t, tok, SchemeAESGCM)
	seed := &nano.Seed{0xa1, 0x7e}
	label := uniqueWallet("copy")
	if _, err := tok.ImportWallet(context.Background(), label, seed); err != nil {
		t.Fatal(err)
	}
	return tok, f, label, seed
}

// A token that refuses C_CopyObject: the Token says so and signs with the
// token object.
func testCopyRefused(t *testing.T) {
	var refused atomic.Int32
	tok, f, label, seed := nssCopyToken(t, func(f *fakeP11) {
		f.CopyObjectFunc = func(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
			if isMasterKey(f, sh, o) {
				refused.Add(1)
				return 0, pkcs11.Error(pkcs11.CKR_ACTION_PROHIBITED)
			}
			return f.real.CopyObject(sh, o, a)
		}
	})
	sc := tok.SessionCopy()
	if sc.Used || !strings.Contains(sc.Reason, "C_CopyObject: CKR_ACTION_PROHIBITED") {
		t.Fatalf("session copy %+v", sc)
	}
	master := tokenMaster(t, tok)
	uses := recordKeyUses(f)
	mustSignAs(t, tok, label, seed, nano.Hash{1})
	for _, u := range uses.since(0) {
		if u.key != master.h {
			t.Fatalf("unsealed with key %d, not the token object", u.key)
		}
	}
	if n := refused.Load(); n != 1 {
		t.Fatalf("the master key's copy asked for %d times, want once", n)
	}
}

// A copy that reads back weaker than the key, or that is another key,
// is destroyed and not used.
func testCopyNotAsTheKey(t *testing.T) {
	tests := []struct {
		name, reason string
		// change alters what C_GetAttributeValue reads of the copy;
		// other replaces C_CopyObject's copy with another key.
		change func(a *pkcs11.Attribute) *pkcs11.Attribute
		other  bool
	}{
		{name: "not sensitive", reason: "not sensitive", change: func(a *pkcs11.Attribute) *pkcs11.Attribute {
			if a.Type == pkcs11.CKA_SENSITIVE {
				return pkcs11.NewAttribute(a.Type, false)
			}
			return a
		}},
		{name: "extractable", reason: "is extractable", change: func(a *pkcs11.Attribute) *pkcs11.Attribute {
			if a.Type == pkcs11.CKA_EXTRACTABLE {
				return pkcs11.NewAttribute(a.Type, true)
			}
			return a
		}},
		{name: "a token object", reason: "a token object", change: func(a *pkcs11.Attribute) *pkcs11.Attribute {
			if a.Type == pkcs11.CKA_TOKEN {
				return pkcs11.NewAttribute(a.Type, true)
			}
			return a
		}},
		{name: "not private", reason: "not private", change: func(a *pkcs11.Attribute) *pkcs11.Attribute {
			if a.Type == pkcs11.CKA_PRIVATE {
				return pkcs11.NewAttribute(a.Type, false)
			}
			return a
		}},
		{name: "another id", reason: "CKA_ID differs", change: func(a *pkcs11.Attribute) *pkcs11.Attribute {
			if a.Type == pkcs11.CKA_ID {
				return pkcs11.NewAttribute(a.Type, []byte("another key"))
			}
			return a
		}},
		// Another AES key with the master key's id and protection: only
		// the seal shows it is not the master key.
		{name: "another key", reason: "did not open with the copy", other: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var copies, destroyed []pkcs11.ObjectHandle
			tok, f, label, seed := nssCopyToken(t, func(f *fakeP11) {
				f.CopyObjectFunc = func(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
					if !isMasterKey(f, sh, o) {
						return f.real.CopyObject(sh, o, a) // the probe's
					}
					var h pkcs11.ObjectHandle
					var err error
					if tt.other {
						var id []*pkcs11.Attribute
						if id, err = f.real.GetAttributeValue(sh, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, nil)}); err != nil {
							return 0, err
						}
						h, err = f.real.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
							pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
							pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
							pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
							pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
							pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
							pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
							pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
							pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
							pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
							pkcs11.NewAttribute(pkcs11.CKA_ID, attrBytes(id, pkcs11.CKA_ID)),
						})
					} else {
						h, err = f.real.CopyObject(sh, o, a)
					}
					mu.Lock()
					copies = append(copies, h)
					mu.Unlock()
					return h, err
				}
				f.DestroyObjectFunc = func(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle) error {
					mu.Lock()
					for _, c := range copies {
						if c == o {
							destroyed = append(destroyed, o)
						}
					}
					mu.Unlock()
					return f.real.DestroyObject(sh, o)
				}
				if tt.change != nil {
					f.GetAttributeValueFunc = func(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, q []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
						a, err := f.real.GetAttributeValue(sh, o, q)
						mu.Lock()
						isCopy := len(copies) > 0 && o == copies[len(copies)-1]
						mu.Unlock()
						if err == nil && isCopy {
							for i := range a {
								a[i] = tt.change(a[i])
							}
						}
						return a, err
					}
				}
			})
			sc := tok.SessionCopy()
			if sc.Used || !strings.Contains(sc.Reason, tt.reason) {
				t.Fatalf("session copy %+v, want not used because %q", sc, tt.reason)
			}
			mu.Lock()
			if len(copies) != 1 || len(destroyed) != 1 || destroyed[0] != copies[0] {
				t.Fatalf("copies %v, destroyed %v: want the one copy destroyed", copies, destroyed)
			}
			mu.Unlock()
			if currentCopy(tok) != nil {
				t.Fatal("a copy is kept")
			}
			master := tokenMaster(t, tok)
			uses := recordKeyUses(f)
			mustSignAs(t, tok, label, seed, nano.Hash{2})
			for _, u := range uses.since(0) {
				if u.key != master.h {
					t.Fatalf("unsealed with key %d, not the token object", u.key)
				}
			}
		})
	}
}

// Token loss: recovery destroys the copy with the lost sessions and makes
// a new one on the token found again.
func testCopyTokenLoss(t *testing.T) {
	ctx := context.Background()
	tok, f, label, seed := nssCopyToken(t, nil)
	old := currentCopy(tok)
	if old == nil {
		t.Fatalf("no session copy: %+v", tok.SessionCopy())
	}
	mustSignAs(t, tok, label, seed, nano.Hash{3})
	gone := pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED)
	var mu sync.Mutex
	closed := map[pkcs11.SessionHandle]bool{}
	f.Set(func(f *fakeP11) {
		f.CloseSessionFunc = func(sh pkcs11.SessionHandle) error {
			mu.Lock()
			closed[sh] = true
			mu.Unlock()
			return f.real.CloseSession(sh)
		}
		f.DecryptInitFunc = func(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle) error { return gone }
		f.OpenSessionFunc = func(uint, uint) (pkcs11.SessionHandle, error) { return 0, gone }
		f.GetTokenInfoFunc = func(uint) (pkcs11.TokenInfo, error) { return pkcs11.TokenInfo{}, gone }
	})
	if _, err := tok.Sign(ctx, label, 0, nano.Hash{3}); !errors.Is(err, ErrTokenUnavailable) {
		t.Fatalf("Sign with the token gone = %v, want ErrTokenUnavailable", err)
	}
	// Let one recovery attempt fail while the token is gone: it drops the
	// copy first (its session closed, the copy destroyed).
	waitStatus(t, tok, func(st TokenStatus) bool { return st.Attempts >= 1 })
	if currentCopy(tok) != nil {
		t.Fatal("the copy is kept while the token is gone")
	}
	mu.Lock()
	closedOld := closed[old.sh]
	mu.Unlock()
	if !closedOld {
		t.Fatal("recovery did not close the lost copy's session")
	}
	f.Reset()
	waitAvailable(t, tok, time.Minute)
	sc := tok.SessionCopy()
	if c := currentCopy(tok); !sc.Used || c == nil || c == old {
		t.Fatalf("after recovery: %+v", sc)
	}
	mustSignAs(t, tok, label, seed, nano.Hash{3})
}

// waitStatus waits until tok's status satisfies ok, on Token.Available's
// channel; a minute only bounds a hang.
func waitStatus(t *testing.T, tok *Token, ok func(TokenStatus) bool) {
	t.Helper()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		_, changed := tok.Available()
		if st := tok.Status(); ok(st) {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("status %+v", tok.Status())
		}
	}
}
