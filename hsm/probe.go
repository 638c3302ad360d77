//go:build cgo

package hsm

import (
	"bytes"
	"context"
	"fmt"

	"github.com/miekg/pkcs11"
)

// The probe: what a token offers, read (C_GetInfo, C_GetTokenInfo,
// C_GetMechanismList, C_GetMechanismInfo) and tried on throw-away session
// objects in a session of its own, which is closed at the end, so nothing
// it makes outlives it. It runs in Open, after the login, before anything
// else touches the token.

// Mechanism types nanokms uses (miekg/pkcs11 names them too; these keep
// the table below readable).
const (
	ckmRSAKeyPairGen    = 0x0000
	ckmRSAOAEP          = 0x0009
	ckmSHA256HMAC       = 0x0251
	ckmGenericKeyGen    = 0x0350
	ckmAESKeyGen        = 0x1080
	ckmAESCBCPad        = 0x1085
	ckmAESGCM           = 0x1087
	ckmAESKeyWrap       = 0x2109
	ckmAESKeyWrapPad    = 0x210A
	ckfEncrypt          = 0x100
	ckfDecrypt          = 0x200
	ckfSign             = 0x800
	ckfVerify           = 0x2000
	ckfGenerate         = 0x8000
	ckfGenerateKeyPair  = 0x10000
	ckfWrap             = 0x20000
	ckfUnwrap           = 0x40000
	ckfLoginRequired    = 0x4
	ckfTokenInitialized = 0x400
)

// usedMechanisms are the mechanisms nanokms can use, with the use.
var usedMechanisms = []struct {
	typ  uint
	name string
	use  string
}{
	{ckmAESKeyGen, "CKM_AES_KEY_GEN", "master key (AES-256)"},
	{ckmAESGCM, "CKM_AES_GCM", "seal scheme aes-256-gcm"},
	{ckmAESCBCPad, "CKM_AES_CBC_PAD", "seal scheme aes-256-cbc-pad+hmac-sha-256"},
	{ckmGenericKeyGen, "CKM_GENERIC_SECRET_KEY_GEN", "MAC key of aes-256-cbc-pad+hmac-sha-256"},
	{ckmSHA256HMAC, "CKM_SHA256_HMAC", "MAC of aes-256-cbc-pad+hmac-sha-256"},
	{ckmRSAKeyPairGen, "CKM_RSA_PKCS_KEY_PAIR_GEN", "backup transport key (RSA-3072)"},
	{ckmRSAOAEP, "CKM_RSA_PKCS_OAEP", "backup: wrapping the master keys"},
	{ckmAESKeyWrapPad, "CKM_AES_KEY_WRAP_PAD", "probe: the extractable test"},
	{ckmAESKeyWrap, "CKM_AES_KEY_WRAP", "probe: the extractable test"},
}

// attrTypes maps the protective attributes to their CKA_ types.
var attrTypes = map[Attribute]uint{
	AttrSensitive:   pkcs11.CKA_SENSITIVE,
	AttrExtractable: pkcs11.CKA_EXTRACTABLE,
	AttrCopyable:    pkcs11.CKA_COPYABLE,
	AttrDestroyable: pkcs11.CKA_DESTROYABLE,
	AttrModifiable:  pkcs11.CKA_MODIFIABLE,
	AttrPrivate:     pkcs11.CKA_PRIVATE,
}

// attrOrder is the order attributes are probed and reported in.
var attrOrder = []Attribute{AttrSensitive, AttrExtractable, AttrCopyable, AttrDestroyable, AttrModifiable, AttrPrivate}

