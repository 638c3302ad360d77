package nano_test

// Fuzz targets for the nano package's parsers and signatures. Each target is
// seeded from the conformance vectors (../testdata/vectors/public.json), the
// real node documents (../testdata/node/*.json) and hand-picked edge cases;
// more inputs (edge cases, past failures) are in testdata/fuzz/<target>.
// Without -fuzz, `go test` runs every seed as a unit test.
//
//	go test ./nano -run XXX -fuzz '^FuzzParseAddress$' -fuzztime 100000x

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/nano"
)

// fuzzVectorCase is one case of public.json; only string-valued members of
// input and expected are read.
type fuzzVectorCase struct {
	ID       string         `json:"id"`
	Kind     string         `json:"kind"`
	Input    map[string]any `json:"input"`
	Expected map[string]any `json:"expected"`
}

func fuzzLoadVectors(tb testing.TB) []fuzzVectorCase {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "vectors", "public.json"))
	if err != nil {
		tb.Fatalf("reading vectors: %v", err)
	}
	var doc struct {
		Cases []fuzzVectorCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		tb.Fatalf("decoding vectors: %v", err)
	}
	if len(doc.Cases) == 0 {
		tb.Fatal("no vector cases")
	}
	return doc.Cases
}

// fuzzStr returns m[key] when it is a string.
func fuzzStr(m map[string]any, key string) (string, bool) {
	s, ok := m[key].(string)
	return s, ok
}

func fuzzNodeDocs(tb testing.TB) [][]byte {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join("..", "testdata", "node", "*.json"))
	if err != nil || len(names) == 0 {
		tb.Fatalf("no node documents (%v)", err)
	}
	var docs [][]byte
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		docs = append(docs, data)
	}
	return docs
}

// fuzzCheckParseError asserts that err is a *nano.ParseError naming a field.
func fuzzCheckParseError(t *testing.T, err error, input any) *nano.ParseError {
	t.Helper()
	var pe *nano.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("%q: error %v (%T) is not a *nano.ParseError", input, err, err)
	}
	if pe.Field == "" {
		t.Fatalf("%q: ParseError %v has an empty Field", input, err)
	}
	if pe.Err == nil {
		t.Fatalf("%q: ParseError %v wraps no sentinel", input, err)
	}
	return pe
}

// ---------------------------------------------------------------- addresses

