//go:build cgo

package hsm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/internal/p11uri"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

// countObjects returns how many objects the session sees.
func countObjects(t *testing.T, tok *Token) int {
	t.Helper()
	n := 0
	err := tok.do(context.Background(), func(s *session) error {
		hs, err := s.findAll(nil, "objects")
		n = len(hs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// What the probe finds on SoftHSM 2.6: both schemes, every protective
// attribute held, the failure codes of a tampered seal, private data
// objects; and it leaves nothing behind.
func TestProbeSoftHSM(t *testing.T) {
	tok, _, _ := mustToken(t, tokenOpts{noMaster: true})
	before := countObjects(t, tok)
	c := tok.Capabilities()
	if c.Scheme() != SchemeAESGCM {
		t.Fatalf("scheme %s", c.Scheme())
	}
	gcm, cbc := c.SchemeSupport(SchemeAESGCM), c.SchemeSupport(SchemeAESCBCHMAC)
	if !gcm.Usable || gcm.IV != IVCaller || gcm.MultiPart || gcm.FailureCode != ckrGeneralError {
		t.Errorf("aes-256-gcm %+v", gcm)
	}
	if !cbc.Usable || cbc.FailureCode != ckrSignatureInvalid {
		t.Errorf("cbc %+v", cbc)
	}
	for _, a := range c.Attributes {
		if !a.Known || !a.Enforced {
			t.Errorf("attribute %+v", a)
		}
	}
	if len(c.NotEnforced()) != 0 || len(c.Attributes) != 6 {
		t.Errorf("attributes %+v", c.Attributes)
	}
	if !containsString(c.Wrap, wrapMechanismName) || !containsString(c.Unwrap, wrapMechanismName) {
		t.Errorf("wrap %v unwrap %v", c.Wrap, c.Unwrap)
	}
	names := map[string]bool{}
	for _, m := range c.Mechanisms {
		names[m.Name] = true
	}
	for _, n := range []string{"CKM_AES_KEY_GEN", "CKM_AES_GCM", "CKM_AES_CBC_PAD", "CKM_SHA256_HMAC", "CKM_RSA_PKCS_OAEP"} {
		if !names[n] {
			t.Errorf("mechanism %s not listed", n)
		}
	}
	if c.Module.Manufacturer != "SoftHSM" || c.Token.MaxPINLen == 0 || c.Offered < len(c.Mechanisms) {
		t.Errorf("module %+v token %+v", c.Module, c.Token)
	}
	ws, err := tok.ProbeWalletStorage(context.Background())
	if err != nil || !ws.Tested || !ws.TokenObjects || !ws.Private {
		t.Fatalf("wallet storage %+v, %v", ws, err)
	}
	if after := countObjects(t, tok); after != before {
		t.Fatalf("the probe left %d objects", after-before)
	}
}

// A token that does not know CKA_COPYABLE (opencryptoki 3.8 answers
// C_GenerateKey with CKR_ATTRIBUTE_TYPE_INVALID) is probed as such, and its
// master key is made without the attribute: before the probe, token init
// failed there.
func TestUnknownAttributeLeftOut(t *testing.T) {
	st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("unknown"))
	f := mustFake(t)
	refuse := func(temp []*pkcs11.Attribute) error {
		for _, a := range temp {
			if a.Type == pkcs11.CKA_COPYABLE {
				return pkcs11.Error(pkcs11.CKR_ATTRIBUTE_TYPE_INVALID)
			}
		}
		return nil
	}
	f.GenerateKeyFunc = func(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
		if err := refuse(temp); err != nil {
			return 0, err
		}
		return f.real.GenerateKey(sh, m, temp)
	}
	f.UnwrapKeyFunc = func(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, k pkcs11.ObjectHandle, w []byte, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
		if err := refuse(temp); err != nil {
			return 0, err
		}
		return f.real.UnwrapKey(sh, m, k, w, temp)
	}
	tok := mustOpen(t, f, Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN)})
	caps := tok.Capabilities()
	a := caps.Attribute(AttrCopyable)
	if a.Known || a.Enforced || !strings.Contains(a.Detail, "C_GenerateKey: CKR_ATTRIBUTE_TYPE_INVALID") {
		t.Fatalf("copyable %+v", a)
	}
	if d := caps.Attribute(AttrDestroyable); !d.Known || !d.Enforced {
		t.Fatalf("destroyable %+v", d)
	}
	ctx := context.Background()
	for _, scheme := range Schemes {
		t.Run(scheme.String(), func(t *testing.T) {
			other := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("unknown"))
			tok := mustOpen(t, f, Config{Module: other.Module, TokenLabel: other.Label, PIN: mustPIN(t, other.PIN)})
			if err := tok.CreateMasterKey(ctx, scheme); err != nil {
				t.Fatalf("CreateMasterKey: %v", err)
			}
			mustWallet(t, tok, "w")
			if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A failed GCM tag is a broken seal only as this token reports one: on a
// token whose probe saw CKR_ENCRYPTED_DATA_INVALID for a tampered tag,
// CKR_GENERAL_ERROR from C_Decrypt is a fault, reported as such (on
// SoftHSM, which says CKR_GENERAL_ERROR for a failed tag, TestOperationFaults
// shows it is a broken seal).
func TestGCMFailureCodeIsProbed(t *testing.T) {
	st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("tagcode"))
	f := mustFake(t)
	standard := func(sh pkcs11.SessionHandle, ct, dst []byte) ([]byte, error) {
		out, err := f.real.DecryptInto(sh, ct, dst)
		if isCode(err, pkcs11.CKR_GENERAL_ERROR) {
			return nil, pkcs11.Error(pkcs11.CKR_ENCRYPTED_DATA_INVALID)
		}
		return out, err
	}
	f.DecryptIntoFunc = standard
	tok := mustOpen(t, f, Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN)})
	caps := tok.Capabilities()
	if code := caps.SchemeSupport(SchemeAESGCM).FailureCode; code != ckrEncryptedDataInvalid {
		t.Fatalf("probed tag failure %s", CodeName(code))
	}
	ctx := context.Background()
	if err := tok.CreateMasterKey(ctx, SchemeAESGCM); err != nil {
		t.Fatal(err)
	}
	mustWallet(t, tok, "w")
	f.DecryptIntoFunc = func(pkcs11.SessionHandle, []byte, []byte) ([]byte, error) {
		return nil, pkcs11.Error(pkcs11.CKR_GENERAL_ERROR)
	}
	_, err := tok.Sign(ctx, "w", 0, nano.Hash{})
	var te *TokenError
	if errors.Is(err, ErrSealBroken) || !errors.As(err, &te) || te.Func != "C_Decrypt" || te.Code != ckrGeneralError {
		t.Fatalf("Sign = %v, want the C_Decrypt fault, not a broken seal", err)
	}
	f.DecryptIntoFunc = func(pkcs11.SessionHandle, []byte, []byte) ([]byte, error) {
		return nil, pkcs11.Error(pkcs11.CKR_ENCRYPTED_DATA_INVALID)
	}
	if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("Sign = %v, want ErrSealBroken", err)
	}
	f.DecryptIntoFunc = standard
	if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); err != nil {
		t.Fatal(err)
	}
}

