package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

// The tests here run the CLI in this process against SoftHSM tokens made
// in this process (softhsmtest), for what the scripts check poorly: that
// nothing secret reaches any output, exact JSON shapes, file modes, the
// environment.

// The "nano-docs" BIP39 vector (hsm/bip39_test.go): its mnemonic,
// passphrase, 64-byte BIP39 seed, and account 0's private key and address.
const (
	docsMnemonic   = "edge defense waste choose enrich upon flee junk siren film clown finish luggage leader kid quick brick print evidence swap drill paddle truly occur"
	docsPassphrase = "some password"
	docsBIP39Seed  = "0dc285fde768f7ff29b66ce7252d56ed92fe003b605907f7a4f683c3dc8586d34a914d3c71fc099bb38ee4a59e5b081a3497b7a323e90cc68f67b5837690310c"
	docsPrivate0   = "3be4fc2ef3f3b7374e6fc4fb6e7bb153f8a2998b3b3dab50853eabe128024143"
	docsAddress0   = "nano_1pu7p5n3ghq1i1p4rhmek41f5add1uh34xpb94nkbxe8g4a6x1p69emk8y1d"
)

// The token flags' environment variables, as an operator sets them
// (docs/CONFIG.md).
const (
	envModule = "NANOKMS_PKCS11_MODULE"
	envToken  = "NANOKMS_TOKEN"
	envPIN    = "NANOKMS_PIN"
)

// masterKeyResult is the JSON that token init, finish-backup and
// import-master print with --json (decoded strictly: a field added or
// renamed fails the test).
type masterKeyResult struct {
	Token            string `json:"token"`
	Scheme           string `json:"scheme"`
	Label            string `json:"label"`
	MACLabel         string `json:"mac_label,omitempty"`
	KeyID            string `json:"key_id"`
	Check            string `json:"check"`
	Sensitive        bool   `json:"sensitive"`
	Extractable      bool   `json:"extractable"`
	NeverExtractable bool   `json:"never_extractable"`
	Local            bool   `json:"local"`
}

// wrongPIN is a PIN no token has; it must not be printed either.
const wrongPIN = "wrong-pin-2468-secret"

// ceremony is a test's view of the CLI: files in a temporary directory,
// and every result it got, for the final check that no secret was printed.
type ceremony struct {
	t      *testing.T
	dir    string
	module string
	pin    string // PIN file
	runs   []result
}

func newCeremony(t *testing.T) *ceremony {
	t.Helper()
	c := &ceremony{t: t, dir: t.TempDir(), module: softhsmtest.Module(t)}
	c.pin = c.file("pin", softhsmtest.UserPIN+"\n")
	// The token flags' environment must not leak in from the developer's.
	for _, v := range []string{envModule, envToken, envPIN} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	return c
}

// file writes a file (mode 0600) in the ceremony's directory.
func (c *ceremony) file(name, data string) string {
	c.t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *ceremony) path(name string) string { return filepath.Join(c.dir, name) }

// token makes a fresh token and returns its label.
func (c *ceremony) token(prefix string) string {
	c.t.Helper()
	return softhsmtest.MustToken(c.t, softhsmtest.UniqueLabel(prefix)).Label
}

// run runs the CLI with --module and --pin-file (unless args set one) and
// --token label (unless label is ""), and records the result.
func (c *ceremony) run(label, stdin string, args ...string) result {
	c.t.Helper()
	args = append(slices.Clone(args), "--module", c.module)
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--pin-file") }) {
		args = append(args, "--pin-file", c.pin)
	}
	if label != "" {
		args = append(args, "--token", label)
	}
	r := runCLI(c.t, stdin, args...)
	c.runs = append(c.runs, r)
	return r
}

// ok runs the CLI and fails the test unless it exits 0.
func (c *ceremony) ok(label, stdin string, args ...string) result {
	c.t.Helper()
	r := c.run(label, stdin, args...)
	if r.code != 0 {
		c.t.Fatalf("%q failed:\n%s", args, r)
	}
	return r
}

// refused runs the CLI and fails the test unless it exits code with
// nothing on stdout and one error line (and at most one hint) on stderr.
func (c *ceremony) refused(code int, label, stdin string, args ...string) result {
	c.t.Helper()
	r := c.run(label, stdin, args...)
	if r.code != code || r.stdout != "" || !errorLine.MatchString(r.stderr) {
		c.t.Errorf("%q: want exit %d, no stdout and one error line, got\n%s", args, code, r)
	}
	return r
}