func FuzzParseAddress(f *testing.F) {
	for _, c := range fuzzLoadVectors(f) {
		switch c.Kind {
		case "address_decode":
			if s, ok := fuzzStr(c.Input, "address"); ok {
				f.Add(s)
			}
		case "address_encode", "seed_to_account", "private_to_account":
			for _, k := range []string{"address", "address_xrb"} {
				if s, ok := fuzzStr(c.Expected, k); ok {
					f.Add(s)
				}
			}
		case "state_block", "real_block":
			for _, k := range []string{"account", "representative"} {
				if s, ok := fuzzStr(c.Input, k); ok {
					f.Add(s)
				}
			}
			if s, ok := fuzzStr(c.Expected, "link_as_account"); ok {
				f.Add(s)
			}
		}
	}
	burn := "nano_1111111111111111111111111111111111111111111111111111hifc8npp"
	for _, s := range []string{
		"", "nano_", "xrb_", "nano", "xrb", "NANO_", "ban_1111111111111111111111111111111111111111111111111111hifc8npp",
		burn,
		strings.ToUpper(burn),                  // uppercase body is refused
		"xrb_" + burn[5:],                      // legacy prefix
		"nano_3" + burn[6:],                    // first character carries a key bit
		"nano_4" + burn[6:],                    // padding bits set
		"nano_z" + burn[6:],                    // padding bits set
		burn + "1",                             // 61 characters
		burn[:len(burn)-1],                     // 59 characters
		"nano_" + strings.Repeat("1", 60),      // bad checksum
		"nano_" + strings.Repeat("\xff", 60),   // bytes outside ASCII
		"nano_" + strings.Repeat("é", 30),      // 60 bytes of UTF-8
		"nano_" + strings.Repeat("z", 60),      // all-ones body
		"nano_nano_" + strings.Repeat("1", 55), // prefix twice
		" " + burn, burn + "\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := nano.ParseAddress(s)
		if err != nil {
			fuzzCheckParseError(t, err, s)
			if !k.IsZero() {
				t.Fatalf("%q: error %v but a non-zero key %s", s, err, k)
			}
			// ParseAccount takes the address path for these prefixes and
			// must agree.
			if strings.HasPrefix(s, nano.AddressPrefix) || strings.HasPrefix(s, nano.LegacyAddressPrefix) {
				if _, err2 := nano.ParseAccount(s); err2 == nil {
					t.Fatalf("%q: ParseAddress failed (%v) but ParseAccount accepted it", s, err)
				}
			}
			return
		}
		addr := k.Address()
		k2, err := nano.ParseAddress(addr)
		if err != nil || k2 != k {
			t.Fatalf("%q: Address() %q re-parses to %s, %v; want %s", s, addr, k2, err, k)
		}
		norm := s
		if strings.HasPrefix(norm, nano.LegacyAddressPrefix) {
			norm = nano.AddressPrefix + norm[len(nano.LegacyAddressPrefix):]
		}
		if norm != addr {
			t.Fatalf("%q accepted but is not canonical: Address() is %q", s, addr)
		}
		if k3, err := nano.ParseAccount(s); err != nil || k3 != k {
			t.Fatalf("%q: ParseAccount gives %s, %v; want %s", s, k3, err, k)
		}
		var k4 nano.PublicKey
		if err := k4.UnmarshalText([]byte(s)); err != nil || k4 != k {
			t.Fatalf("%q: UnmarshalText gives %s, %v; want %s", s, k4, err, k)
		}
	})
}

// ---------------------------------------------------------------- amounts

var fuzzTwo128 = new(big.Int).Lsh(big.NewInt(1), 128)

// fuzzAmountBig returns a as a big.Int.
func fuzzAmountBig(a nano.Amount) *big.Int {
	b := a.Bytes()
	return new(big.Int).SetBytes(b[:])
}

func fuzzIsDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// fuzzAmountSeeds returns the balances in the vectors and edge cases that
// are meaningful as raw and as XNO.
func fuzzAmountSeeds(tb testing.TB) []string {
	var seeds []string
	for _, c := range fuzzLoadVectors(tb) {
		if c.Kind != "state_block" && c.Kind != "real_block" {
			continue
		}
		if s, ok := fuzzStr(c.Input, "balance"); ok {
			seeds = append(seeds, s)
		}
	}
	return append(seeds,
		"", "0", "1", "00", "01", "007", "10", "-0", "-1", "+1", " 1", "1 ", "1e3", "0x10", "١", "1_000",
		"18446744073709551615", "18446744073709551616", // 2^64 − 1, 2^64
		"340282366920938463463374607431768211455", // 2^128 − 1
		"340282366920938463463374607431768211456", // 2^128
		"999999999999999999999999999999999999999",
		"1000000000000000000000000000000", // 1 XNO in raw
		"1.5", "0.000001", "0.000000000000000000000000000001", "340282366.920938463463374607431768211455",
		"340282366.920938463463374607431768211456", "340282367", ".5", "1.", ".", "1..2", "1.2.3",
		"1.0000000000000000000000000000001", // 31 places
		"1.000000000000000000000000000000",  // 30 places
		strings.Repeat("9", 80), strings.Repeat("0", 40),
	)
}