func versionString(v pkcs11.Version) string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// probe reads and tries what the token in slot offers. Failures of single
// trials are recorded in the result; only a lost session, or a failure to
// read the token's description, fails the probe.
func probe(p p11, slot uint, m *module) (*Capabilities, error) {
	c := &Capabilities{}
	if m != nil {
		c.Module.Path = m.path
		c.Module.Params = m.params != ""
	}
	info, err := p.GetInfo()
	if err != nil {
		return nil, fmt.Errorf("hsm: reading the module's description: %w", err)
	}
	c.Module.Manufacturer = info.ManufacturerID
	c.Module.Description = info.LibraryDescription
	c.Module.LibraryVersion = versionString(info.LibraryVersion)
	c.Module.CryptokiVersion = versionString(info.CryptokiVersion)
	ti, err := p.GetTokenInfo(slot)
	if err != nil {
		return nil, fmt.Errorf("hsm: reading the token's description: %w", err)
	}
	c.Token = TokenInfo{
		Slot: slot, Label: ti.Label, Manufacturer: ti.ManufacturerID, Model: ti.Model, Serial: ti.SerialNumber,
		Flags: ti.Flags, MinPINLen: ti.MinPinLen, MaxPINLen: ti.MaxPinLen,
		HardwareVersion: versionString(ti.HardwareVersion), FirmwareVersion: versionString(ti.FirmwareVersion),
	}
	mechs, err := p.GetMechanismList(slot)
	if err != nil {
		return nil, fmt.Errorf("hsm: listing the token's mechanisms: %w", err)
	}
	c.Offered = len(mechs)
	offered := make(map[uint]bool, len(mechs))
	for _, mech := range mechs {
		offered[mech.Mechanism] = true
	}
	mi := map[uint]MechanismInfo{}
	for _, u := range usedMechanisms {
		if !offered[u.typ] {
			continue
		}
		inf, err := p.GetMechanismInfo(slot, []*pkcs11.Mechanism{pkcs11.NewMechanism(u.typ, nil)})
		if err != nil {
			if isSessionLost(err) {
				return nil, err
			}
			continue // listed but not described: not usable
		}
		x := MechanismInfo{Type: u.typ, Name: u.name, MinKeySize: inf.MinKeySize, MaxKeySize: inf.MaxKeySize, Flags: inf.Flags, Use: u.use}
		mi[u.typ] = x
		c.Mechanisms = append(c.Mechanisms, x)
	}

	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return nil, fmt.Errorf("hsm: opening the probe's session: %w", err)
	}
	// Closing the session destroys every session object the probe made,
	// including one it could not destroy (CKA_DESTROYABLE false).
	defer func() { _ = p.CloseSession(sh) }()
	pr := &prober{p: p, sh: sh, mech: mi}
	c.Attributes, err = pr.attributes()
	if err != nil {
		return nil, err
	}
	pr.unknown = map[uint]bool{}
	for _, a := range c.Attributes {
		if !a.Known {
			pr.unknown[attrTypes[a.Attribute]] = true
		}
	}
	gcm, err := pr.gcmScheme()
	if err != nil {
		return nil, err
	}
	cbc, err := pr.cbcScheme()
	if err != nil {
		return nil, err
	}
	c.Schemes = []SchemeSupport{gcm, cbc}
	if x, ok := mi[ckmRSAOAEP]; ok {
		if x.Flags&ckfWrap != 0 {
			c.Wrap = append(c.Wrap, wrapRSAOAEPSHA1Name)
		}
		if g, ok := mi[ckmRSAKeyPairGen]; ok && x.Flags&ckfUnwrap != 0 && g.Flags&ckfGenerateKeyPair != 0 && bitsOK(g, transportKeyBits) {
			c.Unwrap = append(c.Unwrap, wrapRSAOAEPSHA1Name)
		}
	}
	return c, nil
}

// sizeOK reports whether a key of n bytes is within the mechanism's key
// sizes, which tokens give in bytes or in bits.
func sizeOK(m MechanismInfo, n uint) bool {
	if m.MinKeySize == 0 && m.MaxKeySize == 0 {
		return true // not stated
	}
	return (m.MinKeySize <= n && n <= m.MaxKeySize) || (m.MinKeySize <= 8*n && 8*n <= m.MaxKeySize)
}

