//go:build cgo

package hsm

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/nano"
)

var goTransportKey = sync.OnceValues(func() ([]byte, error) {
	k, err := rsa.GenerateKey(rand.Reader, transportKeyBits)
	if err != nil {
		return nil, err
	}
	return x509.MarshalPKIXPublicKey(&k.PublicKey)
})

// mustTransportKey returns a valid transport public key made outside any
// token.
func mustTransportKey(t testing.TB) []byte {
	t.Helper()
	der, err := goTransportKey()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func countTransportObjects(t *testing.T, tok *Token) int {
	t.Helper()
	n := 0
	err := tok.do(context.Background(), func(s *session) error {
		for _, class := range []uint{pkcs11.CKO_PUBLIC_KEY, pkcs11.CKO_PRIVATE_KEY} {
			hs, err := s.findAll(transportFind(class), "transport keys")
			if err != nil {
				return err
			}
			n += len(hs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The whole ceremony: a backup token receives the primary's master key,
// wrapped token to token, and then opens the primary's wallets and signs
// exactly as the primary does.
func TestBackupCeremony(t *testing.T) {
	for _, scheme := range Schemes {
		t.Run(scheme.String(), func(t *testing.T) { testBackupCeremony(t, scheme) })
	}
}

func testBackupCeremony(t *testing.T, scheme SealScheme) {
	ctx := context.Background()
	primary, _, _ := mustToken(t, tokenOpts{noMaster: true})
	backup, _, _ := mustToken(t, tokenOpts{noMaster: true})
	stranger, _, _ := mustToken(t, tokenOpts{noMaster: true})
	victim, _, _ := mustToken(t, tokenOpts{noMaster: true})

	// Backup token: a transport key; asking again returns the same one.
	pubB, err := backup.CreateTransportKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := backup.CreateTransportKey(ctx); err != nil || string(again) != string(pubB) {
		t.Fatalf("second CreateTransportKey: %v (same key: %v)", err, string(again) == string(pubB))
	}
	pubS, err := stranger.CreateTransportKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pubV, err := victim.CreateTransportKey(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Primary: an exportable master key, unusable for wallets meanwhile.
	if err := primary.CreateMasterKeyForBackup(ctx, scheme); err != nil {
		t.Fatal(err)
	}
	if _, err := primary.CreateWallet(ctx, "early"); !errors.Is(err, ErrMasterKeyExportable) {
		t.Fatalf("CreateWallet during the ceremony = %v, want ErrMasterKeyExportable", err)
	}
	mkA, err := primary.MasterKeyAttributes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !mkA.Extractable || !mkA.Sensitive || !mkA.Modifiable || mkA.Scheme != scheme {
		t.Fatalf("ceremony master key %+v", mkA)
	}
	// A backup token that cannot use the scheme, or unwrap what the
	// primary wraps, is refused before anything is wrapped.
	var others []SealScheme
	for _, s := range Schemes {
		if s != scheme {
			others = append(others, s)
		}
	}
	if _, err := primary.WrapMasterKey(ctx, pubB, BackupTarget{Schemes: others, Unwrap: backup.BackupTarget().Unwrap}); !errors.Is(err, ErrSchemeUnsupported) {
		t.Fatalf("WrapMasterKey for a target without %s = %v, want ErrSchemeUnsupported", scheme, err)
	}
	if _, err := primary.WrapMasterKey(ctx, pubB, BackupTarget{Schemes: Schemes, Unwrap: []string{"rsa-oaep-sha512"}}); !errors.Is(err, ErrNoWrapMethod) {
		t.Fatalf("WrapMasterKey for a target without a shared wrap method = %v, want ErrNoWrapMethod", err)
	}
	pkg, err := primary.WrapMasterKey(ctx, pubB, backup.BackupTarget())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(pkg, &doc); err != nil {
		t.Fatal(err)
	}
	if want := map[SealScheme]string{SchemeAESGCM: masterPackageFormat, SchemeAESCBCHMAC: masterPackageFormatV2}[scheme]; doc["format"] != want {
		t.Fatalf("package format %v, want %s", doc["format"], want)
	}
	if scheme == SchemeAESCBCHMAC {
		if keys, _ := doc["keys"].([]any); len(keys) != 2 {
			t.Fatalf("package carries %d keys, want the AES and the HMAC key", len(keys))
		}
	}
	pkgV, err := primary.WrapMasterKey(ctx, pubV, victim.BackupTarget())
	if err != nil {
		t.Fatal(err)
	}
	if err := primary.FinishMasterKeyBackup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := primary.FinishMasterKeyBackup(ctx); err != nil {
		t.Fatalf("FinishMasterKeyBackup twice: %v", err)
	}
	if _, err := primary.WrapMasterKey(ctx, pubS, stranger.BackupTarget()); !errors.Is(err, ErrNotExportable) {
		t.Fatalf("WrapMasterKey after Finish = %v, want ErrNotExportable", err)
	}
	mkA, err = primary.MasterKeyAttributes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mkA.Extractable || !mkA.Sensitive || mkA.NeverExtractable || !mkA.Local {
		t.Fatalf("finished master key %+v", mkA)
	}

	// The package opens only on the token it was made for.
	if err := stranger.ImportMasterKey(ctx, pkg); !errors.Is(err, ErrTransportKey) {
		t.Fatalf("ImportMasterKey on another token = %v, want ErrTransportKey", err)
	}
	// A package whose check value is not the primary's is refused, and
	// the key it carried is destroyed.
	var p map[string]any
	if err := json.Unmarshal(pkgV, &p); err != nil {
		t.Fatal(err)
	}
	p["check"] = "0000000000000000"
	forged, _ := json.Marshal(p)
	if err := victim.ImportMasterKey(ctx, forged); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("ImportMasterKey(wrong check) = %v, want ErrWrongMasterKey", err)
	}
	if _, err := victim.MasterKeyAttributes(ctx); !errors.Is(err, ErrMasterKeyMissing) {
		t.Fatalf("after a refused import: %v, want ErrMasterKeyMissing", err)
	}
	if err := victim.ImportMasterKey(ctx, []byte(`{"format":"x"}`)); !errors.Is(err, ErrBadBlob) {
		t.Fatalf("ImportMasterKey(garbage) = %v, want ErrBadBlob", err)
	}

	// Backup token: import, compare check values, transport key gone.
	if err := backup.ImportMasterKey(ctx, pkg); err != nil {
		t.Fatal(err)
	}
	if err := backup.ImportMasterKey(ctx, pkg); !errors.Is(err, ErrMasterKeyExists) {
		t.Fatalf("second ImportMasterKey = %v, want ErrMasterKeyExists", err)
	}
	mkB, err := backup.MasterKeyAttributes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mkB.Check != mkA.Check || string(mkB.ID) != string(mkA.ID) || mkB.Scheme != scheme {
		t.Fatalf("backup master key check %s id %x, primary %s %x", mkB.Check, mkB.ID, mkA.Check, mkA.ID)
	}
	if mkB.Extractable || !mkB.Sensitive || mkB.Local {
		t.Fatalf("backup master key %+v", mkB)
	}
	if n := countTransportObjects(t, backup); n != 0 {
		t.Fatalf("%d transport key objects left on the backup token", n)
	}
	if _, err := backup.CreateTransportKey(ctx); !errors.Is(err, ErrMasterKeyExists) {
		t.Fatalf("CreateTransportKey with a master key = %v, want ErrMasterKeyExists", err)
	}

	// Wallets made on the primary restore on the backup and sign identically.
	mustWallet(t, primary, "seed-wallet")
	v := bip39Vectors[0]
	if _, err := primary.ImportMnemonic(ctx, "bip39-wallet", []byte(v.mnemonic), []byte(v.passphrase)); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"seed-wallet", "bip39-wallet"} {
		export, err := primary.ExportWallet(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		info, err := backup.RestoreWallet(ctx, w+"-copy", export)
		if err != nil {
			t.Fatalf("RestoreWallet(%s): %v", w, err)
		}
		orig, _ := primary.Wallet(ctx, w)
		if info.ID != orig.ID || info.Kind != orig.Kind || info.Scheme != scheme {
			t.Fatalf("restored %+v, original %+v", info, orig)
		}
		for _, index := range []uint32{0, 1, 14, 1000} {
			hash := nano.Hash{byte(index), 0x5a}
			sa, err := primary.Sign(ctx, w, index, hash)
			if err != nil {
				t.Fatal(err)
			}
			sb, err := backup.Sign(ctx, w+"-copy", index, hash)
			if err != nil {
				t.Fatal(err)
			}
			if sa != sb {
				t.Fatalf("%s/%d: backup signs differently", w, index)
			}
			pub, _ := backup.PublicKey(ctx, w+"-copy", index)
			if !nano.Verify(pub, hash[:], sb) {
				t.Fatalf("%s/%d: signature does not verify", w, index)
			}
		}
	}
}

func TestWrapMasterKeyInput(t *testing.T) {
	tok, _, _ := mustToken(t, tokenOpts{noMaster: true})
	ctx := context.Background()
	var ce *ConfigError
	all := BackupTarget{Schemes: Schemes, Unwrap: []string{wrapMechanismName}}
	if _, err := tok.WrapMasterKey(ctx, []byte("not DER"), all); !errors.As(err, &ce) {
		t.Fatalf("WrapMasterKey(garbage) = %v", err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	if _, err := tok.WrapMasterKey(ctx, der, all); !errors.As(err, &ce) {
		t.Fatalf("WrapMasterKey(RSA-1024) = %v", err)
	}
	if _, err := tok.WrapMasterKey(ctx, mustTransportKey(t), all); !errors.Is(err, ErrMasterKeyMissing) {
		t.Fatalf("WrapMasterKey without a master key = %v", err)
	}
	if err := tok.ImportMasterKey(ctx, mustPackage(t)); !errors.Is(err, ErrTransportKey) {
		t.Fatalf("ImportMasterKey without a transport key = %v", err)
	}
}

func mustPackage(t *testing.T) []byte {
	t.Helper()
	out, err := json.Marshal(masterPackage{
		Format: masterPackageFormat, KeyID: "00", Check: "0011223344556677",
		TransportKey: TransportKeyFingerprint([]byte("x")), Mechanism: wrapMechanismName, Wrapped: "AAAA",
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
