//go:build cgo

package hsm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

// On a token that makes its own GCM IVs (the double of tokeniv_test.go
// over SoftHSM) the aes-256-gcm key check value cannot be computed. Token
// init (CreateMasterKey, MasterKeyAttributes), wallets on the token and in
// a wallet directory, signing, export and restore all work without it: the
// blob the token sealed records the IV the token made, opens, and a
// restore is accepted only because the blob opens under this token's
// master key.
func TestTokenMadeIV(t *testing.T) {
	for _, mode := range []tokenIVMode{ivReplaced, ivFilled} {
		for _, inDir := range []bool{false, true} {
			name := mode.String() + map[bool]string{false: ", wallets on the token", true: ", wallet directory"}[inDir]
			t.Run(name, func(t *testing.T) { testTokenMadeIV(t, mode, inDir) })
		}
	}
}

func testTokenMadeIV(t *testing.T, mode tokenIVMode, inDir bool) {
	ctx := context.Background()
	st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("iv"))
	f := mustFake(t)
	ivs := tokenMakesGCMIVs(t, f, mode)
	cfg := func() Config {
		c := Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN)}
		if inDir {
			c.WalletDir = t.TempDir()
		}
		return c
	}
	tok := mustOpen(t, f, cfg())
	if g := tok.Capabilities().SchemeSupport(SchemeAESGCM); !g.Usable || g.IV != IVToken {
		t.Fatalf("aes-256-gcm %+v, want usable with the IV from the token", g)
	}
	if ivs.count() == 0 {
		t.Fatal("the probe's seals made no token IV: the double is not in the path")
	}

	// token init: the master key, and its description without a check value.
	if err := tok.CreateMasterKey(ctx, SchemeAESGCM); err != nil {
		t.Fatal(err)
	}
	info, err := tok.MasterKeyAttributes(ctx)
	if err != nil {
		t.Fatalf("MasterKeyAttributes = %v", err)
	}
	if info.Check != "" || !strings.Contains(info.NoCheckReason, "IV") {
		t.Fatalf("check value %q, reason %q: want none, and why", info.Check, info.NoCheckReason)
	}
	if !info.Sensitive || info.Extractable || len(info.ID) == 0 || info.Scheme != SchemeAESGCM {
		t.Fatalf("master key %+v", info)
	}

	// A wallet sealed with the token's IV, which the blob records.
	seed := nano.Seed{0x1e, 0x51}
	before := ivs.count()
	if _, err := tok.ImportWallet(ctx, "w", &seed); err != nil {
		t.Fatalf("ImportWallet = %v", err)
	}
	if ivs.count() != before+1 {
		t.Fatalf("%d token IVs made for one seal", ivs.count()-before)
	}
	var stored sealedBlob
	if err := tok.do(ctx, func(s *session) error {
		var err error
		stored, err = s.findWallet("w")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored.iv, ivs.last()) {
		t.Fatalf("blob IV %x, the token made %x", stored.iv, ivs.last())
	}
	hash := nano.Hash{0x0b, 0x0c}
	mustSignAs(t, tok, "w", &seed, hash)

	// The export carries no check value; the wallet file neither.
	export, err := tok.ExportWallet(ctx, "w")
	if err != nil {
		t.Fatalf("ExportWallet = %v", err)
	}
	if keys := exportKeys(t, export); keys["master_key_check"] {
		t.Fatalf("export has a master_key_check: %s", export)
	}
	if inDir {
		file, err := os.ReadFile(filepath.Join(tok.WalletDir(), walletFileName("w")))
		if err != nil {
			t.Fatal(err)
		}
		if exportKeys(t, file)["master_key_check"] {
			t.Fatalf("wallet file has a master_key_check: %s", file)
		}
		if ws, err := tok.ListWallets(ctx); err != nil || len(ws) != 1 || ws[0].Label != "w" {
			t.Fatalf("ListWallets = %v, %v", ws, err)
		}
	}

	// Restored on a token with the same master key: a second Token on the
	// same token (with a wallet directory of its own, so that the label
	// and the id are free there). The restore is accepted because the
	// blob opens under this master key.
	if inDir {
		other := mustOpen(t, f, cfg())
		if _, err := other.RestoreWallet(ctx, "w", export); err != nil {
			t.Fatalf("RestoreWallet on the same master key = %v", err)
		}
		mustSignAs(t, other, "w", &seed, hash)
	} else {
		// On the same token the wallet is there already: the blob opened
		// (the restore got past the unseal) and its id is taken.
		if _, err := tok.RestoreWallet(ctx, "again", export); !errors.Is(err, ErrWalletExists) {
			t.Fatalf("RestoreWallet of a stored wallet = %v, want ErrWalletExists", err)
		}
	}

	// A token with another master key (an ordinary SoftHSM token, which
	// can compute check values) refuses the export: it does not open
	// there. And the reverse: an export with a check value, on this token.
	foreign, _, _ := mustToken(t, tokenOpts{scheme: SchemeAESGCM})
	if _, err := foreign.RestoreWallet(ctx, "w", export); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("RestoreWallet under another master key = %v, want ErrSealBroken", err)
	}
	if _, err := foreign.ImportWallet(ctx, "f", &seed); err != nil {
		t.Fatal(err)
	}
	fexport, err := foreign.ExportWallet(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	if !exportKeys(t, fexport)["master_key_check"] {
		t.Fatalf("an ordinary token's export has no check value: %s", fexport)
	}
	if _, err := tok.RestoreWallet(ctx, "f", fexport); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("RestoreWallet of another master key's export = %v, want ErrSealBroken", err)
	}
	if _, err := tok.Wallet(ctx, "f"); !errors.Is(err, ErrWalletNotFound) {
		t.Fatalf("a refused restore left a wallet: %v", err)
	}

	// An altered export is refused too.
	raw := stored.marshal()
	raw[len(raw)-1] ^= 1
	bad, err := marshalExport("w", mustParseBlob(t, raw), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.RestoreWallet(ctx, "bad", bad); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("RestoreWallet of an altered blob = %v, want ErrSealBroken", err)
	}
}