// bitsOK reports whether an RSA key of n bits is within the sizes.
func bitsOK(m MechanismInfo, n uint) bool {
	return m.MaxKeySize == 0 || (m.MinKeySize <= n && n <= m.MaxKeySize)
}

// prober runs the trials in one session.
type prober struct {
	p       p11
	sh      pkcs11.SessionHandle
	mech    map[uint]MechanismInfo
	unknown map[uint]bool // attribute types the token does not know
}

func (pr *prober) has(typ, flags uint) bool {
	m, ok := pr.mech[typ]
	return ok && m.Flags&flags == flags
}

// filter leaves out the attributes the token does not know.
func (pr *prober) filter(t []*pkcs11.Attribute) []*pkcs11.Attribute {
	return filterTemplate(t, pr.unknown)
}

// filterTemplate returns t without the attributes whose types are in
// unknown.
func filterTemplate(t []*pkcs11.Attribute, unknown map[uint]bool) []*pkcs11.Attribute {
	if len(unknown) == 0 {
		return t
	}
	out := make([]*pkcs11.Attribute, 0, len(t))
	for _, a := range t {
		if !unknown[a.Type] {
			out = append(out, a)
		}
	}
	return out
}

const probeLabel = "nanokms-probe"

// aesKey generates a throw-away AES-256 session key with extra attributes.
func (pr *prober) aesKey(extra ...*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	t := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, probeLabel),
	}
	seen := map[uint]bool{}
	for _, a := range extra {
		seen[a.Type] = true
	}
	for _, a := range []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
	} {
		if !seen[a.Type] {
			t = append(t, a)
		}
	}
	t = append(t, extra...)
	return pr.p.GenerateKey(pr.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmAESKeyGen, nil)}, t)
}

func (pr *prober) destroy(h pkcs11.ObjectHandle) { _ = pr.p.DestroyObject(pr.sh, h) }

// errLost passes on a lost session: the probe cannot go on without it.
func errLost(err error) error {
	if isSessionLost(err) {
		return err
	}
	return nil
}

// probeSecret is the plaintext of the scheme trials.
var probeSecret = bytes.Repeat([]byte{0x5A}, 32)

const probeAAD = "nanokms/probe"

