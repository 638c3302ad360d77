//go:build cgo

package hsm

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
	"github.com/nanokms/nanokms/softhsm-test/tokentest"
)

// benchKind is one implementation BenchmarkTokenVsPure runs on, the
// scheme its master key uses, and whether it unseals with the session
// copy of the master keys (sessioncopy.go) where the token allows one.
type benchKind struct {
	name   string
	scheme SealScheme
	// copied: the token allows the session copy, and it is used;
	// refuse: the copy is refused (C_CopyObject answers
	// CKR_ACTION_PROHIBITED, through the fake), so the token object
	// unseals, as before the copy existed: the same token measured both
	// ways in one run.
	copied, refuse bool
	open           func(e *benchTokens, tb testing.TB) Config
}

var benchKinds = []benchKind{
	{name: "softhsm", scheme: SchemeAESGCM, open: openSoftHSM},
	// SoftHSM again with the other scheme: what aes-256-cbc-pad+hmac-sha-256
	// costs on the same token, apart from opencryptoki's own speed.
	{name: "softhsm-cbc", scheme: SchemeAESCBCHMAC, open: openSoftHSM},
	{name: "opencryptoki", scheme: SchemeAESCBCHMAC, copied: true, open: (*benchTokens).openCryptoki},
	{name: "opencryptoki-token-object", scheme: SchemeAESCBCHMAC, refuse: true, open: (*benchTokens).openCryptoki},
	{name: "nss", scheme: SchemeAESGCM, copied: true, open: (*benchTokens).nss},
	{name: "nss-token-object", scheme: SchemeAESGCM, refuse: true, open: (*benchTokens).nss},
}

// benchTokens are the tokens kinds share: a process can set up NSS's
// database and opencryptoki's daemon once only. Their cleanups run when
// the benchmark b ends.
type benchTokens struct {
	b   *testing.B
	ock *tokentest.Token
}

func openSoftHSM(_ *benchTokens, tb testing.TB) Config {
	st := softhsmtest.MustToken(tb, softhsmtest.UniqueLabel("bench"))
	return Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(tb, st.PIN)}
}

func (e *benchTokens) openCryptoki(tb testing.TB) Config {
	if e.ock == nil {
		o := tokentest.StartOpenCryptoki(cleanupOn{tb, e.b})
		tk := o.Token(cleanupOn{tb, e.b}, "bench")
		e.ock = &tk
	}
	return Config{Module: e.ock.Module, TokenLabel: e.ock.Label, PIN: mustPIN(tb, e.ock.PIN)}
}

func (e *benchTokens) nss(tb testing.TB) Config { return nssConfig(tb) }

// cleanupOn is tb whose cleanups run when parent ends: a token set up in
// the first run of a sub-benchmark serves all its runs (opencryptoki's
// daemon and NSS's database cannot be set up again in the same process).
type cleanupOn struct {
	testing.TB
	parent testing.TB
}

func (c cleanupOn) Cleanup(f func()) { c.parent.Cleanup(f) }

// BenchmarkTokenVsPure compares, on each implementation the token suite
// runs on, a signature through the token with the same signature computed
// in Go, interleaved operation by operation in one run so that a busy
// machine slows both alike. Each iteration makes, in alternating order:
//
//   - token: Token.SignFor, as the signer calls it: the token unseals the
//     wallet seed (AES-GCM decrypt, or HMAC C_Verify then CBC-PAD
//     decrypt), then the key is derived, checked, used and wiped;
//   - pure: nano.DeriveKey, nano.NewSigningKey and Sign from the seed in
//     memory (what the token path does besides unsealing);
//   - sign: SigningKey.Sign with a key expanded beforehand (a signature
//     and nothing else).
//
// It reports each one's time per signature, the ratios token/pure and
// token/sign, and the time the token path spends in each PKCS#11 call
// (C_…-ns/sig; p11-ns/sig is their sum: the token's own cost, as the
// module is in-process); ns/op (the three together) is suppressed. The
// three give the same signature, checked on every iteration. Compare runs
// with -count N and benchstat; docs/BENCHMARKS.md has the figures.
func BenchmarkTokenVsPure(b *testing.B) {
	e := &benchTokens{b: b}
	for _, k := range benchKinds {
		var tok kindToken
		var setupFailed bool
		b.Run(k.name, func(sb *testing.B) {
			if setupFailed {
				sb.Fatal("set-up failed in an earlier run")
			}
			if tok.tok == nil {
				setupFailed = true
				tok = benchKindToken(cleanupOn{sb, b}, e, k)
				setupFailed = false
			}
			benchTokenVsPure(sb, tok)
		})
	}
}