func FuzzParseAmount(f *testing.F) {
	for _, s := range fuzzAmountSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := nano.ParseAmount(s)

		// The reference: one or more ASCII digits, any value below 2^128.
		var want *big.Int
		if fuzzIsDigits(s) {
			want, _ = new(big.Int).SetString(s, 10)
		}
		switch {
		case want == nil:
			if err == nil {
				t.Fatalf("ParseAmount(%q) = %s, want a syntax error", s, a)
			}
			fuzzCheckParseError(t, err, s)
			if !errors.Is(err, nano.ErrSyntax) {
				t.Fatalf("ParseAmount(%q): %v, want ErrSyntax", s, err)
			}
		case want.Cmp(fuzzTwo128) >= 0:
			if err == nil {
				t.Fatalf("ParseAmount(%q) = %s, want ErrRange (value ≥ 2^128)", s, a)
			}
			fuzzCheckParseError(t, err, s)
			if !errors.Is(err, nano.ErrRange) {
				t.Fatalf("ParseAmount(%q): %v, want ErrRange", s, err)
			}
		default:
			if err != nil {
				t.Fatalf("ParseAmount(%q): %v; want %s (a decimal number of raw below 2^128)", s, err, want)
			}
			if got := fuzzAmountBig(a); got.Cmp(want) != 0 {
				t.Fatalf("ParseAmount(%q) = %s, want %s", s, got, want)
			}
		}
		if err != nil {
			if !a.IsZero() {
				t.Fatalf("ParseAmount(%q): error %v with non-zero amount %s", s, err, a)
			}
			return
		}

		// Round trips through both printed forms.
		str := a.String()
		if str != fuzzAmountBig(a).String() {
			t.Fatalf("ParseAmount(%q).String() = %q, want %q", s, str, fuzzAmountBig(a).String())
		}
		if a2, err := nano.ParseAmount(str); err != nil || a2 != a {
			t.Fatalf("String() %q re-parses to %s, %v; want %s", str, a2, err, a)
		}
		if a2, err := nano.ParseXNO(a.XNO()); err != nil || a2 != a {
			t.Fatalf("XNO() %q re-parses to %s, %v; want %s", a.XNO(), a2, err, a)
		}
		// ParseAmountUnit reads a bare number, or one with a raw suffix, as raw.
		for _, u := range []string{s, s + " raw", s + "raw", " " + s + " RAW "} {
			if a2, err := nano.ParseAmountUnit(u); err != nil || a2 != a {
				t.Fatalf("ParseAmountUnit(%q) = %s, %v; want %s", u, a2, err, a)
			}
		}
		var a3 nano.Amount
		if err := a3.UnmarshalText([]byte(s)); err != nil || a3 != a {
			t.Fatalf("UnmarshalText(%q) = %s, %v; want %s", s, a3, err, a)
		}
	})
}

// fuzzXNORef returns the value of s in raw, or nil and the sentinel the
// reference expects (ErrSyntax or ErrPrecision) when s is not a plain
// decimal number of XNO with at most 30 places.
func fuzzXNORef(s string) (*big.Int, error) {
	whole, frac, hasDot := strings.Cut(s, ".")
	if !fuzzIsDigits(whole) || (hasDot && !fuzzIsDigits(frac)) {
		return nil, nano.ErrSyntax
	}
	if len(frac) > 30 {
		return nil, nano.ErrPrecision
	}
	v, _ := new(big.Int).SetString(whole+frac+strings.Repeat("0", 30-len(frac)), 10)
	return v, nil
}

