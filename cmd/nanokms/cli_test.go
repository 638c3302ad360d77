package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/nano"
	"golang.org/x/crypto/blake2b"
)

// The seed_det1_1 vector: a seed, and the secret derived from it at index 1.
const (
	testSeed       = "7E11F00A97785E691E6C9DD966138EB97B87EA13258CA484E55856BCAFBB9EAD"
	testPrivateKey = "30660E2EF516B8E60FEDDCF3079C8A0B11DF561AF4EEBA903D558DE9DB99F864"
	testPublicKey  = "6B336DA78A9B217748468E2B1CFCC97BA5B1E43931CCC8A3ECB99C1933155297"
	testAddress    = "nano_1tsmfpmro8s3gx66f5jd5myekyx7p9k5keges4jysgew56sjcnnq86z8jzwa"
)

// accountResult is the JSON that account decode and derive print with
// --json (decoded strictly: a field added or renamed fails the test).
type accountResult struct {
	Index     *uint32 `json:"index,omitempty"`
	PublicKey string  `json:"public_key"`
	Account   string  `json:"account"`
}

// result is what one run of the CLI did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the nanokms command line args in-process with stdin and
// returns its exit code and output.
func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runCLIContext(t, context.Background(), stdin, args...)
}

func runCLIContext(t *testing.T, ctx context.Context, stdin string, args ...string) result {
	t.Helper()
	return runBinary(t, ctx, operator, stdin, args...)
}