var benchSeed = nano.Seed{0x7e, 0x11, 0xbe, 0x4c}

const benchAccounts = 16

// kindToken is a token of one kind with its wallet "bench", opened
// through a fake whose data calls are timed.
type kindToken struct {
	tok   *Token
	clock *callClock
}

// benchKindToken opens a token of kind k with its master key and the
// wallet "bench" (both may exist already: kinds share NSS's and
// opencryptoki's tokens).
func benchKindToken(tb testing.TB, e *benchTokens, k benchKind) kindToken {
	tb.Helper()
	ctx := context.Background()
	cfg := k.open(e, tb)
	m, err := loadModule(cfg.Module, cfg.ModuleParams)
	if err != nil {
		tb.Fatalf("%s: %v", k.name, err)
	}
	clock := &callClock{}
	f := clock.fake(m)
	if k.refuse {
		f.CopyObjectFunc = func(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
			if isMasterKey(f, sh, o) {
				return 0, pkcs11.Error(pkcs11.CKR_ACTION_PROHIBITED)
			}
			return m.CopyObject(sh, o, a)
		}
	}
	tok, err := open(ctx, f, cfg)
	if err != nil {
		tb.Fatalf("%s: open: %v", k.name, err)
	}
	tb.Cleanup(func() { tok.Close() })
	if err := tok.CreateMasterKey(ctx, k.scheme); err != nil && !errors.Is(err, ErrMasterKeyExists) {
		tb.Fatalf("%s: CreateMasterKey(%s): %v", k.name, k.scheme, err)
	}
	if s, err := tok.MasterKeyScheme(ctx); err != nil || s != k.scheme {
		tb.Fatalf("%s: master key scheme %s (%v), want %s", k.name, s, err, k.scheme)
	}
	seed := benchSeed
	if _, err := tok.ImportWallet(ctx, "bench", &seed); err != nil && !errors.Is(err, ErrWalletExists) {
		tb.Fatalf("%s: ImportWallet: %v", k.name, err)
	}
	// The measurement is of the path the kind names, or of nothing.
	if sc := tok.SessionCopy(); sc.Used != k.copied {
		tb.Fatalf("%s: session copy used: %v (%s), want %v", k.name, sc.Used, sc.Reason, k.copied)
	}
	return kindToken{tok, clock}
}

// callClock adds up the time spent in each PKCS#11 call a signature makes.
type callClock struct {
	mu sync.Mutex
	d  map[string]time.Duration
}

func (c *callClock) since(name string, t0 time.Time) {
	d := time.Since(t0)
	c.mu.Lock()
	c.d[name] += d
	c.mu.Unlock()
}

func (c *callClock) reset() {
	c.mu.Lock()
	c.d = map[string]time.Duration{}
	c.mu.Unlock()
}