func FuzzParseXNO(f *testing.F) {
	for _, s := range fuzzAmountSeeds(f) {
		f.Add(s)
		if a, err := nano.ParseAmount(s); err == nil {
			f.Add(a.XNO())
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := nano.ParseXNO(s)
		want, refErr := fuzzXNORef(s)
		switch {
		case refErr != nil:
			if err == nil {
				t.Fatalf("ParseXNO(%q) = %s raw, want an error (%v)", s, a, refErr)
			}
			fuzzCheckParseError(t, err, s)
			if !errors.Is(err, nano.ErrSyntax) && !errors.Is(err, nano.ErrPrecision) && !errors.Is(err, nano.ErrRange) {
				t.Fatalf("ParseXNO(%q): %v wraps none of ErrSyntax, ErrPrecision, ErrRange", s, err)
			}
			if refErr == nano.ErrPrecision && !errors.Is(err, nano.ErrPrecision) {
				t.Fatalf("ParseXNO(%q): %v, want ErrPrecision", s, err)
			}
		case want.Cmp(fuzzTwo128) >= 0:
			if err == nil {
				t.Fatalf("ParseXNO(%q) = %s raw, want ErrRange (value ≥ 2^128 raw)", s, a)
			}
			fuzzCheckParseError(t, err, s)
			if !errors.Is(err, nano.ErrRange) {
				t.Fatalf("ParseXNO(%q): %v, want ErrRange", s, err)
			}
		default:
			if err != nil {
				t.Fatalf("ParseXNO(%q): %v; want %s raw", s, err, want)
			}
			if got := fuzzAmountBig(a); got.Cmp(want) != 0 {
				t.Fatalf("ParseXNO(%q) = %s raw, want %s", s, got, want)
			}
		}
		if err != nil {
			if !a.IsZero() {
				t.Fatalf("ParseXNO(%q): error %v with non-zero amount %s", s, err, a)
			}
			return
		}

		x := a.XNO()
		if a2, err := nano.ParseXNO(x); err != nil || a2 != a {
			t.Fatalf("XNO() %q re-parses to %s, %v; want %s", x, a2, err, a)
		}
		// XNO() is the canonical form: no leading zeros in the whole part
		// (except a lone 0), no trailing zeros after the point.
		if whole, frac, hasDot := strings.Cut(x, "."); (len(whole) > 1 && whole[0] == '0') || (hasDot && (frac == "" || strings.HasSuffix(frac, "0"))) {
			t.Fatalf("XNO() = %q is not canonical", x)
		}
		if a2, err := nano.ParseAmount(a.String()); err != nil || a2 != a {
			t.Fatalf("String() %q re-parses to %s, %v; want %s", a.String(), a2, err, a)
		}
		for _, u := range []string{s + " XNO", s + "XNO", s + " xno", " " + s + " Xno "} {
			if a2, err := nano.ParseAmountUnit(u); err != nil || a2 != a {
				t.Fatalf("ParseAmountUnit(%q) = %s, %v; want %s", u, a2, err, a)
			}
		}
	})
}

// ---------------------------------------------------------------- block JSON

// fuzzBlockSeeds returns JSON documents built from the vector blocks.
func fuzzBlockSeeds(tb testing.TB) [][]byte {
	var out [][]byte
	for _, c := range fuzzLoadVectors(tb) {
		if c.Kind != "state_block" && c.Kind != "real_block" {
			continue
		}
		m := map[string]string{"type": "state"}
		for _, k := range []string{"account", "previous", "representative", "balance", "link", "signature", "work"} {
			if s, ok := fuzzStr(c.Input, k); ok {
				m[k] = s
			}
		}
		if s, ok := fuzzStr(c.Expected, "signature"); ok {
			m["signature"] = s
		}
		if s, ok := fuzzStr(c.Expected, "link_as_account"); ok {
			m["link_as_account"] = s
		}
		doc, err := json.Marshal(m)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, doc)
		// The same block as a "block" envelope holding a JSON string.
		env, _ := json.Marshal(map[string]string{"action": "process", "block": string(doc)})
		out = append(out, env)
	}
	return out
}

