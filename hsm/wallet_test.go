//go:build cgo

package hsm

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/nano"
)

func TestMasterKey(t *testing.T) {
	tok, _, _ := mustToken(t, tokenOpts{})
	ctx := context.Background()
	if err := tok.CreateMasterKey(ctx, 0); !errors.Is(err, ErrMasterKeyExists) {
		t.Fatalf("second CreateMasterKey = %v, want ErrMasterKeyExists", err)
	}
	if err := tok.CreateMasterKeyForBackup(ctx, 0); !errors.Is(err, ErrMasterKeyExists) {
		t.Fatalf("CreateMasterKeyForBackup = %v, want ErrMasterKeyExists", err)
	}
	info, err := tok.MasterKeyAttributes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := MasterKeyInfo{
		Label: MasterKeyLabel, ID: info.ID, Check: info.Check,
		Sensitive: true, AlwaysSensitive: true, Extractable: false, NeverExtractable: true,
		Modifiable: false, Local: true,
	}
	if info.Label != want.Label || info.Sensitive != want.Sensitive || info.AlwaysSensitive != want.AlwaysSensitive ||
		info.Extractable != want.Extractable || info.NeverExtractable != want.NeverExtractable ||
		info.Modifiable != want.Modifiable || info.Local != want.Local {
		t.Fatalf("master key attributes %+v, want %+v", info, want)
	}
	if len(info.ID) != masterKeyIDLen || len(info.Check) != 2*checkLen {
		t.Fatalf("id %x, check %q", info.ID, info.Check)
	}
	// The check value is a function of the key.
	again, err := tok.MasterKeyAttributes(ctx)
	if err != nil || again.Check != info.Check {
		t.Fatalf("check value changed: %q, %q (%v)", info.Check, again.Check, err)
	}

	// The key's value cannot be read, nor the key wrapped out.
	err = tok.do(ctx, func(s *session) error {
		m, err := s.findMaster()
		if err != nil {
			return err
		}
		for _, h := range m.handles() {
			_, err = s.p.GetAttributeValue(s.sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
			if !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE)) {
				t.Errorf("reading CKA_VALUE = %v, want CKR_ATTRIBUTE_SENSITIVE", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.WrapMasterKey(ctx, mustTransportKey(t), BackupTarget{Schemes: Schemes, Unwrap: []string{wrapMechanismName}}); !errors.Is(err, ErrNotExportable) {
		t.Fatalf("WrapMasterKey = %v, want ErrNotExportable", err)
	}
}

func TestMasterKeyMissing(t *testing.T) {
	tok, _, _ := mustToken(t, tokenOpts{noMaster: true})
	ctx := context.Background()
	seed := nano.Seed{1}
	checks := map[string]error{}
	_, checks["CreateWallet"] = tok.CreateWallet(ctx, "w")
	_, checks["ImportWallet"] = tok.ImportWallet(ctx, "w", &seed)
	_, checks["ImportMnemonic"] = tok.ImportMnemonic(ctx, "w", []byte(bip39Vectors[0].mnemonic), nil)
	_, checks["MasterKeyAttributes"] = tok.MasterKeyAttributes(ctx)
	checks["FinishMasterKeyBackup"] = tok.FinishMasterKeyBackup(ctx)
	for name, err := range checks {
		if !errors.Is(err, ErrMasterKeyMissing) {
			t.Errorf("%s = %v, want ErrMasterKeyMissing", name, err)
		}
	}
	if ws, err := tok.ListWallets(ctx); err != nil || len(ws) != 0 {
		t.Fatalf("ListWallets = %v, %v", ws, err)
	}
}

func TestCreateWalletSignVerify(t *testing.T) {
	tok, _, _ := mustToken(t, tokenOpts{})
	ctx := context.Background()
	a := mustWallet(t, tok, "alpha")
	b := mustWallet(t, tok, "beta")
	if a.ID == b.ID || a.Kind != KindSeed {
		t.Fatalf("wallets %+v %+v", a, b)
	}
	list, err := tok.ListWallets(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListWallets = %+v, %v", list, err)
	}
	got := map[string]WalletInfo{list[0].Label: list[0], list[1].Label: list[1]}
	if got["alpha"] != a || got["beta"] != b {
		t.Fatalf("ListWallets = %+v, want %+v and %+v", list, a, b)
	}
	if info, err := tok.Wallet(ctx, "beta"); err != nil || info != b {
		t.Fatalf("Wallet(beta) = %+v, %v", info, err)
	}
	seen := map[nano.PublicKey]bool{}
	for _, w := range []string{"alpha", "beta"} {
		for _, index := range []uint32{0, 1, 2, 1 << 31, 1<<32 - 1} {
			pub, err := tok.PublicKey(ctx, w, index)
			if err != nil {
				t.Fatal(err)
			}
			if seen[pub] {
				t.Fatalf("%s/%d repeats a public key", w, index)
			}
			seen[pub] = true
			for _, hash := range []nano.Hash{{}, {0xff, 1}, {7: 9}} {
				sig, err := tok.Sign(ctx, w, index, hash)
				if err != nil {
					t.Fatal(err)
				}
				if !nano.Verify(pub, hash[:], sig) {
					t.Fatalf("%s/%d: signature does not verify", w, index)
				}
				again, err := tok.Sign(ctx, w, index, hash)
				if err != nil || again != sig {
					t.Fatalf("%s/%d: signing is not deterministic", w, index)
				}
				if got, err := tok.SignFor(ctx, w, index, pub, hash); err != nil || got != sig {
					t.Fatalf("%s/%d: SignFor(its own account) = %X, %v; want Sign's signature", w, index, got, err)
				}
				other := pub
				other[31] ^= 1
				if got, err := tok.SignFor(ctx, w, index, other, hash); !errors.Is(err, ErrAccountMismatch) || got != (nano.Signature{}) {
					t.Fatalf("%s/%d: SignFor(another account) = %X, %v; want no signature and ErrAccountMismatch", w, index, got, err)
				}
			}
		}
	}
	if _, err := tok.Sign(ctx, "gamma", 0, nano.Hash{}); !errors.Is(err, ErrWalletNotFound) {
		t.Fatalf("Sign(unknown wallet) = %v, want ErrWalletNotFound", err)
	}
	if _, err := tok.SignFor(ctx, "gamma", 0, nano.PublicKey{}, nano.Hash{}); !errors.Is(err, ErrWalletNotFound) {
		t.Fatalf("SignFor(unknown wallet) = %v, want ErrWalletNotFound", err)
	}
	if _, err := tok.Wallet(ctx, "gamma"); !errors.Is(err, ErrWalletNotFound) {
		t.Fatalf("Wallet(unknown) = %v", err)
	}
	var ce *ConfigError
	if _, err := tok.Sign(ctx, "", 0, nano.Hash{}); !errors.As(err, &ce) {
		t.Fatalf("Sign(empty label) = %v", err)
	}
}

func TestDuplicateLabels(t *testing.T) {
	tok, _, _ := mustToken(t, tokenOpts{})
	ctx := context.Background()
	mustWallet(t, tok, "taken")
	export, err := tok.ExportWallet(ctx, "taken")
	if err != nil {
		t.Fatal(err)
	}
	seed := nano.Seed{9}
	tests := map[string]func() error{
		"CreateWallet": func() error { _, err := tok.CreateWallet(ctx, "taken"); return err },
		"ImportWallet": func() error { _, err := tok.ImportWallet(ctx, "taken", &seed); return err },
		"ImportMnemonic": func() error {
			_, err := tok.ImportMnemonic(ctx, "taken", []byte(bip39Vectors[0].mnemonic), nil)
			return err
		},
		"RestoreWallet":         func() error { _, err := tok.RestoreWallet(ctx, "taken", export); return err },
		"RestoreWallet same id": func() error { _, err := tok.RestoreWallet(ctx, "other", export); return err },
	}
	for name, f := range tests {
		if err := f(); !errors.Is(err, ErrWalletExists) {
			t.Errorf("%s = %v, want ErrWalletExists", name, err)
		}
	}
	if list, _ := tok.ListWallets(ctx); len(list) != 1 {
		t.Fatalf("%d wallets after refused creations", len(list))
	}
}

// vectorCase is one case of testdata/vectors/public.json.
type vectorCase struct {
	ID       string         `json:"id"`
	Kind     string         `json:"kind"`
	Input    map[string]any `json:"input"`
	Expected map[string]any `json:"expected"`
}

// str returns m[k] if it is a string, else "".
func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func loadVectors(t *testing.T) []vectorCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "vectors", "public.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []vectorCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Cases
}

// Imported seeds give exactly the public vectors' keys and signatures.
func TestImportedSeedVectors(t *testing.T) {
	tok, _, _ := mustToken(t, tokenOpts{})
	ctx := context.Background()
	cases := loadVectors(t)

	// One wallet per distinct seed; remember which private key is which
	// account, to find the block vectors signed by a seed's account.
	wallets := map[string]string{} // seed hex → label
	type account struct {
		wallet string
		index  uint32
	}
	byPrivate := map[string]account{}
	n := 0
	for _, c := range cases {
		if c.Kind != "seed_to_account" {
			continue
		}
		n++
		t.Run(c.ID, func(t *testing.T) {
			seedHex := strings.ToUpper(str(c.Input, "seed"))
			label, ok := wallets[seedHex]
			if !ok {
				seed, err := nano.ParseSeed(seedHex)
				if err != nil {
					t.Fatal(err)
				}
				label = "seed-" + strconv.Itoa(len(wallets))
				if _, err := tok.ImportWallet(ctx, label, &seed); err != nil {
					t.Fatal(err)
				}
				seed.Wipe()
				wallets[seedHex] = label
			}
			index, err := strconv.ParseUint(str(c.Input, "index"), 10, 32)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := tok.PublicKey(ctx, label, uint32(index))
			if err != nil {
				t.Fatal(err)
			}
			if got := pub.String(); got != strings.ToUpper(str(c.Expected, "public_key")) {
				t.Fatalf("public key %s, want %s", got, str(c.Expected, "public_key"))
			}
			if got := pub.Address(); got != str(c.Expected, "address") {
				t.Fatalf("address %s, want %s", got, str(c.Expected, "address"))
			}
			byPrivate[strings.ToUpper(str(c.Expected, "private_key"))] = account{label, uint32(index)}
		})
	}
	if n == 0 {
		t.Fatal("no seed_to_account vectors")
	}

	signed := 0
	for _, c := range cases {
		if c.Kind != "state_block" || str(c.Expected, "signature") == "" {
			continue
		}
		acct, ok := byPrivate[strings.ToUpper(str(c.Input, "private_key"))]
		if !ok {
			continue
		}
		signed++
		t.Run(c.ID, func(t *testing.T) {
			hash, err := nano.ParseHash(str(c.Expected, "hash"))
			if err != nil {
				t.Fatal(err)
			}
			sig, err := tok.Sign(ctx, acct.wallet, acct.index, hash)
			if err != nil {
				t.Fatal(err)
			}
			if got := sig.String(); got != strings.ToUpper(str(c.Expected, "signature")) {
				t.Fatalf("signature %s, want %s", got, str(c.Expected, "signature"))
			}
		})
	}
	// blk_open_max_a1, blk_send_a1, blk_change_a1 (seed_det1 index 1) and
	// blk_open_1raw_a2 (seed_det1 index 2).
	if signed < 4 {
		t.Fatalf("only %d block vectors are signed by an imported seed's account", signed)
	}
}

func TestImportMnemonic(t *testing.T) {
	tok, _, _ := mustToken(t, tokenOpts{})
	ctx := context.Background()
	for _, v := range bip39Vectors {
		if len(v.accounts) == 0 {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			info, err := tok.ImportMnemonic(ctx, v.name, []byte(v.mnemonic), []byte(v.passphrase))
			if err != nil {
				t.Fatal(err)
			}
			if info.Kind != KindBIP39 {
				t.Fatalf("kind %s", info.Kind)
			}
			for index, want := range v.accounts {
				pub, err := tok.PublicKey(ctx, v.name, index)
				if err != nil {
					t.Fatal(err)
				}
				if got := hex.EncodeToString(pub[:]); got != want[1] {
					t.Fatalf("index %d: public key %s, want %s", index, got, want[1])
				}
				priv, _ := nano.ParsePrivateKey(want[0])
				hash := nano.Hash{0xab, byte(index)}
				sig, err := tok.Sign(ctx, v.name, index, hash)
				if err != nil {
					t.Fatal(err)
				}
				if sig != nano.Sign(&priv, hash[:]) || !nano.Verify(pub, hash[:], sig) {
					t.Fatalf("index %d: signature differs from the vector key's", index)
				}
			}
		})
	}
	// The Nano documentation's address for account 0.
	pub, err := tok.PublicKey(ctx, "nano-docs", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := pub.Address(); got != "nano_1pu7p5n3ghq1i1p4rhmek41f5add1uh34xpb94nkbxe8g4a6x1p69emk8y1d" {
		t.Fatalf("address %s", got)
	}
	if _, err := tok.Sign(ctx, "nano-docs", 1<<31, nano.Hash{}); !errors.Is(err, ErrIndexRange) {
		t.Fatalf("Sign(index 2^31) = %v, want ErrIndexRange", err)
	}
	if _, err := tok.ImportMnemonic(ctx, "bad", []byte(strings.Repeat("abandon ", 12)), nil); !errors.Is(err, ErrBadMnemonic) {
		t.Fatalf("ImportMnemonic(bad checksum) = %v, want ErrBadMnemonic", err)
	}
	if _, err := tok.Wallet(ctx, "bad"); !errors.Is(err, ErrWalletNotFound) {
		t.Fatal("a refused mnemonic was stored")
	}
}

// editExport changes the sealed blob inside an export, keeping the
// metadata consistent with it so that only the seal can catch the change.
func editExport(t *testing.T, export []byte, edit func(blob []byte) []byte) []byte {
	t.Helper()
	var e walletExport
	if err := json.Unmarshal(export, &e); err != nil {
		t.Fatal(err)
	}
	blob, err := base64.StdEncoding.DecodeString(e.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	blob = edit(blob)
	b, err := parseBlob(blob)
	if err != nil {
		t.Fatal(err)
	}
	e.Sealed = base64.StdEncoding.EncodeToString(blob)
	e.WalletID = b.id.String()
	e.Kind = b.kind.String()
	e.Scheme = ""
	if b.version != blobV1 {
		e.Scheme = b.scheme.String()
	}
	out, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func flip(i int, bit byte) func([]byte) []byte {
	return func(b []byte) []byte {
		if i < 0 {
			i += len(b)
		}
		b[i] ^= bit
		return b
	}
}

// A seal opens only as what it was made: every byte of the ciphertext,
// tag or MAC, of the IV, and of the header (wallet id, format version) is
// bound, for each scheme; a wallet moved under another id never opens as
// that wallet.
func TestTamperedSeal(t *testing.T) {
	for _, scheme := range Schemes {
		t.Run(scheme.String(), func(t *testing.T) { testTamperedSeal(t, scheme) })
	}
}

func testTamperedSeal(t *testing.T, scheme SealScheme) {
	tok, _, _ := mustToken(t, tokenOpts{scheme: scheme})
	ctx := context.Background()
	mustWallet(t, tok, "w")
	export, err := tok.ExportWallet(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	ivLen, _, _, _ := sealedLens(scheme, KindSeed)
	tests := []struct {
		name string
		edit func([]byte) []byte
	}{
		{"ciphertext", flip(blobV2HeaderLen+ivLen, 1)},
		{"last ciphertext byte", flip(blobV2HeaderLen+ivLen+cbcLen(32)-1, 1)},
		{"tag or MAC", flip(-1, 0x80)},
		{"IV", flip(blobV2HeaderLen, 1)},
		{"wallet id", flip(3, 1)},
		{"another wallet's id", func(b []byte) []byte { copy(b[3:19], "another-wallet!!"); return b }},
	}
	if scheme == SchemeAESGCM {
		// The same IV and ciphertext under the version 1 header.
		tests = append(tests, struct {
			name string
			edit func([]byte) []byte
		}{"format version (as version 1)", func(b []byte) []byte {
			v1 := append([]byte{blobV1, b[2]}, b[3:19]...)
			return append(v1, b[blobV2HeaderLen:]...)
		}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := editExport(t, export, tt.edit)
			if _, err := tok.RestoreWallet(ctx, "restored", bad); !errors.Is(err, ErrSealBroken) {
				t.Fatalf("RestoreWallet = %v, want ErrSealBroken", err)
			}
			if _, err := tok.Wallet(ctx, "restored"); !errors.Is(err, ErrWalletNotFound) {
				t.Fatal("a broken wallet was stored")
			}
		})
	}
	for name, edit := range map[string]func([]byte) []byte{
		"version": func(b []byte) []byte { b[0] = 3; return b },
		"scheme":  func(b []byte) []byte { b[1] = byte(3 - scheme); return b },
	} {
		var e walletExport
		_ = json.Unmarshal(export, &e)
		blob, _ := base64.StdEncoding.DecodeString(e.Sealed)
		e.Sealed = base64.StdEncoding.EncodeToString(edit(blob))
		bad, _ := json.Marshal(e)
		if _, err := tok.RestoreWallet(ctx, "restored", bad); !errors.Is(err, ErrBadBlob) {
			t.Fatalf("%s: RestoreWallet = %v, want ErrBadBlob", name, err)
		}
	}

	// A broken blob stored on the token (written behind nanokms's back)
	// fails at signing time with ErrSealBroken.
	err = tok.do(ctx, func(s *session) error {
		b, err := s.findWallet("w")
		if err != nil {
			return err
		}
		b.id[0] ^= 1 // as if moved under another wallet id
		m, err := s.masterKey()
		if err != nil {
			return err
		}
		_, err = s.store("moved", &b, m)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Sign(ctx, "moved", 0, nano.Hash{}); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("Sign(tampered) = %v, want ErrSealBroken", err)
	}
	if _, err := tok.Sign(ctx, "w", 0, nano.Hash{}); err != nil {
		t.Fatalf("Sign(intact) after a broken seal: %v", err)
	}
}

func TestExportRestore(t *testing.T) {
	for _, scheme := range Schemes {
		t.Run(scheme.String(), func(t *testing.T) { testExportRestore(t, scheme) })
	}
}

func testExportRestore(t *testing.T, scheme SealScheme) {
	tok, _, _ := mustToken(t, tokenOpts{scheme: scheme})
	ctx := context.Background()
	info := mustWallet(t, tok, "w")
	export, err := tok.ExportWallet(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	// Ciphertext and metadata only.
	var e map[string]any
	if err := json.Unmarshal(export, &e); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"format", "label", "wallet_id", "kind", "scheme", "master_key_check", "sealed"} {
		if _, ok := e[k]; !ok {
			t.Errorf("export lacks %q", k)
		}
	}
	if e["scheme"] != scheme.String() {
		t.Errorf("scheme %v, want %s", e["scheme"], scheme)
	}
	if len(e) != 7 {
		t.Errorf("export has %d fields: %v", len(e), e)
	}
	if e["wallet_id"] != info.ID.String() {
		t.Errorf("wallet_id %v, want %s", e["wallet_id"], info.ID)
	}

	// A token with another master key refuses it.
	other, _, _ := mustToken(t, tokenOpts{scheme: scheme})
	if _, err := other.RestoreWallet(ctx, "w", export); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("RestoreWallet on another master key = %v, want ErrWrongMasterKey", err)
	}
	// Claiming the other token's check value does not help: the seal fails.
	mk, err := other.MasterKeyAttributes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ex walletExport
	_ = json.Unmarshal(export, &ex)
	ex.MasterKeyCheck = mk.Check
	forged, _ := json.Marshal(ex)
	if _, err := other.RestoreWallet(ctx, "w", forged); !errors.Is(err, ErrSealBroken) {
		t.Fatalf("RestoreWallet with a forged check value = %v, want ErrSealBroken", err)
	}
}