// gcmScheme tries AES-256-GCM: IV from the caller, else from the token;
// single-part, else multi-part; a round trip, and a tampered tag.
func (pr *prober) gcmScheme() (SchemeSupport, error) {
	s := SchemeSupport{Scheme: SchemeAESGCM}
	switch {
	case !pr.has(ckmAESKeyGen, ckfGenerate):
		s.Reason = "the token offers no CKM_AES_KEY_GEN"
		return s, nil
	case !sizeOK(pr.mech[ckmAESKeyGen], 32):
		s.Reason = "CKM_AES_KEY_GEN does not make 32-byte keys"
		return s, nil
	case !pr.has(ckmAESGCM, ckfEncrypt|ckfDecrypt):
		s.Reason = "the token offers no CKM_AES_GCM"
		return s, nil
	}
	key, err := pr.aesKey(pr.filter(probeKeyAttrs())...)
	if err != nil {
		s.Reason = fmt.Sprintf("a key could not be made (%v)", err)
		return s, errLost(err)
	}
	defer pr.destroy(key)
	iv, err := pr.p.GenerateRandom(pr.sh, gcmIVLen)
	if err != nil || len(iv) != gcmIVLen {
		s.Reason = fmt.Sprintf("C_GenerateRandom failed (%v)", errOr(err, "short"))
		return s, errLost(err)
	}
	g := gcmOp{p: pr.p, sh: pr.sh, key: key}
	var ct, gotIV []byte
	for _, mode := range []struct {
		iv    IVSource
		multi bool
	}{{IVCaller, false}, {IVCaller, true}, {IVToken, false}, {IVToken, true}} {
		g.ivSource, g.multi = mode.iv, mode.multi
		in := iv
		if mode.iv == IVToken {
			in = make([]byte, gcmIVLen)
		}
		ct, gotIV, err = g.encrypt(in, []byte(probeAAD), probeSecret)
		if err == nil {
			break
		}
		if e := errLost(err); e != nil {
			return s, e
		}
		if !isCode(err, ckrMechanismParamInvalid) && !isCode(err, ckrFunctionNotSupported) && !isCode(err, ckrArgumentsBad) {
			s.Reason = fmt.Sprintf("a trial seal failed (%v)", err)
			return s, nil
		}
		s.Reason = fmt.Sprintf("a trial seal failed (%v)", err)
	}
	if err != nil {
		return s, nil
	}
	if g.ivSource == IVCaller && !bytes.Equal(gotIV, iv) {
		g.ivSource = IVToken // it replaced ours: it makes its own
	}
	if g.ivSource == IVToken && bytes.Equal(gotIV, make([]byte, gcmIVLen)) {
		s.Reason = "the token neither took the IV given nor returned one"
		return s, nil
	}
	s.IV, s.MultiPart = g.ivSource, g.multi
	if len(ct) != len(probeSecret)+gcmTagLen {
		s.Reason = fmt.Sprintf("a trial seal gave %d bytes, want %d", len(ct), len(probeSecret)+gcmTagLen)
		return s, nil
	}
	pt := make([]byte, len(ct))
	got, err := g.decrypt(pt, gotIV, []byte(probeAAD), ct)
	if err != nil || !bytes.Equal(got, probeSecret) {
		s.Reason = fmt.Sprintf("a trial seal did not open (%v)", errOr(err, "wrong plaintext"))
		return s, errLost(err)
	}
	bad := bytes.Clone(ct)
	bad[len(bad)-1] ^= 1
	_, err = g.decrypt(pt, gotIV, []byte(probeAAD), bad)
	if err == nil {
		s.Reason = "a seal with a tampered tag opened"
		return s, nil
	}
	if e := errLost(err); e != nil {
		return s, e
	}
	s.FailureCode = codeOf(err)
	if s.FailureCode == 0 {
		s.Reason = fmt.Sprintf("a tampered seal failed without a return code (%v)", err)
		return s, nil
	}
	s.Usable, s.Reason = true, ""
	return s, nil
}

// probeKeyAttrs are the attributes of a trial seal key: like a master
// key's, but a session object.
func probeKeyAttrs() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
	}
}

