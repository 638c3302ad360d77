package nano

import (
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// vectorCase is one conformance case of testdata/vectors/public.json.
type vectorCase struct {
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	Description string            `json:"description"`
	Input       map[string]string `json:"input"`
	Expected    json.RawMessage   `json:"expected"`
}

// mustVectors reads the conformance vectors; every test that uses them goes
// through here.
func mustVectors(t testing.TB) []vectorCase {
	t.Helper()
	data, err := os.ReadFile("../testdata/vectors/public.json")
	if err != nil {
		t.Fatalf("reading vectors: %v", err)
	}
	var file struct {
		Schema string       `json:"schema"`
		Cases  []vectorCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("decoding vectors: %v", err)
	}
	if len(file.Cases) == 0 {
		t.Fatal("no vector cases")
	}
	return file.Cases
}

func TestVectors(t *testing.T) {
	checkers := map[string]func(*testing.T, vectorCase){
		"seed_to_account":    checkSeedToAccount,
		"private_to_account": checkPrivateToAccount,
		"state_block":        checkStateBlock,
		"real_block":         checkRealBlock,
		"work":               checkWork,
		"address_decode":     checkAddressDecode,
		"address_encode":     checkAddressEncode,
		"signature_verify":   checkSignatureVerify,
	}
	seen := map[string]int{}
	for _, c := range mustVectors(t) {
		check, ok := checkers[c.Kind]
		if !ok {
			t.Errorf("%s: no checker for kind %q", c.ID, c.Kind)
			continue
		}
		seen[c.Kind]++
		t.Run(c.ID, func(t *testing.T) { check(t, c) })
	}
	for kind := range checkers {
		if seen[kind] == 0 {
			t.Errorf("no vector of kind %q", kind)
		}
	}
}

func expect(t *testing.T, c vectorCase) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(c.Expected, &m); err != nil {
		t.Fatalf("expected: %v", err)
	}
	return m
}

func str(t *testing.T, m map[string]any, key string) string {
	t.Helper()
	s, ok := m[key].(string)
	if !ok {
		t.Fatalf("expected.%s missing or not a string", key)
	}
	return s
}