// runBinary is runCLIContext for any of the three binaries (operator,
// cold.Binary, dev.Binary).
func runBinary(t *testing.T, ctx context.Context, b cli.Binary, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Run(ctx, b, args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func fixture(name string) string { return filepath.Join(nodeFixtures, name) }

// writeTemp writes data to a new file in a test's temporary directory.
func writeTemp(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// bareBlock is the real block DC8EC06D… (real_a) as a bare JSON object.
const bareBlock = `{
    "type": "state",
    "account": "nano_3qb1qckpady6njewfotrdrcgakrgbfh7ytqfrd9r8txsx7d91b9pu6z1ixrg",
    "previous": "829C33C4E1F41F24F50AB6AF8D0893F484E7078F0FA05F8F56CB69223E8EEE77",
    "representative": "nano_3rropjiqfxpmrrkooej4qtmm1pueu36f9ghinpho4esfdor8785a455d16nf",
    "balance": "8900000000000000000000000",
    "link": "616349D5A5EBA49A73324EF29044B65E13644EC182FFC1ACA4371F897EFF22AA",
    "link_as_account": "nano_1rd5b9ctdtx6mbsm6mqkk34deqimej9e51qzr8pcafrzj7zhyaockuye93sk",
    "signature": "5058A5A1D371CE367D88DB232D398B33DF15FF95D84206986848F4165FFD9FB009B99D9DC6E90D2A3D96C639C7772497C6D6FFB8A67143AE9BB07DC49EB72401",
    "work": "5621a5a58ef8964a"
}`

const bareBlockHash = "DC8EC06D1F32F97BD69BF59E3297563BD23779F72176A4FF553CFF52309C337E"

// workValueBLAKE2b computes a work value with the general BLAKE2b, apart
// from the nano package's specialised work hash: uint64-LE(BLAKE2b-64(nonce
// as 8 bytes LE ‖ root)).
func workValueBLAKE2b(t *testing.T, root nano.Hash, nonce nano.Work) uint64 {
	t.Helper()
	h, err := blake2b.New(8, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(nonce))
	h.Write(n[:])
	h.Write(root[:])
	return binary.LittleEndian.Uint64(h.Sum(nil))
}

// workJSON is the --json output of the work subcommands.
type workJSON struct {
	Root          string   `json:"root"`
	Work          string   `json:"work"`
	WorkValue     string   `json:"work_value"`
	WorkThreshold string   `json:"work_threshold"`
	WorkValid     bool     `json:"work_valid"`
	Attempts      uint64   `json:"attempts"`
	HashRate      *float64 `json:"hash_rate"`
}

func decodeStrict(t *testing.T, data string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %q: %v", data, err)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value in %q", data)
	}
}

// TestWorkGenerateRoundTrip generates work, parses the --json output and
// checks the nonce with nano.WorkValue and with the general BLAKE2b.
func TestWorkGenerateRoundTrip(t *testing.T) {
	tests := []struct {
		root, threshold string
		workers         string
	}{
		{"32304ECE16D931BDC5E6DB71CFB4069620D8A5E5AFBEA34975742506CA38AF1E", "ff00000000000000", "0"},
		{"32304ece16d931bdc5e6db71cfb4069620d8a5e5afbea34975742506ca38af1e", "FF00000000000000", "1"},
		{"972D90773F461A231502A5305E14E6AFBE3ABA84A5FC25E35FE96445EBF38D7A", "fff0000000000000", "3"},
		{"A9A439F86834596A34B8EEA733B7C2715B3F47D5E0CC4A69DD3EC3DCE60B5058", "f000000000000000", "2"},
		{"829C33C4E1F41F24F50AB6AF8D0893F484E7078F0FA05F8F56CB69223E8EEE77", "ffc", "1"},
		{"0000000000000000000000000000000000000000000000000000000000000000", "0", "0"},
		{"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "fe00000000000000", "4"},
	}
	for _, tt := range tests {
		t.Run(tt.root[:8]+"/"+tt.threshold+"/"+tt.workers, func(t *testing.T) {
			r := runCLI(t, "", "work", "generate", "--root", tt.root, "--threshold", tt.threshold, "--workers", tt.workers, "--json")
			if r.code != 0 {
				t.Fatalf("work generate failed:\n%s", r)
			}
			if !regexp.MustCompile(`^found after \d+ attempts in \S+ on \d+ workers \([0-9.]+ M hashes/s\)\n$`).MatchString(r.stderr) {
				t.Errorf("stderr = %q, want one 'found after …' line", r.stderr)
			}
			var out workJSON
			decodeStrict(t, r.stdout, &out)

			root, err := nano.ParseHash(tt.root)
			if err != nil {
				t.Fatal(err)
			}
			threshold, err := nano.ParseThreshold(tt.threshold)
			if err != nil {
				t.Fatal(err)
			}
			work, err := nano.ParseWork(out.Work)
			if err != nil {
				t.Fatalf("work %q: %v", out.Work, err)
			}
			v := nano.WorkValue(root, work)
			if v < threshold {
				t.Errorf("work %s has value %016X, below the threshold %016X", out.Work, v, threshold)
			}
			if g := workValueBLAKE2b(t, root, work); g != v {
				t.Errorf("nano.WorkValue = %016X, BLAKE2b-64 gives %016X", v, g)
			}
			if want := fmt.Sprintf("%016X", v); out.WorkValue != want {
				t.Errorf("work_value = %q, want %q", out.WorkValue, want)
			}
			if want := fmt.Sprintf("%016X", threshold); out.WorkThreshold != want {
				t.Errorf("work_threshold = %q, want %q", out.WorkThreshold, want)
			}
			if out.Root != root.String() {
				t.Errorf("root = %q, want %q", out.Root, root.String())
			}
			if out.Work != strings.ToLower(out.Work) || len(out.Work) != 16 {
				t.Errorf("work = %q, want 16 lowercase hex digits", out.Work)
			}
			if !out.WorkValid || out.Attempts == 0 || out.HashRate == nil || *out.HashRate < 0 {
				t.Errorf("work_valid/attempts/hash_rate = %v/%d/%v", out.WorkValid, out.Attempts, out.HashRate)
			}

			// And the same nonce through work validate.
			r = runCLI(t, "", "work", "validate", "--root", tt.root, "--work", out.Work, "--threshold", tt.threshold)
			if r.code != 0 || r.stderr != "" {
				t.Errorf("work validate of the generated nonce:\n%s", r)
			}
		})
	}
}

// TestWorkGenerateText checks the text form: two lines, the nonce valid.
func TestWorkGenerateText(t *testing.T) {
	const root = "244BF7411D4180CC1E3070635677B19F719D75934D1AA82402966DEF089773DF"
	r := runCLI(t, "", "work", "generate", "--root", root, "--subtype", "receive", "--workers", "0")
	if r.code != 0 {
		t.Fatalf("work generate --subtype receive:\n%s", r)
	}
	m := regexp.MustCompile(`^work:       ([0-9a-f]{16})\nwork value: ([0-9A-F]{16})\n$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("stdout = %q, want the work and work value lines", r.stdout)
	}
	h, _ := nano.ParseHash(root)
	w, err := nano.ParseWork(m[1])
	if err != nil {
		t.Fatal(err)
	}
	v := nano.WorkValue(h, w)
	if fmt.Sprintf("%016X", v) != m[2] {
		t.Errorf("printed value %s, nano.WorkValue gives %016X", m[2], v)
	}
	if !nano.ValidateWork(h, w, nano.ThresholdReceive) {
		t.Errorf("value %016X is below the epoch-2 receive threshold", v)
	}
}

// TestWorkGenerateStops checks that generation ends, with an error and
// nothing on stdout, when its context is done.
func TestWorkGenerateStops(t *testing.T) {
	for _, name := range []string{"cancelled", "deadline"} {
		t.Run(name, func(t *testing.T) {
			var (
				ctx    context.Context
				cancel context.CancelFunc
			)
			if name == "cancelled" {
				ctx, cancel = context.WithCancel(context.Background())
				cancel()
			} else {
				ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
			}
			start := time.Now()
			r := runCLIContext(t, ctx, "", "work", "generate",
				"--root", "32304ECE16D931BDC5E6DB71CFB4069620D8A5E5AFBEA34975742506CA38AF1E",
				"--threshold", "ffffffffffffffff", "--workers", "2", "--json")
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %v to stop", d)
			}
			if r.code != cli.ExitFailed || r.stdout != "" {
				t.Fatalf("want exit 1 and no stdout, got\n%s", r)
			}
			if !strings.HasPrefix(r.stderr, "nanokms: error: ") || !strings.Contains(r.stderr, "context") {
				t.Errorf("stderr = %q, want a nanokms: error: line naming the context", r.stderr)
			}
		})
	}
}

// snakeCase is the only form a --json key may take.
var snakeCase = regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)

// jsonKeys returns the top-level keys of a JSON object in order, failing on
// a duplicate.
func jsonKeys(t *testing.T, data string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %q", data)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		k := tok.(string)
		if slices.Contains(keys, k) {
			t.Fatalf("duplicate key %q in %q", k, data)
		}
		keys = append(keys, k)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// TestBlockVerifyJSONKeys checks the exact keys and value types of block
// verify --json, with and without a threshold, on every real fixture.
func TestBlockVerifyJSONKeys(t *testing.T) {
	base := []string{"hash", "account", "public_key", "signature_valid", "work_value"}
	withThreshold := append(slices.Clone(base), "work_threshold", "work_valid")
	fixtures := []string{
		"rpc_block_info_response.json", "rpc_block_hash_request.json",
		"http_callback_receive.json", "http_callback_send.json", "ws_confirmation.json",
	}
	for _, f := range fixtures {
		for _, extra := range [][]string{nil, {"--subtype", "receive"}, {"--subtype", "send"}, {"--threshold", "ffffffc000000000"}} {
			args := append([]string{"block", "verify", "--json"}, extra...)
			args = append(args, fixture(f))
			t.Run(f+strings.Join(extra, "="), func(t *testing.T) {
				r := runCLI(t, "", args...)
				want := base
				if extra != nil {
					want = withThreshold
				}
				keys := jsonKeys(t, r.stdout)
				if !slices.Equal(keys, want) {
					t.Errorf("keys = %q, want %q", keys, want)
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
					t.Fatal(err)
				}
				for k, v := range m {
					if !snakeCase.MatchString(k) {
						t.Errorf("key %q is not lowercase snake_case", k)
					}
					_, isBool := v.(bool)
					_, isString := v.(string)
					if wantBool := k == "signature_valid" || k == "work_valid"; wantBool != isBool || (!wantBool && !isString) {
						t.Errorf("%s = %#v: wrong JSON type", k, v)
					}
				}
				if m["signature_valid"] != true {
					t.Errorf("signature_valid = %v for a real block", m["signature_valid"])
				}
				wantCode := 0
				if wv, ok := m["work_valid"]; ok && wv == false {
					wantCode = 1
				}
				if r.code != wantCode || r.stderr != "" {
					t.Errorf("want exit %d and no stderr, got\n%s", wantCode, r)
				}
			})
		}
	}
}

// TestJSONKeysSnakeCase checks every subcommand's --json output has only
// lowercase snake_case keys.
func TestJSONKeysSnakeCase(t *testing.T) {
	seedFile := writeTemp(t, "seed", testSeed+"\n")
	tests := [][]string{
		{"block", "hash", "--json", fixture("ws_confirmation.json")},
		{"block", "verify", "--json", "--subtype", "send", fixture("http_callback_send.json")},
		{"account", "derive", "--json", "--seed-file", seedFile, "--index", "1"},
		{"account", "decode", "--json", testAddress},
		{"work", "validate", "--json", "--root", "32304ECE16D931BDC5E6DB71CFB4069620D8A5E5AFBEA34975742506CA38AF1E", "--work", "00000000000005CB", "--threshold", "ff00000000000000"},
		{"work", "generate", "--json", "--root", "32304ECE16D931BDC5E6DB71CFB4069620D8A5E5AFBEA34975742506CA38AF1E", "--threshold", "ff00000000000000"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args[:2], "_"), func(t *testing.T) {
			r := runCLI(t, "", args...)
			for _, k := range jsonKeys(t, r.stdout) {
				if !snakeCase.MatchString(k) {
					t.Errorf("key %q is not lowercase snake_case", k)
				}
			}
		})
	}
}

// errorLine is the one line every error starts with.
var errorLine = regexp.MustCompile(`^nanokms: error: [^\n]+\n(hint: [^\n]+\n)?$`)

// TestErrorsGoToStderr runs a refusal of every subcommand and checks that it
// exits non-zero with nothing on stdout and the error, with the
// `nanokms: error:` prefix and at most one hint line, on stderr.
func TestErrorsGoToStderr(t *testing.T) {
	dir := t.TempDir()
	file := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var (
		seed63    = file("seed63", testSeed[:63]+"\n")
		seedBad   = file("seedbad", testSeed[:62]+"zz\n")
		seedOK    = file("seed", testSeed+"\n")
		legacy    = file("legacy.json", strings.Replace(bareBlock, `"state"`, `"send"`, 1))
		trunc     = file("trunc.json", bareBlock[:len(bareBlock)/2])
		bigBal    = file("bigbal.json", strings.Replace(bareBlock, "8900000000000000000000000", "340282366920938463463374607431768211456", 1))
		nonHex    = file("nonhex.json", strings.Replace(bareBlock, "8EEE77", "8EEEZZ", 1))
		linkAcct  = file("linkacct.json", strings.Replace(bareBlock, "nano_1rd5b9ctdtx6mbsm6mqkk34deqimej9e51qzr8pcafrzj7zhyaockuye93sk", testAddress, 1))
		tooBig    = file("big.json", `{"block":`+bareBlock+`,"pad":"`+strings.Repeat("x", 64<<10)+`"}`)
		root      = "32304ECE16D931BDC5E6DB71CFB4069620D8A5E5AFBEA34975742506CA38AF1E"
		usageHint = "hint: run 'nanokms help' for usage\n"
	)
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		msg   string // the error line after the prefix, or its start
		hint  string // "" for none, usageHint, or the hint's start
	}{
		// root
		{"root/unknown command", "", []string{"sign"}, 2, `unknown command "sign" for "nanokms"`, usageHint},
		{"root/unknown flag", "", []string{"--verbose"}, 2, "unknown flag: --verbose", usageHint},

		// block hash
		{"block hash/legacy", "", []string{"block", "hash", legacy}, 1, `nano: type: not a state block: type is "send"`, "hint: the input must be a state block"},
		{"block hash/truncated", "", []string{"block", "hash", trunc}, 1, "nano: ", "hint: the input must be a state block"},
		{"block hash/empty stdin", "", []string{"block", "hash"}, 1, "nano: block: invalid syntax: truncated JSON", "hint: the input must be a state block"},
		{"block hash/balance", "", []string{"block", "hash", bigBal}, 1, "nano: balance: out of range: 2^128 raw or more", "hint: the input must be a state block"},
		{"block hash/previous", "", []string{"block", "hash", nonHex}, 1, "nano: previous: invalid syntax: not hex", "hint: the input must be a state block"},
		{"block hash/link_as_account", "", []string{"block", "hash", linkAcct}, 1, "nano: link_as_account: fields disagree: does not encode link", "hint: the input must be a state block"},
		{"block hash/over 64 KiB", "", []string{"block", "hash", tooBig}, 1, "nano: block: wrong length: JSON document over 64 KiB", "hint: the input must be a state block"},
		{"block hash/over 1 MiB stdin", strings.Repeat(" ", cli.MaxInputLen+1), []string{"block", "hash"}, 1, "reading standard input: more than 1048576 bytes", ""},
		{"block hash/no such file", "", []string{"block", "hash", filepath.Join(dir, "none.json")}, 1, "opening " + filepath.Join(dir, "none.json") + ": no such file or directory", ""},
		{"block hash/two files", "", []string{"block", "hash", legacy, legacy}, 2, "accepts at most 1 arg(s), received 2", usageHint},
		{"block hash/unknown flag", "", []string{"block", "hash", "--hex"}, 2, "unknown flag: --hex", usageHint},

		// block verify
		{"block verify/threshold and subtype", "", []string{"block", "verify", "--threshold", "ff", "--subtype", "send", fixture("ws_confirmation.json")}, 2, "--threshold and --subtype are mutually exclusive", usageHint},
		{"block verify/bad subtype", "", []string{"block", "verify", "--subtype", "fast", fixture("ws_confirmation.json")}, 2, "--subtype: nano: subtype: invalid syntax: want send, receive, open, change or epoch", usageHint},
		{"block verify/bad threshold", "", []string{"block", "verify", "--threshold", "xyz", fixture("ws_confirmation.json")}, 2, "--threshold: nano: threshold: invalid syntax: not hex", usageHint},
		{"block verify/long threshold", "", []string{"block", "verify", "--threshold", "fffffffffffffffff", fixture("ws_confirmation.json")}, 2, "--threshold: nano: threshold: wrong length: want 1 to 16 hex digits", usageHint},
		{"block verify/legacy stdin", strings.Replace(bareBlock, `"state"`, `"send"`, 1), []string{"block", "verify", "-"}, 1, `nano: type: not a state block: type is "send"`, "hint: the input must be a state block"},
		{"block verify/not a block", "", []string{"block", "verify", fixture("ws_vote.json")}, 1, "nano: message.block: missing: ", "hint: the input must be a state block"},
		{"block verify/two files", "", []string{"block", "verify", legacy, legacy}, 2, "accepts at most 1 arg(s), received 2", usageHint},

		// account derive
		{"account derive/no seed file", "", []string{"account", "derive", "--index", "1"}, 2, "--seed-file is required", usageHint},
		{"account derive/no index", "", []string{"account", "derive", "--seed-file", seedOK}, 2, "--index is required", usageHint},
		{"account derive/index 2^32", "", []string{"account", "derive", "--seed-file", seedOK, "--index", "4294967296"}, 2, "--index: want a whole number from 0 to 4294967295", usageHint},
		{"account derive/index -1", "", []string{"account", "derive", "--seed-file", seedOK, "--index", "-1"}, 2, "--index: want a whole number from 0 to 4294967295", usageHint},
		{"account derive/63 digits", "", []string{"account", "derive", "--seed-file", seed63, "--index", "1"}, 1, "--seed-file: nano: seed: wrong length: want 64 hex digits", "hint: the file must hold exactly 64 hex digits (a trailing newline is fine)"},
		{"account derive/not hex", "", []string{"account", "derive", "--seed-file", seedBad, "--index", "1"}, 1, "--seed-file: nano: seed: invalid syntax: not hex", "hint: the file must hold exactly 64 hex digits (a trailing newline is fine)"},
		{"account derive/not hex stdin", testSeed[:62] + "zz", []string{"account", "derive", "--seed-file", "-", "--index", "1"}, 1, "--seed-file: nano: seed: invalid syntax: not hex", "hint: the file must hold exactly 64 hex digits"},
		{"account derive/no such file", "", []string{"account", "derive", "--seed-file", filepath.Join(dir, "none"), "--index", "1"}, 1, "opening --seed-file: no such file or directory", ""},
		{"account derive/seed flag", "", []string{"account", "derive", "--seed", testSeed, "--index", "1"}, 2, "unknown flag: --seed", usageHint},

		// account decode
		{"account decode/prefix", "", []string{"account", "decode", "nan_3hbt14ip8ymgikw5qk5g7f83tpbs78yhtr9f33qusxe8sefdwe7bzssykyqe"}, 1, "nano: address: address prefix is not nano_ or xrb_", "hint: an address is nano_ (or xrb_) followed by 60 characters of 13456789abcdefghijkmnopqrstuwxyz"},
		{"account decode/length", "", []string{"account", "decode", "nano_3hbt14ip8ymgikw5qk5g7f83tpbs78yhtr9f33qusxe8sefdwe7bzssykyq"}, 1, "nano: address: wrong length: want 60 characters after the prefix, got 59", "hint: an address is"},
		{"account decode/character", "", []string{"account", "decode", "nano_3hbt14ip8ymgikw0qk5g7f83tpbs78yhtr9f33qusxe8sefdwe7bzssykyqe"}, 1, "nano: address: character not in the Nano base32 alphabet: position 20", "hint: an address is"},
		{"account decode/checksum", "", []string{"account", "decode", "nano_3hbt14ip8ymgikw5qk5g7f83tpbs78yhtr9f33qusxe8sefdwe7bzssykyqf"}, 1, "nano: address: address checksum mismatch", "hint: an address is"},
		{"account decode/padding", "", []string{"account", "decode", "nano_4hbt14ip8ymgikw5qk5g7f83tpbs78yhtr9f33qusxe8sefdwe7bzssykyqe"}, 1, "nano: address: address padding bits are not zero", "hint: an address is"},
		{"account decode/no address", "", []string{"account", "decode"}, 2, "accepts 1 arg(s), received 0", usageHint},

		// work generate
		{"work generate/no root", "", []string{"work", "generate", "--threshold", "ff"}, 2, "--root is required", usageHint},
		{"work generate/bad root", "", []string{"work", "generate", "--root", root[:63], "--threshold", "ff"}, 2, "--root: nano: hash: wrong length: want 64 hex digits, got 63", usageHint},
		{"work generate/no threshold", "", []string{"work", "generate", "--root", root}, 2, "one of --threshold or --subtype is required", usageHint},
		{"work generate/both", "", []string{"work", "generate", "--root", root, "--threshold", "ff", "--subtype", "send"}, 2, "--threshold and --subtype are mutually exclusive", usageHint},
		{"work generate/workers -1", "", []string{"work", "generate", "--root", root, "--threshold", "ff", "--workers", "-1"}, 2, "--workers: must not be negative", usageHint},
		{"work generate/workers x", "", []string{"work", "generate", "--root", root, "--threshold", "ff", "--workers", "x"}, 2, `invalid argument "x" for "--workers" flag: `, usageHint},

		// work validate
		{"work validate/no root", "", []string{"work", "validate", "--work", "00000000000005CB", "--threshold", "ff"}, 2, "--root is required", usageHint},
		{"work validate/no work", "", []string{"work", "validate", "--root", root, "--threshold", "ff"}, 2, "--work is required", usageHint},
		{"work validate/short work", "", []string{"work", "validate", "--root", root, "--work", "5CB", "--threshold", "ff"}, 2, "--work: nano: work: wrong length: want 16 hex digits, got 3", usageHint},
		{"work validate/work not hex", "", []string{"work", "validate", "--root", root, "--work", "00000000000005CX", "--threshold", "ff"}, 2, "--work: nano: work: invalid syntax: not hex", usageHint},
		{"work validate/no threshold", "", []string{"work", "validate", "--root", root, "--work", "00000000000005CB"}, 2, "one of --threshold or --subtype is required", usageHint},
		{"work validate/root not hex", "", []string{"work", "validate", "--root", root[:63] + "G", "--work", "00000000000005CB", "--threshold", "ff"}, 2, "--root: nano: hash: invalid syntax: not hex", usageHint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.stdin, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d", r.code, tt.code)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			if !errorLine.MatchString(r.stderr) {
				t.Errorf("stderr = %q, want one `nanokms: error:` line and at most one hint line", r.stderr)
			}
			first, rest, _ := strings.Cut(r.stderr, "\n")
			if !strings.HasPrefix(first, "nanokms: error: "+tt.msg) {
				t.Errorf("error line = %q, want it to start with %q", first, "nanokms: error: "+tt.msg)
			}
			switch {
			case tt.hint == "" && rest != "":
				t.Errorf("unexpected hint %q", rest)
			case tt.hint == usageHint && rest != usageHint:
				t.Errorf("hint = %q, want %q", rest, usageHint)
			case tt.hint != "" && !strings.HasPrefix(rest, tt.hint):
				t.Errorf("hint = %q, want it to start with %q", rest, tt.hint)
			}
			// No error ever echoes a secret it was given.
			for _, secret := range []string{testSeed[:16], testPrivateKey[:16]} {
				if strings.Contains(strings.ToUpper(r.stderr), secret) {
					t.Errorf("stderr holds secret material: %q", r.stderr)
				}
			}
		})
	}
}

// TestFailedChecksPrintFindings covers the other kind of exit 1: the command
// ran, printed what it found on stdout, and what it checked does not hold;
// nothing is added on stderr.
func TestFailedChecksPrintFindings(t *testing.T) {
	flipped := strings.Replace(bareBlock, `"5058A5A1`, `"5058A5A0`, 1)
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string // a line of stdout
	}{
		{"verify flipped signature", flipped, []string{"block", "verify"}, "signature:  INVALID"},
		{"verify work below send threshold", "", []string{"block", "verify", "--subtype", "send", fixture("rpc_block_info_response.json")}, "work:       BELOW the threshold (threshold FFFFFFF800000000)"},
		{"validate just misses", "", []string{"work", "validate", "--root", "32304ECE16D931BDC5E6DB71CFB4069620D8A5E5AFBEA34975742506CA38AF1E", "--work", "00000000000005CB", "--threshold", "FF9C9DD519282006"}, "work:       BELOW the threshold (threshold FF9C9DD519282006)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.stdin, tt.args...)
			if r.code != cli.ExitFailed || r.stderr != "" {
				t.Errorf("want exit 1 and nothing on stderr, got\n%s", r)
			}
			if !slices.Contains(strings.Split(r.stdout, "\n"), tt.want) {
				t.Errorf("stdout lacks %q:\n%s", tt.want, r.stdout)
			}
		})
	}
}

// TestSeedWithoutNewline reads a seed with no final newline (which a txtar
// file cannot hold) from stdin and from a file.
func TestSeedWithoutNewline(t *testing.T) {
	want := "index:      1\npublic key: " + testPublicKey + "\naccount:    " + testAddress + "\n"
	for _, args := range [][]string{
		{"account", "derive", "--seed-file", "-", "--index", "1"},
		{"account", "derive", "--seed-file", writeTemp(t, "seed", testSeed), "--index", "1"},
	} {
		r := runCLI(t, testSeed, args...)
		if r.code != 0 || r.stdout != want || r.stderr != "" {
			t.Errorf("%q:\n%s", args, r)
		}
	}
}

// TestNoStrayOutput checks that run writes only to the writers it is given,
// never to the process's own stdout and stderr, including for help and
// errors.
func TestNoStrayOutput(t *testing.T) {
	dir := t.TempDir()
	outF, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	errF, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outF, errF
	func() {
		defer func() { os.Stdout, os.Stderr = oldOut, oldErr }()
		for _, args := range [][]string{
			nil, {"help"}, {"--help"}, {"block"}, {"block", "hash", "--help"}, {"sign"},
			{"block", "hash", fixture("ws_confirmation.json")},
			{"block", "verify", "--subtype", "send", fixture("ws_confirmation.json")},
			{"account", "decode", "xrb_"},
			{"work", "validate", "--root", "x"},
		} {
			var stdout, stderr bytes.Buffer
			cli.Run(context.Background(), operator, args, strings.NewReader(""), &stdout, &stderr)
			if stdout.Len()+stderr.Len() == 0 {
				t.Errorf("%q printed nothing at all", args)
			}
		}
	}()
	for _, f := range []*os.File{outF, errF} {
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != 0 {
			data, _ := os.ReadFile(f.Name())
			t.Errorf("run wrote to the process's %s: %q", filepath.Base(f.Name()), data)
		}
		f.Close()
	}
}

// TestSecretNeverEchoed covers a user who passes the seed where a path or an
// argument was expected: the command refuses, and must not copy the seed
// into its error (stderr is often logged).
func TestSecretNeverEchoed(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"as --index", []string{"account", "derive", "--seed-file", "-", "--index", testSeed}},
		{"as --seed", []string{"account", "derive", "--seed", testSeed, "--index", "1"}},
		{"as an argument", []string{"account", "derive", testSeed, "--index", "1"}},
		{"as --seed-file", []string{"account", "derive", "--seed-file", testSeed, "--index", "1"}},
		{"as --seed-file=", []string{"account", "derive", "--seed-file=" + strings.ToLower(testSeed), "--index", "1"}},
		{"as a group's subcommand", []string{"account", testSeed}},
		{"as the command", []string{testSeed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", tt.args...)
			if r.code == 0 {
				t.Fatalf("accepted:\n%s", r)
			}
			if strings.Contains(strings.ToUpper(r.stdout+r.stderr), testSeed[:16]) {
				t.Errorf("the seed appears in the output:\n%s", r)
			}
		})
	}
}

// TestUnknownSubcommand checks that a mistyped subcommand of a command group
// is a usage error, as it is at the top level.
func TestUnknownSubcommand(t *testing.T) {
	// A typo in a script must not pass silently.
	for _, args := range [][]string{
		{"block", "hsah", "x.json"},
		{"account", "bogus"},
		{"work", "hsah"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runCLI(t, "", args...)
			if r.code != cli.ExitUsage || r.stdout != "" || !strings.HasPrefix(r.stderr, "nanokms: error: unknown command ") {
				t.Errorf("want exit 2, no stdout and an unknown command error, got exit %d, stdout %d bytes, stderr %q", r.code, len(r.stdout), r.stderr)
			}
		})
	}
}

// TestClaimedHashAlwaysChecked: every "hash" a document states beside or
// in its block must match the block ("When the document also states a
// hash, the two must agree", block hash --help), and the levels of one
// document must agree with each other.
func TestClaimedHashAlwaysChecked(t *testing.T) {
	const zero = "0000000000000000000000000000000000000000000000000000000000000000"
	claims := "nanokms: error: the document claims hash " + zero + " but its contents hash to " + bareBlockHash + "\n"
	twoHashes := "nanokms: error: nano: message.hash: fields disagree: the document states two different hashes\n"
	tests := []struct{ name, doc, want string }{
		{"envelope", `{"hash":"` + zero + `","block":` + bareBlock + `}`, claims},
		{"inner wrong", `{"hash":"` + bareBlockHash + `","message":{"hash":"` + zero + `","block":` + bareBlock + `}}`, "nanokms: error: nano: hash: fields disagree: the document states two different hashes\n"},
		{"outer wrong", `{"hash":"` + zero + `","message":{"hash":"` + bareBlockHash + `","block":` + bareBlock + `}}`, "nanokms: error: nano: hash: fields disagree: the document states two different hashes\n"},
		{"both wrong", `{"message":{"hash":"` + zero + `","block":` + bareBlock + `}}`, claims},
		{"bare block", strings.Replace(bareBlock, `"type": "state",`, `"type": "state", "hash": "`+zero+`",`, 1), claims},
		{"bare block in message", `{"message":{"block":` + strings.Replace(bareBlock, `"type": "state",`, `"type": "state", "hash": "`+bareBlockHash+`",`, 1) + `,"hash":"` + zero + `"}}`, twoHashes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.doc, "block", "hash")
			if r.code != cli.ExitFailed || r.stdout != "" || !strings.HasPrefix(r.stderr, tt.want) {
				t.Errorf("want exit 1, no stdout and %q, got\n%s", tt.want, r)
			}
		})
	}
}