// secrets are the strings that must never be printed, in the forms they
// could take.
func secrets(t *testing.T) map[string]string {
	t.Helper()
	seed, err := nano.ParseSeed(testSeed)
	if err != nil {
		t.Fatal(err)
	}
	s := map[string]string{
		"PIN":            softhsmtest.UserPIN,
		"wrong PIN":      wrongPIN,
		"seed":           testSeed,
		"seed (lower)":   strings.ToLower(testSeed),
		"seed (part)":    testSeed[:16],
		"BIP39 seed":     docsBIP39Seed,
		"BIP39 key 0":    docsPrivate0,
		"mnemonic":       docsMnemonic,
		"mnemonic start": "edge defense",
		"mnemonic end":   "truly occur",
		"mnemonic word":  "luggage",
		"passphrase":     docsPassphrase,
	}
	for i := range uint32(4) {
		k := nano.DeriveKey(&seed, i)
		s["private key "+strconv.Itoa(int(i))] = hex.EncodeToString(k[:])
	}
	return s
}

// checkNoSecrets fails if any secret appears in text, in any letter case.
func checkNoSecrets(t *testing.T, what, text string, secrets map[string]string) {
	t.Helper()
	lower := strings.ToLower(text)
	for name, s := range secrets {
		if strings.Contains(lower, strings.ToLower(s)) {
			t.Errorf("%s holds the %s:\n%s", what, name, text)
		}
	}
}