func mustHex32(t *testing.T, s string) [32]byte {
	t.Helper()
	h, err := ParseHash(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return h
}

func checkSeedToAccount(t *testing.T, c vectorCase) {
	want := expect(t, c)
	seed, err := ParseSeed(c.Input["seed"])
	if err != nil {
		t.Fatal(err)
	}
	idx, err := strconv.ParseUint(c.Input["index"], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	priv := DeriveKey(&seed, uint32(idx))
	if got, w := upperHex(priv[:]), str(t, want, "private_key"); got != w {
		t.Errorf("private key = %s, want %s", got, w)
	}
	pub := priv.PublicKey()
	if got, w := pub.String(), str(t, want, "public_key"); got != w {
		t.Errorf("public key = %s, want %s", got, w)
	}
	if got, w := pub.Address(), str(t, want, "address"); got != w {
		t.Errorf("address = %s, want %s", got, w)
	}
	for _, key := range []string{"address", "address_xrb"} {
		k, err := ParseAddress(str(t, want, key))
		if err != nil || k != pub {
			t.Errorf("ParseAddress(%s) = %v, %v; want %v", key, k, err, pub)
		}
	}
}

func checkPrivateToAccount(t *testing.T, c vectorCase) {
	want := expect(t, c)
	priv, err := ParsePrivateKey(c.Input["private_key"])
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.PublicKey()
	if got, w := pub.String(), str(t, want, "public_key"); got != w {
		t.Errorf("public key = %s, want %s", got, w)
	}
	if got, w := pub.Address(), str(t, want, "address"); got != w {
		t.Errorf("address = %s, want %s", got, w)
	}
}

// blockFromInput builds a block from a vector's input fields through the
// JSON parser, so the vectors exercise the same path as node documents.
func blockFromInput(c vectorCase) (ParsedBlock, error) {
	obj := map[string]string{"type": "state"}
	for _, k := range []string{"account", "previous", "representative", "balance", "link", "signature", "work"} {
		if v, ok := c.Input[k]; ok {
			if k == "work" {
				v = strings.ToLower(v)
			}
			obj[k] = v
		}
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return ParsedBlock{}, err
	}
	return ParseBlockJSON(data)
}

func checkBlockBasics(t *testing.T, c vectorCase, b *StateBlock, want map[string]any) {
	t.Helper()
	if got, w := b.Account.String(), c.Input["account_public_key"]; got != w {
		t.Errorf("account key = %s, want %s", got, w)
	}
	if got, w := b.Representative.String(), c.Input["representative_public_key"]; got != w {
		t.Errorf("representative key = %s, want %s", got, w)
	}
	if got, w := b.Hash().String(), str(t, want, "hash"); got != w {
		t.Errorf("hash = %s, want %s", got, w)
	}
	if w, ok := want["work_root"].(string); ok {
		if got := b.Root().String(); got != w {
			t.Errorf("work root = %s, want %s", got, w)
		}
	}
	if w, ok := want["work_value"].(string); ok {
		if got := upperHex64(b.WorkValue()); got != w {
			t.Errorf("work value = %s, want %s", got, w)
		}
	}
	if w, ok := want["link_as_account"].(string); ok {
		if got := PublicKey(b.Link).Address(); got != w {
			t.Errorf("link as account = %s, want %s", got, w)
		}
	}
	if meets, ok := want["work_meets"].(map[string]any); ok {
		for name, v := range meets {
			m := v.(map[string]any)
			th, err := ParseThreshold(m["threshold"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if got := b.Validate(th); got != m["valid"].(bool) {
				t.Errorf("work meets %s = %v, want %v", name, got, m["valid"])
			}
		}
	}
}

func upperHex64(v uint64) string {
	s := strconv.FormatUint(v, 16)
	return strings.ToUpper(strings.Repeat("0", 16-len(s)) + s)
}

func checkStateBlock(t *testing.T, c vectorCase) {
	want := expect(t, c)
	pb, err := blockFromInput(c)
	if wantErr, ok := want["error"].(string); ok {
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("error = %v, want a *ParseError (%s)", err, wantErr)
		}
		if wantErr == "balance_out_of_range" && (pe.Field != "balance" || !errors.Is(err, ErrRange)) {
			t.Errorf("error = %v (field %q), want balance out of range", err, pe.Field)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	b := &pb.Block
	checkBlockBasics(t, c, b, want)

	priv, err := ParsePrivateKey(c.Input["private_key"])
	if err != nil {
		t.Fatal(err)
	}
	if priv.PublicKey() != b.Account {
		t.Fatalf("private key does not belong to the account")
	}
	h := b.Hash()
	sig := Sign(&priv, h[:])
	if got, w := sig.String(), str(t, want, "signature"); got != w {
		t.Errorf("signature = %s, want %s", got, w)
	}
	if got := NewSigningKey(&priv).Sign(h[:]); got != sig {
		t.Errorf("SigningKey.Sign differs from Sign")
	}
	if !Verify(b.Account, h[:], sig) {
		t.Errorf("own signature does not verify")
	}
}

// TestVectorSubtypes checks the subtype each state-block vector names,
// taking the previous balance from the vector whose hash is its previous
// (the vectors chain: open → receive → send → …).
func TestVectorSubtypes(t *testing.T) {
	balances := map[Hash]Amount{}
	var blocks []struct {
		id, subtype string
		b           StateBlock
	}
	for _, c := range mustVectors(t) {
		if c.Kind != "state_block" && c.Kind != "real_block" {
			continue
		}
		pb, err := blockFromInput(c)
		if err != nil {
			continue // the error cases are checked by TestVectors
		}
		balances[pb.Block.Hash()] = pb.Block.Balance
		if st := c.Input["subtype"]; st != "" {
			blocks = append(blocks, struct {
				id, subtype string
				b           StateBlock
			}{c.ID, st, pb.Block})
		}
	}
	checked := 0
	for _, v := range blocks {
		prev, ok := balances[v.b.Previous]
		if !ok && !v.b.IsOpen() {
			continue
		}
		checked++
		t.Run(v.id, func(t *testing.T) {
			got, err := v.b.Subtype(prev)
			if err != nil || got.String() != v.subtype {
				t.Errorf("Subtype = %v, %v; want %s", got, err, v.subtype)
			}
		})
	}
	if checked < 5 {
		t.Errorf("only %d vectors had a known previous balance", checked)
	}
}

func checkRealBlock(t *testing.T, c vectorCase) {
	want := expect(t, c)
	pb, err := blockFromInput(c)
	if err != nil {
		t.Fatal(err)
	}
	b := &pb.Block
	checkBlockBasics(t, c, b, want)
	wantValid, ok := want["signature_valid"].(bool)
	if !ok {
		t.Fatal("expected.signature_valid missing")
	}
	if got := b.VerifySignature(); got != wantValid {
		t.Errorf("signature valid = %v, want %v", got, wantValid)
	}
	// The real blocks predate epoch 2: their work meets epoch 1 and the
	// epoch-2 receive threshold but not the epoch-2 send threshold.
	if !b.Validate(ThresholdEpoch1) || !b.Validate(ThresholdReceive) || b.Validate(ThresholdSend) {
		t.Errorf("work value %016x: want ≥ epoch-1 and receive thresholds, < send threshold", b.WorkValue())
	}
}

func checkWork(t *testing.T, c vectorCase) {
	want := expect(t, c)
	root := Hash(mustHex32(t, c.Input["root"]))
	w, err := ParseWork(c.Input["work"])
	if err != nil {
		t.Fatal(err)
	}
	th, err := ParseThreshold(c.Input["threshold"])
	if err != nil {
		t.Fatal(err)
	}
	if got, wv := upperHex64(WorkValue(root, w)), str(t, want, "value"); got != wv {
		t.Errorf("value = %s, want %s", got, wv)
	}
	if got := ValidateWork(root, w, th); got != want["valid"].(bool) {
		t.Errorf("valid = %v, want %v", got, want["valid"])
	}
}

func checkAddressDecode(t *testing.T, c vectorCase) {
	want := expect(t, c)
	k, err := ParseAddress(c.Input["address"])
	if want["valid"].(bool) {
		if err != nil {
			t.Fatal(err)
		}
		if got, w := k.String(), str(t, want, "public_key"); got != w {
			t.Errorf("public key = %s, want %s", got, w)
		}
		return
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Field != "address" {
		t.Errorf("error = %v, want a *ParseError for field address", err)
	}
	if k != (PublicKey{}) {
		t.Errorf("returned a non-zero key on error")
	}
}

func checkAddressEncode(t *testing.T, c vectorCase) {
	want := expect(t, c)
	k := PublicKey(mustHex32(t, c.Input["public_key"]))
	if got, w := k.Address(), str(t, want, "address"); got != w {
		t.Errorf("address = %s, want %s", got, w)
	}
}

func checkSignatureVerify(t *testing.T, c vectorCase) {
	want := expect(t, c)
	pub := PublicKey(mustHex32(t, c.Input["public_key"]))
	msg := mustHex32(t, c.Input["message"])
	sig, err := ParseSignature(c.Input["signature"])
	if err != nil {
		t.Fatal(err)
	}
	if got := Verify(pub, msg[:], sig); got != want["valid"].(bool) {
		t.Errorf("Verify = %v, want %v", got, want["valid"])
	}
}