// A MAC that C_Verify refuses with a non-standard code (NSS 3.87 returns a
// stale error) is checked again by computing it: a real mismatch is a
// broken seal, a matching MAC leaves the refusal a fault. Nothing is
// decrypted in either case.
func TestMACFailureConfirmed(t *testing.T) {
	tok, f, _ := mustToken(t, tokenOpts{scheme: SchemeAESCBCHMAC})
	ctx := context.Background()
	mustWallet(t, tok, "w")
	f.VerifyFunc = func(sh pkcs11.SessionHandle, data, sig []byte) error {
		err := f.real.Verify(sh, data, sig)
		if err != nil {
			return pkcs11.Error(pkcs11.CKR_ARGUMENTS_BAD)
		}
		return nil
	}
	decrypts := f.Calls("DecryptInto")
	if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); err != nil {
		t.Fatalf("intact: %v", err)
	}
	export, err := tok.ExportWallet(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	bad := editExport(t, export, flip(-1, 1))
	decrypts = f.Calls("DecryptInto")
	if _, err := tok.RestoreWallet(ctx, "bad", bad); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("tampered MAC = %v, want ErrSealBroken", err)
	}
	if n := f.Calls("DecryptInto") - decrypts; n != 0 {
		t.Fatalf("%d decryptions of a seal whose MAC failed", n)
	}
	f.VerifyFunc = func(pkcs11.SessionHandle, []byte, []byte) error { return pkcs11.Error(pkcs11.CKR_DEVICE_ERROR) }
	_, err = tok.Sign(ctx, "w", 0, nano.Hash{})
	if errors.Is(err, ErrSealBroken) || !errors.Is(err, pkcs11.Error(pkcs11.CKR_DEVICE_ERROR)) {
		t.Fatalf("a failing C_Verify on an intact seal = %v, want the fault", err)
	}
}