// fake returns real with the calls of a signature timed.
func (c *callClock) fake(real p11) *fakeP11 {
	c.reset()
	f := newFake(real)
	f.FindObjectsInitFunc = func(sh pkcs11.SessionHandle, a []*pkcs11.Attribute) error {
		defer c.since("C_FindObjectsInit", time.Now())
		return real.FindObjectsInit(sh, a)
	}
	f.FindObjectsFunc = func(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
		defer c.since("C_FindObjects", time.Now())
		return real.FindObjects(sh, max)
	}
	f.FindObjectsFinalFunc = func(sh pkcs11.SessionHandle) error {
		defer c.since("C_FindObjectsFinal", time.Now())
		return real.FindObjectsFinal(sh)
	}
	f.GetAttributeValueFunc = func(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
		defer c.since("C_GetAttributeValue", time.Now())
		return real.GetAttributeValue(sh, o, a)
	}
	f.DecryptInitFunc = func(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
		defer c.since("C_DecryptInit", time.Now())
		return real.DecryptInit(sh, m, o)
	}
	f.DecryptIntoFunc = func(sh pkcs11.SessionHandle, in, dst []byte) ([]byte, error) {
		defer c.since("C_Decrypt", time.Now())
		return real.DecryptInto(sh, in, dst)
	}
	f.DecryptUpdateIntoFunc = func(sh pkcs11.SessionHandle, in, dst []byte) ([]byte, error) {
		defer c.since("C_DecryptUpdate", time.Now())
		return real.DecryptUpdateInto(sh, in, dst)
	}
	f.DecryptFinalIntoFunc = func(sh pkcs11.SessionHandle, dst []byte) ([]byte, error) {
		defer c.since("C_DecryptFinal", time.Now())
		return real.DecryptFinalInto(sh, dst)
	}
	f.VerifyInitFunc = func(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
		defer c.since("C_VerifyInit", time.Now())
		return real.VerifyInit(sh, m, o)
	}
	f.VerifyFunc = func(sh pkcs11.SessionHandle, data, sig []byte) error {
		defer c.since("C_Verify", time.Now())
		return real.Verify(sh, data, sig)
	}
	f.GetSessionInfoFunc = func(sh pkcs11.SessionHandle) (pkcs11.SessionInfo, error) {
		defer c.since("C_GetSessionInfo", time.Now())
		return real.GetSessionInfo(sh)
	}
	return f
}

// report reports the time per signature in each call, and in all of them
// (p11-ns/sig), over n signatures.
func (c *callClock) report(b *testing.B, n float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.d))
	var total time.Duration
	for name, d := range c.d {
		names = append(names, name)
		total += d
	}
	sort.Strings(names)
	for _, name := range names {
		b.ReportMetric(float64(c.d[name].Nanoseconds())/n, name+"-ns/sig")
	}
	b.ReportMetric(float64(total.Nanoseconds())/n, "p11-ns/sig")
}

func benchTokenVsPure(b *testing.B, bt kindToken) {
	ctx := context.Background()
	tok := bt.tok
	seed := benchSeed
	hash := nano.Hash{0xb1, 0x0c, 0x4a, 0x54}
	var accounts [benchAccounts]nano.PublicKey
	var keys [benchAccounts]*nano.SigningKey
	for i := range keys {
		k := nano.DeriveKey(&seed, uint32(i))
		keys[i] = nano.NewSigningKey(&k)
		accounts[i] = keys[i].Public()
		k.Wipe()
	}
	defer func() {
		for _, k := range keys {
			k.Wipe()
		}
	}()
	var dToken, dPure, dSign time.Duration
	var sigToken, sigPure, sigSign nano.Signature
	var err error
	token := func(idx uint32) {
		t0 := time.Now()
		sigToken, err = tok.SignFor(ctx, "bench", idx, accounts[idx], hash)
		dToken += time.Since(t0)
	}
	pure := func(idx uint32) {
		t0 := time.Now()
		sigPure = pureSign(&seed, idx, &hash)
		dPure += time.Since(t0)
	}
	sign := func(idx uint32) {
		t0 := time.Now()
		sigSign = keys[idx].Sign(hash[:])
		dSign += time.Since(t0)
	}
	bt.clock.reset()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		idx := uint32(i % benchAccounts)
		if i%2 == 0 {
			token(idx)
			pure(idx)
			sign(idx)
		} else {
			sign(idx)
			pure(idx)
			token(idx)
		}
		if err != nil {
			b.Fatalf("SignFor: %v", err)
		}
		if sigToken != sigPure || sigSign != sigPure {
			b.Fatalf("account %d: the token's signature differs from the one computed in Go", idx)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(dToken.Nanoseconds())/n, "token-ns/sig")
	b.ReportMetric(float64(dPure.Nanoseconds())/n, "pure-ns/sig")
	b.ReportMetric(float64(dSign.Nanoseconds())/n, "sign-ns/sig")
	b.ReportMetric(float64(dToken)/float64(dPure), "token/pure")
	b.ReportMetric(float64(dToken)/float64(dSign), "token/sign")
	bt.clock.report(b, n)
}