// TestCeremonyNothingSecretPrinted runs every new subcommand, successes
// and refusals (the whole backup ceremony included), and checks that no
// output, and no file written, holds the PIN, a seed, a key, the mnemonic
// or its passphrase; and that every JSON output has snake_case keys.
func TestCeremonyNothingSecretPrinted(t *testing.T) {
	c := newCeremony(t)
	primary, backup, other := c.token("cer-primary"), c.token("cer-backup"), c.token("cer-other")
	seedFile := c.file("seed", testSeed+"\n")
	mnemonicFile := c.file("mnemonic", docsMnemonic+"\n")
	passFile := c.file("passphrase", docsPassphrase+"\n")
	badPIN := c.file("badpin", wrongPIN+"\n")
	template := c.file("template.json", blkSendA1Template)

	// The ceremony.
	// (One RSA-3072 key generation, slow and of varying length, is enough
	// for the test binary: this ceremony also serves the JSON checks.)
	c.ok(primary, "", "token", "init", "--for-backup", "--json")
	c.refused(cli.ExitFailed, primary, "", "wallet", "create", "early")
	c.ok(backup, "", "token", "transport-key", "--out", c.path("backup.pub"), "--json")
	c.ok(backup, "", "token", "transport-key", "--out", c.path("backup-again.pub"))
	c.ok(primary, "", "token", "wrap-master", "--transport-key", c.path("backup.pub"), "--out", c.path("backup.pkg"), "--json")
	fp := c.ok(primary, "", "token", "finish-backup", "--json")
	fb := c.ok(backup, "", "token", "import-master", c.path("backup.pkg"), "--json")
	var p, b masterKeyResult
	decodeStrict(t, fp.stdout, &p)
	decodeStrict(t, fb.stdout, &b)
	if p.Check == "" || p.Check != b.Check || p.KeyID != b.KeyID || p.Extractable || b.Extractable || !p.Sensitive || !b.Sensitive {
		t.Errorf("primary %+v, backup %+v: want the same sensitive, non-extractable key", p, b)
	}
	if !p.Local || b.Local {
		t.Errorf("local: primary %v, backup %v; want the key generated on the primary only", p.Local, b.Local)
	}

	// Wallets, from files and from stdin.
	c.ok(primary, "", "wallet", "import", "det1", "--seed-file", seedFile)
	c.ok(primary, testSeed, "wallet", "import", "det1-stdin", "--seed-file", "-", "--json")
	r := c.ok(primary, "", "wallet", "import", "docs", "--mnemonic-file", mnemonicFile, "--passphrase-file", passFile)
	if !strings.Contains(r.stdout, docsAddress0) {
		t.Errorf("wallet import of the docs mnemonic: account 0 is not %s:\n%s", docsAddress0, r)
	}
	c.ok(primary, docsPassphrase, "wallet", "import", "docs-stdin", "--mnemonic-file", mnemonicFile, "--passphrase-file", "-")
	c.ok(primary, "", "wallet", "create", "fresh")
	c.ok(primary, "", "wallet", "create", "fresh-json", "--json")
	c.ok(primary, "", "wallet", "list")
	c.ok(primary, "", "wallet", "list", "--json")
	c.ok(primary, "", "wallet", "export", "det1", "--out", c.path("det1.export"))
	c.ok(primary, "", "wallet", "export", "docs", "--out", c.path("docs.export"), "--json")
	c.ok(backup, "", "wallet", "restore", "det1", c.path("det1.export"))
	c.ok(backup, "", "wallet", "restore", "docs", c.path("docs.export"), "--json")
	la := c.ok(primary, "", "account", "list", "--wallet", "det1", "--count", "4", "--json")
	lb := c.ok(backup, "", "account", "list", "--wallet", "det1", "--count", "4", "--json")
	if la.stdout != lb.stdout {
		t.Errorf("the tokens list different accounts:\n%s\n%s", la, lb)
	}
	c.ok(primary, "", "account", "list", "--wallet", "docs", "--count", "2")
	sa := c.ok(primary, "", "block", "sign", "--wallet", "det1", "--index", "1", "--unverified", template)
	sb := c.ok(backup, blkSendA1Template, "block", "sign", "--wallet", "det1", "--index", "1", "--unverified")
	if sa.stdout != sb.stdout || !strings.Contains(sa.stdout, blkSendA1Signature) {
		t.Errorf("the tokens sign differently, or not the vector's signature:\n%s\n%s", sa, sb)
	}

	// Refusals, some with a secret in the wrong place.
	c.refused(cli.ExitFailed, other, "", "wallet", "list", "--pin-file", badPIN)
	c.refused(cli.ExitFailed, other, "", "wallet", "list", "--pin-file", softhsmtest.UserPIN)
	c.refused(cli.ExitUsage, other, "", "wallet", "list", "--pin", softhsmtest.UserPIN)
	c.refused(cli.ExitUsage, other, "", "wallet", "list", softhsmtest.UserPIN)
	c.refused(cli.ExitFailed, primary, "", "wallet", "import", "x", "--seed-file", testSeed)
	c.refused(cli.ExitFailed, primary, "", "wallet", "import", "x", "--seed-file", "--"+testSeed)
	c.refused(cli.ExitFailed, primary, testSeed[:63], "wallet", "import", "x", "--seed-file", "-")
	c.refused(cli.ExitFailed, primary, testSeed[:62]+"zz", "wallet", "import", "x", "--seed-file", "-")
	c.refused(cli.ExitUsage, primary, "", "wallet", "import", testSeed, "--seed-file", seedFile)
	c.refused(cli.ExitUsage, primary, "", "wallet", "import", strings.ToLower(testSeed), "--seed-file", seedFile)
	c.refused(cli.ExitUsage, primary, "", "wallet", "create", testSeed)
	c.refused(cli.ExitUsage, primary, "", "wallet", "import", docsMnemonic, "--seed-file", seedFile)
	c.refused(cli.ExitUsage, primary, "", append([]string{"wallet", "import", "x", "--mnemonic-file", mnemonicFile}, strings.Fields(docsMnemonic)...)...)
	c.refused(cli.ExitFailed, primary, "", "wallet", "import", "x", "--mnemonic-file", docsMnemonic)
	c.refused(cli.ExitFailed, primary, "", "wallet", "import", "x", "--mnemonic-file", mnemonicFile, "--passphrase-file", docsPassphrase)
	c.refused(cli.ExitFailed, primary, strings.Replace(docsMnemonic, "luggage", "luggages", 1), "wallet", "import", "x", "--mnemonic-file", "-")
	c.refused(cli.ExitFailed, primary, strings.Replace(docsMnemonic, "truly occur", "occur truly", 1), "wallet", "import", "x", "--mnemonic-file", "-")
	c.refused(cli.ExitFailed, primary, "", "wallet", "import", "det1", "--seed-file", seedFile)
	c.refused(cli.ExitFailed, primary, "", "wallet", "import", "docs", "--mnemonic-file", mnemonicFile, "--passphrase-file", passFile)
	c.refused(cli.ExitFailed, primary, "", "wallet", "export", "det1", "--out", seedFile)
	c.refused(cli.ExitFailed, primary, "", "wallet", "restore", "x", seedFile)
	c.refused(cli.ExitFailed, primary, "", "wallet", "restore", "x", mnemonicFile)
	c.refused(cli.ExitFailed, other, "", "wallet", "restore", "x", c.path("det1.export"))
	c.refused(cli.ExitFailed, primary, "", "token", "wrap-master", "--transport-key", seedFile, "--out", c.path("x.pkg"))
	c.refused(cli.ExitFailed, backup, "", "token", "import-master", seedFile)
	c.refused(cli.ExitFailed, primary, "", "block", "sign", "--wallet", "det1", "--index", "2", "--unverified", template)
	c.refused(cli.ExitUsage, primary, "", "block", "sign", "--wallet", "det1", "--index", testSeed, "--unverified", template)
	c.refused(cli.ExitUsage, primary, "", "account", "list", "--wallet", "det1", "--from", testSeed)

	// Nothing secret in any output, nor in any file written.
	s := secrets(t)
	for i, r := range c.runs {
		checkNoSecrets(t, "run "+strconv.Itoa(i), r.stdout+r.stderr, s)
	}
	// Every JSON output has lowercase snake_case keys only, at every level.
	nJSON := 0
	for _, r := range c.runs {
		var v any
		if r.code == 0 && json.Unmarshal([]byte(r.stdout), &v) == nil {
			nJSON++
			walkKeys(t, v)
		}
	}
	if nJSON < 12 {
		t.Errorf("only %d JSON outputs checked", nJSON)
	}
	for _, f := range []string{"backup.pub", "backup.pkg", "det1.export", "docs.export"} {
		data, err := os.ReadFile(c.path(f))
		if err != nil {
			t.Fatal(err)
		}
		checkNoSecrets(t, f, string(data), s)
	}
	if _, err := os.Stat(c.path("x.pkg")); !os.IsNotExist(err) {
		t.Errorf("a refused wrap-master left x.pkg behind (%v)", err)
	}
	// The file the refused export would have overwritten is untouched.
	if data, _ := os.ReadFile(seedFile); string(data) != testSeed+"\n" {
		t.Errorf("wallet export overwrote an existing file")
	}
}