// A token without single-part AES-GCM is sealed multi-part.
func TestGCMMultiPart(t *testing.T) {
	st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("multi"))
	f := mustFake(t)
	// A failed call ends the operation (the standard's rule); the real
	// call does that here.
	f.EncryptFunc = func(sh pkcs11.SessionHandle, in []byte) ([]byte, error) {
		_, _ = f.real.Encrypt(sh, in)
		return nil, pkcs11.Error(pkcs11.CKR_FUNCTION_NOT_SUPPORTED)
	}
	f.DecryptIntoFunc = func(sh pkcs11.SessionHandle, in, dst []byte) ([]byte, error) {
		_, _ = f.real.DecryptInto(sh, in, dst)
		clear(dst)
		return nil, pkcs11.Error(pkcs11.CKR_FUNCTION_NOT_SUPPORTED)
	}
	tok := mustOpen(t, f, Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN)})
	c := tok.Capabilities()
	if g := c.SchemeSupport(SchemeAESGCM); !g.Usable || !g.MultiPart {
		t.Fatalf("aes-256-gcm %+v", g)
	}
	if c.SchemeSupport(SchemeAESCBCHMAC).Usable {
		t.Fatal("CBC usable without single-part C_Encrypt")
	}
	ctx := context.Background()
	if err := tok.CreateMasterKey(ctx, 0); err != nil {
		t.Fatal(err)
	}
	updates := f.Calls("EncryptUpdate")
	seed := nano.Seed{7}
	if _, err := tok.ImportWallet(ctx, "w", &seed); err != nil {
		t.Fatal(err)
	}
	if f.Calls("EncryptUpdate") == updates {
		t.Fatal("no multi-part encryption")
	}
	pub, err := tok.PublicKey(ctx, "w", 3)
	if err != nil {
		t.Fatal(err)
	}
	k := nano.DeriveKey(&seed, 3)
	if pub != k.PublicKey() {
		t.Fatal("multi-part unseal gave another key")
	}
	if f.Calls("DecryptFinalInto") == 0 {
		t.Fatal("no multi-part decryption")
	}
}

