package main

import (
	"cmp"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// The repository's conformance vectors, relative to this package.
const vectorsFile = "../../testdata/vectors/public.json"

// vector is one case of testdata/vectors/public.json.
type vector struct {
	ID       string          `json:"id"`
	Kind     string          `json:"kind"`
	Input    json.RawMessage `json:"input"`
	Expected json.RawMessage `json:"expected"`
}

func loadVectors(t *testing.T, kind string) []vector {
	t.Helper()
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []vector `json:"cases"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	var out []vector
	for _, c := range file.Cases {
		if c.Kind == kind {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %q vectors in %s", kind, vectorsFile)
	}
	return out
}

func unmarshal(t *testing.T, data json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

// TestVectorsWork runs every "work" vector through work validate.
func TestVectorsWork(t *testing.T) {
	for _, v := range loadVectors(t, "work") {
		t.Run(v.ID, func(t *testing.T) {
			var in struct{ Root, Work, Threshold string }
			var exp struct {
				Value string
				Valid bool
			}
			unmarshal(t, v.Input, &in)
			unmarshal(t, v.Expected, &exp)
			r := runCLI(t, "", "work", "validate", "--root", in.Root, "--work", in.Work, "--threshold", in.Threshold, "--json")
			wantCode := 0
			if !exp.Valid {
				wantCode = 1
			}
			if r.code != wantCode || r.stderr != "" {
				t.Fatalf("want exit %d and nothing on stderr, got\n%s", wantCode, r)
			}
			var out workJSON
			decodeStrict(t, r.stdout, &out)
			if out.WorkValue != exp.Value || out.WorkValid != exp.Valid || out.WorkThreshold != strings.ToUpper(in.Threshold) {
				t.Errorf("got value %s valid %v threshold %s, want %s %v %s", out.WorkValue, out.WorkValid, out.WorkThreshold, exp.Value, exp.Valid, in.Threshold)
			}
		})
	}
}

// TestVectorsSeedToAccount runs every seed_to_account vector through account
// derive, from a file and from stdin, and checks neither the seed nor the
// private key is printed.
func TestVectorsSeedToAccount(t *testing.T) {
	for _, v := range loadVectors(t, "seed_to_account") {
		t.Run(v.ID, func(t *testing.T) {
			var in struct{ Seed, Index string }
			var exp struct {
				PrivateKey string `json:"private_key"`
				PublicKey  string `json:"public_key"`
				Address    string `json:"address"`
			}
			unmarshal(t, v.Input, &in)
			unmarshal(t, v.Expected, &exp)
			index, err := strconv.ParseUint(in.Index, 10, 32)
			if err != nil {
				t.Fatal(err)
			}
			file := writeTemp(t, "seed", in.Seed+"\n")
			for _, r := range []result{
				runCLI(t, "", "account", "derive", "--seed-file", file, "--index", in.Index, "--json"),
				runCLI(t, in.Seed+"\n", "account", "derive", "--seed-file", "-", "--index", in.Index, "--json"),
			} {
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("account derive:\n%s", r)
				}
				var out struct {
					Index     *uint32 `json:"index"`
					PublicKey string  `json:"public_key"`
					Account   string  `json:"account"`
				}
				decodeStrict(t, r.stdout, &out)
				if out.Index == nil || uint64(*out.Index) != index || out.PublicKey != exp.PublicKey || out.Account != exp.Address {
					t.Errorf("got %s, want index %d, %s, %s", r.stdout, index, exp.PublicKey, exp.Address)
				}
				upper := strings.ToUpper(r.stdout + r.stderr)
				// The all-zero and all-F seeds would match any run of
				// zeros or Fs; look for them only as whole values.
				if strings.Contains(upper, strings.ToUpper(in.Seed)) || strings.Contains(upper, strings.ToUpper(exp.PrivateKey[:16])) {
					t.Errorf("output holds the seed or the private key:\n%s", r)
				}
			}
		})
	}
}

// TestVectorsAddress runs the address_decode and address_encode vectors
// through account decode.
func TestVectorsAddress(t *testing.T) {
	for _, v := range loadVectors(t, "address_decode") {
		t.Run(v.ID, func(t *testing.T) {
			var in struct{ Address string }
			var exp struct {
				Valid     bool
				PublicKey string `json:"public_key"`
			}
			unmarshal(t, v.Input, &in)
			unmarshal(t, v.Expected, &exp)
			r := runCLI(t, "", "account", "decode", "--json", in.Address)
			if !exp.Valid {
				if r.code != cli.ExitFailed || r.stdout != "" || !errorLine.MatchString(r.stderr) {
					t.Errorf("want a refusal with exit 1, got\n%s", r)
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("account decode:\n%s", r)
			}
			var out accountResult
			decodeStrict(t, r.stdout, &out)
			if out.PublicKey != exp.PublicKey || out.Index != nil || !strings.HasPrefix(out.Account, "nano_") || out.Account[5:] != in.Address[strings.Index(in.Address, "_")+1:] {
				t.Errorf("got %s, want public key %s", r.stdout, exp.PublicKey)
			}
		})
	}
	for _, v := range loadVectors(t, "address_encode") {
		t.Run(v.ID, func(t *testing.T) {
			var in struct {
				PublicKey string `json:"public_key"`
			}
			var exp struct{ Address string }
			unmarshal(t, v.Input, &in)
			unmarshal(t, v.Expected, &exp)
			r := runCLI(t, "", "account", "decode", exp.Address)
			want := "public key: " + in.PublicKey + "\naccount:    " + exp.Address + "\n"
			if r.code != 0 || r.stdout != want || r.stderr != "" {
				t.Errorf("got\n%s\nwant stdout %q", r, want)
			}
		})
	}
}

// TestVectorsStateBlock builds each state_block and real_block vector as a
// bare JSON block and checks block hash and block verify against it.
func TestVectorsStateBlock(t *testing.T) {
	for _, kind := range []string{"state_block", "real_block"} {
		for _, v := range loadVectors(t, kind) {
			t.Run(v.ID, func(t *testing.T) { testStateBlockVector(t, v) })
		}
	}
}

func testStateBlockVector(t *testing.T, v vector) {
	var in struct {
		Account, Previous, Representative, Balance, Link string
		Signature, Work                                  string // a real block carries its signature
	}
	var exp struct {
		Hash          string
		Signature     string
		LinkAsAccount string `json:"link_as_account"`
		WorkValue     string `json:"work_value"`
		WorkMeets     map[string]struct {
			Threshold string
			Valid     bool
		} `json:"work_meets"`
		Error string
	}
	unmarshal(t, v.Input, &in)
	unmarshal(t, v.Expected, &exp)
	fields := map[string]string{
		"type": "state", "account": in.Account, "previous": in.Previous,
		"representative": in.Representative, "balance": in.Balance, "link": in.Link,
	}
	if exp.LinkAsAccount != "" {
		fields["link_as_account"] = exp.LinkAsAccount
	}
	if sig := cmp.Or(in.Signature, exp.Signature); sig != "" {
		fields["signature"] = sig
	}
	if in.Work != "" {
		fields["work"] = strings.ToLower(in.Work)
	}
	data, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)

	if exp.Error != "" {
		r := runCLI(t, doc, "block", "hash")
		if r.code != cli.ExitFailed || r.stdout != "" || !strings.HasPrefix(r.stderr, "nanokms: error: nano: balance: ") {
			t.Errorf("want the balance refused (%s), got\n%s", exp.Error, r)
		}
		return
	}

	r := runCLI(t, doc, "block", "hash")
	if r.code != 0 || r.stdout != exp.Hash+"\n" || r.stderr != "" {
		t.Errorf("block hash: want %s, got\n%s", exp.Hash, r)
	}
	if len(exp.WorkMeets) == 0 {
		t.Fatal("vector has no work_meets")
	}
	for name, m := range exp.WorkMeets {
		r := runCLI(t, doc, "block", "verify", "--json", "--threshold", m.Threshold)
		var out map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, r)
		}
		if out["hash"] != exp.Hash || out["signature_valid"] != true || out["work_value"] != exp.WorkValue || out["work_valid"] != m.Valid {
			t.Errorf("%s: got %v, want hash %s, valid signature, work %s valid %v", name, out, exp.Hash, exp.WorkValue, m.Valid)
		}
		wantCode := 0
		if !m.Valid {
			wantCode = 1
		}
		if r.code != wantCode || r.stderr != "" {
			t.Errorf("%s: want exit %d and nothing on stderr, got\n%s", name, wantCode, r)
		}
	}
}