// The vector blk_send_a1 (testdata/vectors/public.json) as a template, and
// its signature: account 1 of testSeed.
const (
	blkSendA1Template = `{
  "type": "state",
  "account": "nano_1tsmfpmro8s3gx66f5jd5myekyx7p9k5keges4jysgew56sjcnnq86z8jzwa",
  "previous": "44643E5CF2D7604BA2FFF9B21C537FACA12663570C5D031B792D46EEE63F5236",
  "representative": "nano_1ypu8iudmrjwzh7ojs5qi1hbwi41kfxwsxu496t7me4xmq3qjbi753xeasrj",
  "balance": "339282366920938463463374607431768211455",
  "link": "BD3A00A1637A6E84B83BC86E2B4C1D593929BCFD60ED086FBCF586CB1ABE30A9"
}`
	blkSendA1Signature = "F939009972BA6C58F3E04E41A26B10363F983EF32A0BDFFBD7A8688F37338F08B71044B20CE30A2B1BD2A6864B8ED0EEDC0BF81E9CEEF7BF2FEEECF634C18904"
)

// initWithSeed makes a token with a master key and testSeed imported as
// wallet det1, and returns its label.
func initWithSeed(c *ceremony) string {
	c.t.Helper()
	tok := c.token("cer")
	c.ok(tok, "", "token", "init")
	c.ok(tok, testSeed, "wallet", "import", "det1", "--seed-file", "-")
	return tok
}