// An unwrapped key that the token made weaker than the template asked
// (opencryptoki 3.8: non-sensitive and extractable) is corrected, or, if
// the token refuses, not kept.
func TestImportedKeyProtection(t *testing.T) {
	for _, fixable := range []bool{true, false} {
		name := map[bool]string{true: "corrected", false: "refused"}[fixable]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			primary, _, _ := mustToken(t, tokenOpts{noMaster: true})
			backup, f, _ := mustToken(t, tokenOpts{noMaster: true})
			pub, err := backup.CreateTransportKey(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := primary.CreateMasterKeyForBackup(ctx, SchemeAESCBCHMAC); err != nil {
				t.Fatal(err)
			}
			pkg, err := primary.WrapMasterKey(ctx, pub, backup.BackupTarget())
			if err != nil {
				t.Fatal(err)
			}
			f.UnwrapKeyFunc = func(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, k pkcs11.ObjectHandle, w []byte, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
				weak := make([]*pkcs11.Attribute, 0, len(temp))
				for _, a := range temp {
					switch a.Type {
					case pkcs11.CKA_SENSITIVE:
						a = pkcs11.NewAttribute(a.Type, false)
					case pkcs11.CKA_EXTRACTABLE:
						a = pkcs11.NewAttribute(a.Type, true)
					}
					weak = append(weak, a)
				}
				return f.real.UnwrapKey(sh, m, k, w, weak)
			}
			if !fixable {
				f.SetAttributeValueFunc = func(pkcs11.SessionHandle, pkcs11.ObjectHandle, []*pkcs11.Attribute) error {
					return pkcs11.Error(pkcs11.CKR_ATTRIBUTE_READ_ONLY)
				}
			}
			err = backup.ImportMasterKey(ctx, pkg)
			if !fixable {
				if !errors.Is(err, ErrMasterKeyExportable) {
					t.Fatalf("ImportMasterKey = %v, want ErrMasterKeyExportable", err)
				}
				if _, err := backup.MasterKeyScheme(ctx); !errors.Is(err, ErrMasterKeyMissing) {
					t.Fatalf("a weak key was kept: %v", err)
				}
				if _, err := backup.CreateTransportKey(ctx); err != nil {
					t.Fatalf("the ceremony cannot be repeated: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			info, err := backup.MasterKeyAttributes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !info.Sensitive || info.Extractable || info.Scheme != SchemeAESCBCHMAC {
				t.Fatalf("imported keys %+v", info)
			}
		})
	}
}

// Wallets in a wallet directory: written once, never replaced, read
// without following symbolic links; odd entries are ignored or refused.
func TestWalletDir(t *testing.T) {
	st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("walletdir"))
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f := mustFake(t)
	cfg := Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN), WalletDir: dir}
	tok := mustOpen(t, f, cfg)
	ctx := context.Background()
	if err := tok.CreateMasterKey(ctx, 0); err != nil {
		t.Fatal(err)
	}
	creates := f.Calls("CreateObject")
	info := mustWallet(t, tok, "hot wallet")
	if f.Calls("CreateObject") != creates {
		t.Fatal("a wallet was stored on the token despite the wallet directory")
	}
	file := filepath.Join(dir, walletFileName("hot wallet"))
	st2, err := os.Stat(file)
	if err != nil || st2.Mode().Perm() != 0o600 {
		t.Fatalf("wallet file: %v %v", st2, err)
	}
	if _, err := tok.CreateWallet(ctx, "hot wallet"); !errors.Is(err, ErrWalletExists) {
		t.Fatalf("second CreateWallet = %v", err)
	}
	// Other names are ignored.
	for _, n := range []string{"README", ".tmp-123", "zz.wallet", "6869.wallet.bak"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := tok.ListWallets(ctx)
	if err != nil || len(ws) != 1 || ws[0].ID != info.ID || ws[0].Label != "hot wallet" {
		t.Fatalf("ListWallets = %+v, %v", ws, err)
	}
	if _, err := tok.Sign(ctx, "hot wallet", 1, nano.Hash{1}); err != nil {
		t.Fatal(err)
	}
	// A wallet name that is a symbolic link is not followed.
	if err := os.Symlink(file, filepath.Join(dir, walletFileName("linked"))); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Sign(ctx, "linked", 0, nano.Hash{}); !errors.Is(err, ErrWalletDir) {
		t.Fatalf("Sign through a symlink = %v, want ErrWalletDir", err)
	}
	if _, err := tok.ListWallets(ctx); !errors.Is(err, ErrWalletDir) {
		t.Fatalf("ListWallets with a symlink = %v, want ErrWalletDir", err)
	}
	os.Remove(filepath.Join(dir, walletFileName("linked")))
	// A file holding another wallet under this name is refused.
	data, _ := os.ReadFile(file)
	if err := os.WriteFile(filepath.Join(dir, walletFileName("moved")), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Sign(ctx, "moved", 0, nano.Hash{}); !errors.Is(err, ErrWalletDir) {
		t.Fatalf("Sign of a renamed file = %v, want ErrWalletDir", err)
	}
	// A directory others can write is refused at Open.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := open(ctx, f, cfg); !errors.Is(err, ErrWalletDir) {
		t.Fatalf("open with a world-writable wallet directory = %v", err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	cfg.WalletDir = link
	if _, err := open(ctx, f, cfg); !errors.Is(err, ErrWalletDir) {
		t.Fatalf("open with a symlinked wallet directory = %v", err)
	}
}

// A token that keeps no data objects (NSS) says so, pointing at the
// wallet directory.
func TestNoDataObjects(t *testing.T) {
	tok, f, _ := mustToken(t, tokenOpts{})
	f.CreateObjectFunc = func(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
		if attrBool(temp, pkcs11.CKA_TOKEN) {
			return 0, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_VALUE_INVALID)
		}
		return f.real.CreateObject(sh, temp)
	}
	if _, err := tok.CreateWallet(context.Background(), "w"); !errors.Is(err, ErrNoDataObjects) {
		t.Fatalf("CreateWallet = %v, want ErrNoDataObjects", err)
	}
	ws, err := tok.ProbeWalletStorage(context.Background())
	if err != nil || ws.TokenObjects || ws.Private {
		t.Fatalf("wallet storage %+v, %v", ws, err)
	}
}

func TestChangePIN(t *testing.T) {
	tok, f, st := mustToken(t, tokenOpts{})
	ctx := context.Background()
	mustWallet(t, tok, "w")
	if err := tok.ChangePIN(ctx, mustPIN(t, "new-pin-5678")); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); err != nil {
		t.Fatal(err)
	}
	if err := tok.ChangePIN(ctx, mustPIN(t, "1")); !errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_LEN_RANGE)) || !strings.Contains(err.Error(), "C_SetPIN: CKR_PIN_LEN_RANGE") {
		t.Fatalf("ChangePIN(too short) = %v", err)
	}
	tok.Close()
	if _, err := open(ctx, f, Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN)}); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("open with the old PIN = %v", err)
	}
	again := mustOpen(t, f, Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, "new-pin-5678")})
	if _, err := again.Sign(ctx, "w", 0, nano.Hash{}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenByURI(t *testing.T) {
	st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("uri"))
	f := mustFake(t)
	ctx := context.Background()
	for uri, want := range map[string]error{
		"pkcs11:token=" + st.Label:   nil,
		"pkcs11:serial=" + st.Serial: nil,
		"pkcs11:token=" + st.Label + ";serial=" + st.Serial + ";model=SoftHSM%20v2":    nil,
		"pkcs11:token=" + st.Label + ";library-manufacturer=SoftHSM;library-version=2": nil,
		"pkcs11:token=" + st.Label + ";serial=0000":                                    ErrTokenNotFound,
		"pkcs11:token=" + st.Label + ";library-manufacturer=IBM":                       ErrTokenNotFound,
	} {
		u, err := p11uri.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := open(ctx, f, Config{Module: st.Module, URI: u, PIN: mustPIN(t, st.PIN)})
		if err == nil {
			tok.Close()
		}
		if !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("%s: open = %v, want %v", uri, err, want)
		}
	}
}