// cbcScheme tries AES-256-CBC-PAD with HMAC-SHA-256: a round trip, a
// tampered MAC refused by C_Verify.
func (pr *prober) cbcScheme() (SchemeSupport, error) {
	s := SchemeSupport{Scheme: SchemeAESCBCHMAC}
	switch {
	case !pr.has(ckmAESKeyGen, ckfGenerate) || !sizeOK(pr.mech[ckmAESKeyGen], 32):
		s.Reason = "the token makes no 32-byte AES keys (CKM_AES_KEY_GEN)"
		return s, nil
	case !pr.has(ckmAESCBCPad, ckfEncrypt|ckfDecrypt):
		s.Reason = "the token offers no CKM_AES_CBC_PAD"
		return s, nil
	case !pr.has(ckmGenericKeyGen, ckfGenerate):
		s.Reason = "the token offers no CKM_GENERIC_SECRET_KEY_GEN"
		return s, nil
	case !pr.has(ckmSHA256HMAC, ckfSign|ckfVerify):
		s.Reason = "the token offers no CKM_SHA256_HMAC"
		return s, nil
	}
	enc, err := pr.aesKey(pr.filter(probeKeyAttrs())...)
	if err != nil {
		s.Reason = fmt.Sprintf("an AES key could not be made (%v)", err)
		return s, errLost(err)
	}
	defer pr.destroy(enc)
	mac, err := pr.p.GenerateKey(pr.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmGenericKeyGen, nil)}, pr.filter(macKeyAttrs(false, probeLabel, nil, false)))
	if err != nil {
		s.Reason = fmt.Sprintf("an HMAC key could not be made (%v)", err)
		return s, errLost(err)
	}
	defer pr.destroy(mac)
	iv, err := pr.p.GenerateRandom(pr.sh, cbcIVLen)
	if err != nil || len(iv) != cbcIVLen {
		s.Reason = fmt.Sprintf("C_GenerateRandom failed (%v)", errOr(err, "short"))
		return s, errLost(err)
	}
	c := cbcOp{p: pr.p, sh: pr.sh, enc: enc, mac: mac}
	ct, err := c.encrypt(iv, probeSecret)
	if err != nil {
		s.Reason = fmt.Sprintf("a trial encryption failed (%v)", err)
		return s, errLost(err)
	}
	msg := append([]byte(probeAAD), ct...)
	tag, err := c.sign(msg)
	if err != nil {
		s.Reason = fmt.Sprintf("a trial MAC failed (%v)", err)
		return s, errLost(err)
	}
	if err := c.verify(msg, tag); err != nil {
		s.Reason = fmt.Sprintf("a trial MAC did not verify (%v)", err)
		return s, errLost(err)
	}
	bad := bytes.Clone(tag)
	bad[0] ^= 1
	err = c.verify(msg, bad)
	if err == nil {
		s.Reason = "a tampered MAC verified"
		return s, nil
	}
	if e := errLost(err); e != nil {
		return s, e
	}
	s.FailureCode = codeOf(err)
	pt := make([]byte, len(ct))
	got, err := c.decrypt(pt, iv, ct)
	if err != nil || !bytes.Equal(got, probeSecret) {
		s.Reason = fmt.Sprintf("a trial encryption did not decrypt (%v)", errOr(err, "wrong plaintext"))
		return s, errLost(err)
	}
	if s.FailureCode == 0 {
		s.Reason = fmt.Sprintf("a tampered MAC failed without a return code (%v)", err)
		return s, nil
	}
	s.Usable = true
	return s, nil
}

// ProbeWalletStorage tries storing a wallet-like token data object on the
// token (created and destroyed at once) and records in the Token's
// Capabilities whether the token keeps such objects, and private ones.
// Open does not do this (it would write to the token at every start);
// 'nanokms token init' and 'nanokms token probe' do.
func (t *Token) ProbeWalletStorage(ctx context.Context) (WalletStorage, error) {
	var ws WalletStorage
	err := t.do(ctx, func(s *session) error {
		ws = WalletStorage{Tested: true}
		try := func(private bool) error {
			tmpl := []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, private),
				pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, Application),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, probeLabel),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE, []byte{0}),
			}
			h, err := s.p.CreateObject(s.sh, tmpl)
			if err != nil {
				return err
			}
			if err := s.p.DestroyObject(s.sh, h); err != nil {
				return fmt.Errorf("hsm: the probe's data object %q could not be destroyed again: %w", probeLabel, err)
			}
			return nil
		}
		err := try(true)
		switch {
		case err == nil:
			ws.TokenObjects, ws.Private = true, true
			ws.Detail = "private token data objects are kept"
			return nil
		case isSessionLost(err):
			return err
		}
		err2 := try(false)
		switch {
		case err2 == nil:
			ws.TokenObjects = true
			ws.Detail = fmt.Sprintf("a private data object was refused (%v); public ones are kept", err)
		case isSessionLost(err2):
			return err2
		default:
			ws.Detail = fmt.Sprintf("token data objects are refused (%v): wallets must be kept in a wallet directory", err2)
		}
		return nil
	})
	if err != nil {
		return WalletStorage{}, err
	}
	t.mu.Lock()
	t.caps.WalletStorage = ws
	t.mu.Unlock()
	return ws, nil
}