// TestBlockSignVectors signs every state_block vector made with a key of
// testSeed through the token and compares the signature, and checks that
// the output is a process request that block verify accepts.
func TestBlockSignVectors(t *testing.T) {
	c := newCeremony(t)
	tok := initWithSeed(c)
	seed, err := nano.ParseSeed(testSeed)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range loadVectors(t, "state_block") {
		var in struct {
			PrivateKey                                             string `json:"private_key"`
			Account, Previous, Representative, Balance, Link, Work string
		}
		var exp struct{ Hash, Signature string }
		unmarshal(t, v.Input, &in)
		unmarshal(t, v.Expected, &exp)
		if in.PrivateKey == "" {
			continue // a vector of a refused block
		}
		index := -1
		for i := range uint32(8) {
			if k := nano.DeriveKey(&seed, i); strings.EqualFold(hex.EncodeToString(k[:]), in.PrivateKey) {
				index = int(i)
			}
		}
		if index < 0 {
			continue
		}
		n++
		t.Run(v.ID, func(t *testing.T) {
			doc, err := json.Marshal(map[string]string{
				"type": "state", "account": in.Account, "previous": in.Previous,
				"representative": in.Representative, "balance": in.Balance, "link": in.Link,
				"work": strings.ToLower(in.Work),
			})
			if err != nil {
				t.Fatal(err)
			}
			r := c.ok(tok, string(doc), "block", "sign", "--wallet", "det1", "--index", strconv.Itoa(index), "--unverified")
			if !strings.HasPrefix(r.stderr, "WARNING: signing WITHOUT verification: ") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr = %q, want one WARNING line", r.stderr)
			}
			var out struct {
				Action    string `json:"action"`
				JSONBlock string `json:"json_block"`
				Block     struct {
					Type, Account, Previous, Representative, Balance, Link string
					LinkAsAccount                                          string `json:"link_as_account"`
					Signature, Work                                        string
				} `json:"block"`
			}
			decodeStrict(t, r.stdout, &out)
			if out.Action != "process" || out.JSONBlock != "true" || out.Block.Account != in.Account {
				t.Errorf("not a process request for %s:\n%s", in.Account, r.stdout)
			}
			if out.Block.Signature != exp.Signature {
				t.Errorf("signature %s, want %s", out.Block.Signature, exp.Signature)
			}
			if !strings.EqualFold(out.Block.Work, in.Work) {
				t.Errorf("work %s, want the template's %s", out.Block.Work, in.Work)
			}
			vr := runCLI(t, r.stdout, "block", "verify", "--json")
			if vr.code != 0 || !strings.Contains(vr.stdout, `"hash": "`+exp.Hash+`"`) || !strings.Contains(vr.stdout, `"signature_valid": true`) {
				t.Errorf("block verify of the output:\n%s", vr)
			}
		})
	}
	if n < 3 {
		t.Fatalf("only %d state_block vectors use keys of the test seed", n)
	}
	checkNoSecretsIn(t, c)
}

func checkNoSecretsIn(t *testing.T, c *ceremony) {
	t.Helper()
	s := secrets(t)
	for i, r := range c.runs {
		checkNoSecrets(t, "run "+strconv.Itoa(i), r.stdout+r.stderr, s)
	}
}

// TestAccountListManifest checks the --json manifest's exact shape, and
// that every entry is what account derive --json prints for that index.
func TestAccountListManifest(t *testing.T) {
	c := newCeremony(t)
	tok := initWithSeed(c)
	seedFile := c.file("seed", testSeed+"\n")
	for _, tt := range []struct{ from, count uint32 }{{0, 20}, {4294967290, 6}, {2147483640, 16}} {
		r := c.ok(tok, "", "account", "list", "--wallet", "det1", "--from", strconv.Itoa(int(tt.from)), "--count", strconv.Itoa(int(tt.count)), "--json")
		if keys := jsonKeys(t, r.stdout); !slices.Equal(keys, []string{"wallet", "accounts"}) {
			t.Errorf("manifest keys %q, want wallet, accounts", keys)
		}
		var m struct {
			Wallet   string            `json:"wallet"`
			Accounts []json.RawMessage `json:"accounts"`
		}
		decodeStrict(t, r.stdout, &m)
		if m.Wallet != "det1" || len(m.Accounts) != int(tt.count) {
			t.Fatalf("wallet %q with %d accounts, want det1 with %d", m.Wallet, len(m.Accounts), tt.count)
		}
		for i, raw := range m.Accounts {
			index := tt.from + uint32(i)
			if keys := jsonKeys(t, string(raw)); !slices.Equal(keys, []string{"index", "public_key", "account"}) {
				t.Errorf("entry keys %q", keys)
			}
			d := runCLI(t, "", "account", "derive", "--seed-file", seedFile, "--index", strconv.Itoa(int(index)), "--json")
			var got, want bytes.Buffer
			if err := json.Compact(&got, raw); err != nil {
				t.Fatal(err)
			}
			if err := json.Compact(&want, []byte(d.stdout)); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("index %d: manifest has %s, account derive prints %s", index, got.String(), want.String())
			}
		}
	}
	checkNoSecretsIn(t, c)
}

func walkKeys(t *testing.T, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if !snakeCase.MatchString(k) {
				t.Errorf("key %q is not lowercase snake_case", k)
			}
			walkKeys(t, x)
		}
	case []any:
		for _, x := range v {
			walkKeys(t, x)
		}
	}
}