// The module cache keys on path and parameters: a library already
// initialised with other parameters is refused, not silently reused.
func TestModuleParamsConflict(t *testing.T) {
	module := softhsmtest.Module(t)
	if _, err := loadModule(module, ""); err != nil {
		t.Fatal(err)
	}
	var ce *ConfigError
	if _, err := loadModule(module, "configdir='sql:/nowhere'"); !errors.As(err, &ce) || ce.Field != "ModuleParams" {
		t.Fatalf("loadModule with other parameters = %v", err)
	}
}

// Every return code reaches the caller with the function and the code's
// name, and a hint where one helps.
func TestTokenErrorsName(t *testing.T) {
	tok, f, _ := mustToken(t, tokenOpts{noMaster: true})
	f.GenerateKeyFunc = func(pkcs11.SessionHandle, []*pkcs11.Mechanism, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
		return 0, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_TYPE_INVALID)
	}
	err := tok.CreateMasterKey(context.Background(), 0)
	if !strings.HasSuffix(err.Error(), "C_GenerateKey: CKR_ATTRIBUTE_TYPE_INVALID") {
		t.Fatalf("error %q", err)
	}
	if !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_TYPE_INVALID)) {
		t.Fatal("the code is not comparable with errors.Is")
	}
	if h := TokenErrorHint(err); !strings.Contains(h, "nanokms token probe") {
		t.Fatalf("hint %q", h)
	}
	for code, name := range map[uint]string{0x1B: "CKR_ACTION_PROHIBITED", 0x35: "CKR_AEAD_DECRYPT_FAILED", 0x80000012: "CKR_VENDOR_DEFINED+0x12", 0x999: "CKR_0x999"} {
		if got := CodeName(code); got != name {
			t.Errorf("CodeName(%#x) = %s, want %s", code, got, name)
		}
	}
	if h := (&TokenError{Func: "C_Initialize", Code: ckrArgumentsBad}).Hint(); !strings.Contains(h, "--module-params") {
		t.Errorf("C_Initialize hint %q", h)
	}
}