func FuzzParseBlockJSON(f *testing.F) {
	for _, d := range fuzzNodeDocs(f) {
		f.Add(d)
	}
	for _, d := range fuzzBlockSeeds(f) {
		f.Add(d)
	}
	block := `{"type":"state","account":"nano_1111111111111111111111111111111111111111111111111111hifc8npp",` +
		`"previous":"0000000000000000000000000000000000000000000000000000000000000000",` +
		`"representative":"0000000000000000000000000000000000000000000000000000000000000000",` +
		`"balance":"0","link":"0000000000000000000000000000000000000000000000000000000000000000"}`
	for _, s := range []string{
		"", " ", "{}", "[]", "null", `""`, `"{}"`, `"\"\""`, "{", `{"type":"state"}`, `{"type":"send"}`,
		`{"type":1}`, `{"contents":null}`, `{"block":{}}`, `{"message":{"block":"x"}}`,
		block,
		strings.Replace(block, `"balance":"0"`, `"balance":0`, 1),
		strings.Replace(block, `"balance":"0"`, `"balance":"340282366920938463463374607431768211456"`, 1),
		strings.Replace(block, `"type":"state",`, `"type":"state","type":"state",`, 1),
		strings.Replace(block, `}`, `,"link_as_account":"nano_1111111111111111111111111111111111111111111111111111hifc8npp"}`, 1),
		strings.Replace(block, `}`, `,"link_as_account":"nano_3t6k35gi95xu6tergt6p69ck76ogmitsa8mnijtpxm9fkcm736xtoncuohr3"}`, 1),
		strings.Replace(block, `}`, `,"work":"0000000000000000","signature":"`+strings.Repeat("00", 64)+`"}`, 1),
		strings.Replace(block, `}`, `,"work":"00000000000000000"}`, 1),
		block + " ", block + "{}", block + "x",
		`{"hash":"` + strings.Repeat("A", 64) + `","block":` + block + `}`,
		`{"hash":"zz","block":` + block + `}`,
		`{"contents":` + mustQuote(block) + `}`,
		`{"block":` + mustQuote(mustQuote(mustQuote(mustQuote(block)))) + `}`,
		`{"block":` + mustQuote(mustQuote(mustQuote(mustQuote(mustQuote(block))))) + `}`,
		`{"topic":"confirmation","message":{"hash":"` + strings.Repeat("0", 64) + `","block":` + block + `}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		pb, err := nano.ParseBlockJSON(data)
		if !bytes.Equal(data, orig) {
			t.Fatalf("ParseBlockJSON modified its input")
		}
		if err != nil {
			fuzzCheckParseError(t, err, data)
			if pb != (nano.ParsedBlock{}) {
				t.Fatalf("%q: error %v but a non-zero result %+v", data, err, pb)
			}
			return
		}
		blk := pb.Block
		hash := blk.Hash()
		switch pb.Form {
		case nano.FormBlock, nano.FormContents, nano.FormEnvelope, nano.FormWebSocket:
		default:
			t.Fatalf("%q: unknown form %q", data, pb.Form)
		}
		if !pb.HasSignature && !blk.Signature.IsZero() {
			t.Fatalf("%q: no signature field but a non-zero signature", data)
		}
		if !pb.HasWork && blk.Work != 0 {
			t.Fatalf("%q: no work field but non-zero work", data)
		}

		// json.Marshal → ParseBlockJSON is the identity.
		out, err := json.Marshal(blk)
		if err != nil {
			t.Fatalf("%q: json.Marshal: %v", data, err)
		}
		pb2, err := nano.ParseBlockJSON(out)
		if err != nil {
			t.Fatalf("%q: re-parsing the marshalled block %s: %v", data, out, err)
		}
		if pb2.Block != blk || pb2.Block.Hash() != hash {
			t.Fatalf("%q: marshalled block %s re-parses to %+v, want %+v", data, out, pb2.Block, blk)
		}
		if pb2.Form != nano.FormBlock || !pb2.HasSignature || !pb2.HasWork || pb2.HasClaimedHash {
			t.Fatalf("%s: parsed as %+v, want a complete bare block", out, pb2)
		}
		var ub nano.StateBlock
		if err := ub.UnmarshalJSON(out); err != nil || ub != blk {
			t.Fatalf("%s: UnmarshalJSON gives %+v, %v; want %+v", out, ub, err, blk)
		}

		// A process request, in both block forms, carries the same block.
		for _, jsonBlock := range []bool{true, false} {
			for _, st := range []nano.Subtype{nano.SubtypeUnknown, nano.SubtypeSend} {
				req, err := nano.ProcessRequest(&blk, st, jsonBlock)
				if err != nil {
					t.Fatalf("%q: ProcessRequest(json_block=%v): %v", data, jsonBlock, err)
				}
				pb3, err := nano.ParseBlockJSON(req)
				if err != nil {
					t.Fatalf("%q: re-parsing ProcessRequest(json_block=%v) %s: %v", data, jsonBlock, req, err)
				}
				if pb3.Block != blk || pb3.Block.Hash() != hash || pb3.Form != nano.FormEnvelope {
					t.Fatalf("%q: ProcessRequest(json_block=%v) %s re-parses to %+v (%s), want %+v", data, jsonBlock, req, pb3.Block, pb3.Form, blk)
				}
			}
		}
	})
}

func mustQuote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// ---------------------------------------------------------------- signatures

func FuzzSignVerify(f *testing.F) {
	var keys, msgs [][]byte
	for _, c := range fuzzLoadVectors(f) {
		for _, m := range []map[string]any{c.Input, c.Expected} {
			if s, ok := fuzzStr(m, "private_key"); ok {
				if b, err := hex.DecodeString(s); err == nil {
					keys = append(keys, b)
				}
			}
			for _, k := range []string{"hash", "message"} {
				if s, ok := fuzzStr(m, k); ok {
					if b, err := hex.DecodeString(s); err == nil {
						msgs = append(msgs, b)
					}
				}
			}
		}
	}
	keys = append(keys, make([]byte, 32), bytes.Repeat([]byte{0xff}, 32))
	msgs = append(msgs, nil, []byte("x"), make([]byte, 32), bytes.Repeat([]byte{0xa5}, 200))
	for i, k := range keys {
		f.Add(k, msgs[i%len(msgs)], uint16(i*37))
	}
	for i, m := range msgs {
		f.Add(keys[i%len(keys)], m, uint16(511-i))
	}
	f.Fuzz(func(t *testing.T, keyBytes, msg []byte, bit uint16) {
		var priv nano.PrivateKey
		copy(priv[:], keyBytes) // short keys are zero-padded, long ones cut
		sk := nano.NewSigningKey(&priv)
		defer sk.Wipe()
		pub := sk.Public()
		if p := priv.PublicKey(); p != pub {
			t.Fatalf("PrivateKey.PublicKey %s != SigningKey.Public %s", p, pub)
		}
		sig := sk.Sign(msg)
		if sig2 := nano.Sign(&priv, msg); sig2 != sig {
			t.Fatalf("Sign and SigningKey.Sign differ: %s vs %s", sig2, sig)
		}
		if !nano.Verify(pub, msg, sig) {
			t.Fatalf("Verify(%s, %x, %s) = false for a fresh signature", pub, msg, sig)
		}
		// S is canonical: the top 4 bits of the last byte are clear (S < L < 2^253).
		if sig[63]&0xf0 != 0 {
			t.Fatalf("signature %s: S is not reduced", sig)
		}

		bad := sig
		i := int(bit) % (8 * nano.SignatureSize)
		bad[i/8] ^= 1 << (i % 8)
		if nano.Verify(pub, msg, bad) {
			t.Fatalf("Verify accepted %s with bit %d flipped (msg %x)", bad, i, msg)
		}
		if len(msg) > 0 {
			m := bytes.Clone(msg)
			j := int(bit) % (8 * len(m))
			m[j/8] ^= 1 << (j % 8)
			if nano.Verify(pub, m, sig) {
				t.Fatalf("Verify accepted msg %x (bit %d of %x flipped)", m, j, msg)
			}
		}
	})
}