// TestTokenFromEnvironment takes the module, the token and the PIN from
// the environment, and checks that the PIN is removed from it once read.
func TestTokenFromEnvironment(t *testing.T) {
	c := newCeremony(t)
	tok := c.token("cer-env")
	t.Setenv(envModule, c.module)
	t.Setenv(envToken, tok)
	t.Setenv(envPIN, softhsmtest.UserPIN)
	r := runCLI(t, "", "token", "init")
	if r.code != 0 || !strings.Contains(r.stdout, "token:       "+tok+"\n") {
		t.Fatalf("token init from the environment:\n%s", r)
	}
	if v, ok := os.LookupEnv(envPIN); ok {
		t.Errorf("%s is still set (%d bytes) after the PIN was read", envPIN, len(v))
	}
	// A PIN file wins over the environment, which is then left alone.
	t.Setenv(envPIN, wrongPIN)
	r = runCLI(t, "", "wallet", "list", "--pin-file", c.pin)
	if r.code != 0 {
		t.Fatalf("wallet list with --pin-file and a wrong %s:\n%s", envPIN, r)
	}
	// A wrong PIN from the environment is refused and not printed.
	r = runCLI(t, "", "wallet", "list")
	if r.code != cli.ExitFailed || !strings.HasPrefix(r.stderr, "nanokms: error: the token refused the PIN; it was tried once\n") {
		t.Errorf("wrong %s:\n%s", envPIN, r)
	}
	checkNoSecrets(t, "output", r.stdout+r.stderr, secrets(t))
	// Flags win over the environment.
	t.Setenv(envModule, filepath.Join(c.dir, "no-such-module.so"))
	t.Setenv(envToken, "no-such-token")
	r = runCLI(t, "", "wallet", "list", "--module", c.module, "--token", tok, "--pin-file", c.pin)
	if r.code != 0 {
		t.Errorf("flags did not win over the environment:\n%s", r)
	}
}

// TestExportFile checks the export's file mode, its content (ciphertext
// and metadata only, as docs/KEYS.md documents it) and that an existing
// file is never overwritten.
func TestExportFile(t *testing.T) {
	c := newCeremony(t)
	tok := initWithSeed(c)
	out := c.path("det1.export")
	c.ok(tok, "", "wallet", "export", "det1", "--out", out)
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("export mode %04o, want 0600", st.Mode().Perm())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if keys := jsonKeys(t, string(data)); !slices.Equal(keys, []string{"format", "label", "wallet_id", "kind", "scheme", "master_key_check", "sealed"}) {
		t.Errorf("export keys %q", keys)
	}
	c.refused(cli.ExitFailed, tok, "", "wallet", "export", "det1", "--out", out)
	if again, _ := os.ReadFile(out); !bytes.Equal(again, data) {
		t.Error("a refused export changed the existing file")
	}
	checkNoSecretsIn(t, c)
}

// TestPINFileRefusals checks the PIN file checks, whose messages never
// name the file.
func TestPINFileRefusals(t *testing.T) {
	c := newCeremony(t)
	tok := c.token("cer-pin")
	open := c.file("open-pin", softhsmtest.UserPIN+"\n")
	if err := os.Chmod(open, 0o604); err != nil {
		t.Fatal(err)
	}
	group := c.file("group-pin", softhsmtest.UserPIN+"\n")
	if err := os.Chmod(group, 0o640); err != nil {
		t.Fatal(err)
	}
	empty := c.file("empty-pin", "")
	long := c.file("long-pin", strings.Repeat("7", 300))
	for _, tt := range []struct {
		file, msg string
	}{
		{open, "--pin-file is accessible to users other than its owner (mode 0604)"},
		{group, "--pin-file is accessible to users other than its owner (mode 0640)"},
		{empty, "--pin-file: empty"},
		{long, "--pin-file: PIN file holds more than 256 bytes"},
		{c.dir, "--pin-file: not a regular file"},
		{filepath.Join(c.dir, "none"), "opening --pin-file: no such file or directory"},
	} {
		r := c.refused(cli.ExitFailed, tok, "", "wallet", "list", "--pin-file", tt.file)
		if first, _, _ := strings.Cut(r.stderr, "\n"); first != "nanokms: error: "+tt.msg {
			t.Errorf("--pin-file %s: got %q, want %q", filepath.Base(tt.file), first, "nanokms: error: "+tt.msg)
		}
		if strings.Contains(r.stderr, c.dir) {
			t.Errorf("the error names the PIN file: %q", r.stderr)
		}
	}
	checkNoSecretsIn(t, c)
}