// The backup ceremony still needs the check value (the backup token
// compares it): with aes-256-gcm on a token that makes its own IVs it is
// refused, with ErrNoCheckValue, before anything is wrapped.
func TestTokenMadeIVCeremony(t *testing.T) {
	ctx := context.Background()
	st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("iv"))
	f := mustFake(t)
	tokenMakesGCMIVs(t, f, ivReplaced)
	tok := mustOpen(t, f, Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN)})
	if err := tok.CreateMasterKeyForBackup(ctx, SchemeAESGCM); err != nil {
		t.Fatal(err)
	}
	wraps := f.Calls("WrapKey")
	if _, err := tok.WrapMasterKey(ctx, mustTransportKey(t), tok.BackupTarget()); !errors.Is(err, ErrNoCheckValue) {
		t.Fatalf("WrapMasterKey = %v, want ErrNoCheckValue", err)
	}
	if n := f.Calls("WrapKey") - wraps; n != 0 {
		t.Fatalf("%d keys wrapped", n)
	}
}

// mustSignAs signs hash with account 0 of wallet and checks the signature
// is the one seed gives.
func mustSignAs(t *testing.T, tok *Token, wallet string, seed *nano.Seed, hash nano.Hash) {
	t.Helper()
	k := nano.DeriveKey(seed, 0)
	sk := nano.NewSigningKey(&k)
	defer sk.Wipe()
	k.Wipe()
	sig, err := tok.SignFor(context.Background(), wallet, 0, sk.Public(), hash)
	if err != nil {
		t.Fatalf("SignFor(%q) = %v", wallet, err)
	}
	if sig != sk.Sign(hash[:]) {
		t.Fatalf("SignFor(%q): not the signature of the seed's account", wallet)
	}
}

// exportKeys returns the top-level keys of a JSON document.
func exportKeys(t *testing.T, doc []byte) map[string]bool {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func mustParseBlob(t *testing.T, raw []byte) *sealedBlob {
	t.Helper()
	b, err := parseBlob(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &b
}
