package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
	"github.com/nanokms/nanokms/softhsm-test/tokentest"
)

// TestTokenSuite runs the token suite, testdata/tokensuite/*.txtar, once
// for each kind of token: SoftHSM 2, opencryptoki's software token (its
// own pkcsslotd) and NSS softokn, each set up by the test itself
// (tokentest). A kind that cannot be set up fails; none is skipped. Then
// it checks that the three kinds gave the same signatures: the scripts
// record each signature they make with recordsig, and for one seed and
// one block Ed25519-BLAKE2b is deterministic.
//
// Each script has the environment of its token ("main"):
//
//	KIND                          softhsm, opencryptoki or nss
//	NANOKMS_PKCS11_MODULE         the module
//	NANOKMS_PKCS11_MODULE_PARAMS  its initialisation parameters (NSS)
//	NANOKMS_TOKEN                 the token's label
//	NANOKMS_WALLET_DIR            the wallet directory (NSS), or empty
//	SOFTHSM2_CONF                 the script's SoftHSM configuration
//	USER_PIN, $WORK/pin           the PIN of every token of the script
//
// and these commands besides TestScripts' (exits, capture, flipsealed,
// perm, waitfor, expand):
//
//	newtoken NAME KIND
//	    make another token of KIND (softhsm or nss; opencryptoki has one
//	    token per machine, the opencryptoki scripts' main); its label goes
//	    to $NAME.
//	usetoken NAME
//	    point the NANOKMS_* variables (and SOFTHSM2_CONF) at token NAME
//	    ("main" is the script's own).
//	recordsig NAME
//	    record the signature in the last stdout (the "signature" field of
//	    a signed block) under NAME, for the cross-kind comparison.
//	signrpc SOCKET INTENT APPROVAL HEAD [BLOCK]
//	    call the signer's Sign over gRPC on the Unix socket SOCKET with
//	    the intent, approval and head block files; the answer (protojson)
//	    is stdout, and the signed block (node JSON) is written to BLOCK
//	    if given; a refusal fails the command; '! signrpc' wants a
//	    refusal, written to stderr as REASON: detail (TestScripts has it
//	    too).
//
// Conditions: [kind:K] holds in the scripts of kind K.
func TestTokenSuite(t *testing.T) {
	rec := &sigRecord{byName: map[string]map[tokentest.Kind]string{}, ran: map[tokentest.Kind]bool{}}
	t.Run("kinds", func(t *testing.T) {
		for _, kind := range tokentest.Kinds {
			t.Run(string(kind), func(t *testing.T) {
				t.Parallel()
				rec.mu.Lock()
				rec.ran[kind] = true
				rec.mu.Unlock()
				s := &suiteKind{kind: kind, rec: rec}
				if kind == tokentest.OpenCryptoki {
					s.ock = tokentest.StartOpenCryptoki(t)
				}
				testscript.Run(t, testscript.Params{
					Dir:                 filepath.Join("testdata", "tokensuite"),
					RequireExplicitExec: true,
					RequireUniqueNames:  true,
					Setup:               s.setup,
					Condition: func(cond string) (bool, error) {
						k, ok := strings.CutPrefix(cond, "kind:")
						if !ok {
							return false, fmt.Errorf("unknown condition %q", cond)
						}
						return tokentest.Kind(k) == kind, nil
					},
					Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
						"exits":      cmdExits,
						"capture":    cmdCapture,
						"flipsealed": cmdFlipSealed,
						"perm":       cmdPerm,
						"waitfor":    cmdWaitfor,
						"expand":     cmdExpand,
						"newtoken":   s.cmdNewToken,
						"usetoken":   cmdUseToken,
						"recordsig":  s.cmdRecordSig,
						"signrpc":    cmdSignRPC,
					},
				})
			})
		}
	})
	if t.Failed() {
		return
	}
	rec.check(t)
}

// suiteKind is one kind's run of the suite.
type suiteKind struct {
	kind tokentest.Kind
	ock  *tokentest.OpenCryptokiSetup
	rec  *sigRecord
}

// tokens are the tokens of one script, by name.
type scriptTokens struct {
	t  testing.TB // the script's test, for set-up failures and cleanups
	mu sync.Mutex
	m  map[string]tokentest.Token
}

var suiteTokens sync.Map // *testscript.TestScript's work dir → *scriptTokens

func tokensOf(workDir string) *scriptTokens {
	v, _ := suiteTokens.LoadOrStore(workDir, &scriptTokens{m: map[string]tokentest.Token{}})
	return v.(*scriptTokens)
}

// setup gives the script its main token.
func (s *suiteKind) setup(env *testscript.Env) error {
	if os.Getenv("GORACE") == "" {
		env.Setenv("GORACE", "atexit_sleep_ms=10")
	}
	t, ok := env.T().(testing.TB)
	if !ok {
		return fmt.Errorf("the script's T is not a testing.TB")
	}
	tok := s.newToken(t, env.WorkDir, "main", s.kind)
	toks := tokensOf(env.WorkDir)
	toks.t = t
	toks.m["main"] = tok
	env.Defer(func() { suiteTokens.Delete(env.WorkDir) })
	if err := os.WriteFile(filepath.Join(env.WorkDir, "pin"), []byte(tok.PIN+"\n"), 0o600); err != nil {
		return err
	}
	env.Setenv("KIND", string(s.kind))
	env.Setenv("USER_PIN", tok.PIN)
	env.Setenv("SOFTHSM2_CONF", filepath.Join(env.WorkDir, "softhsm", "softhsm2.conf"))
	for k, v := range tokenEnv(tok) {
		env.Setenv(k, v)
	}
	return nil
}

// newToken makes a token of kind for the script in workDir.
func (s *suiteKind) newToken(t testing.TB, workDir, name string, kind tokentest.Kind) tokentest.Token {
	t.Helper()
	label := softhsmtest.UniqueLabel("suite-" + strings.ToLower(name))
	switch kind {
	case tokentest.SoftHSM:
		return tokentest.NewSoftHSM(t, filepath.Join(workDir, "softhsm"), label)
	case tokentest.NSS:
		return tokentest.NewNSS(t, filepath.Join(workDir, "nss-"+name))
	case tokentest.OpenCryptoki:
		if s.ock == nil || name != "main" {
			t.Fatalf("opencryptoki has one token per machine: it is the main token of the opencryptoki scripts only")
		}
		return s.ock.Token(t, label)
	}
	t.Fatalf("unknown token kind %q", kind)
	return tokentest.Token{}
}

// tokenEnv is the environment that points nanokms at tok.
func tokenEnv(tok tokentest.Token) map[string]string {
	return map[string]string{
		"NANOKMS_PKCS11_MODULE":        tok.Module,
		"NANOKMS_PKCS11_MODULE_PARAMS": tok.ModuleParams,
		"NANOKMS_TOKEN":                tok.Label,
		"NANOKMS_WALLET_DIR":           tok.WalletDir,
	}
}

// cmdNewToken implements `newtoken NAME KIND`.
func (s *suiteKind) cmdNewToken(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: newtoken NAME KIND")
	}
	work := ts.Getenv("WORK")
	toks := tokensOf(work)
	toks.mu.Lock()
	defer toks.mu.Unlock()
	if _, dup := toks.m[args[0]]; dup {
		ts.Fatalf("newtoken: %s exists", args[0])
	}
	tok := s.newToken(toks.t, work, args[0], tokentest.Kind(args[1]))
	toks.m[args[0]] = tok
	ts.Setenv(args[0], tok.Label)
}

// cmdUseToken implements `usetoken NAME`.
func cmdUseToken(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: usetoken NAME")
	}
	toks := tokensOf(ts.Getenv("WORK"))
	toks.mu.Lock()
	tok, ok := toks.m[args[0]]
	toks.mu.Unlock()
	if !ok {
		ts.Fatalf("usetoken: no token %s", args[0])
	}
	for k, v := range tokenEnv(tok) {
		ts.Setenv(k, v)
	}
}

var signatureRE = regexp.MustCompile(`"signature": "([0-9A-F]{128})"`)

// sigRecord collects the signatures of every kind.
type sigRecord struct {
	mu     sync.Mutex
	byName map[string]map[tokentest.Kind]string
	ran    map[tokentest.Kind]bool
}

// cmdRecordSig implements `recordsig NAME`.
func (s *suiteKind) cmdRecordSig(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: recordsig NAME")
	}
	m := signatureRE.FindStringSubmatch(ts.ReadFile("stdout"))
	if m == nil {
		ts.Fatalf("recordsig: no signature in stdout")
	}
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	if s.rec.byName[args[0]] == nil {
		s.rec.byName[args[0]] = map[tokentest.Kind]string{}
	}
	s.rec.byName[args[0]][s.kind] = m[1]
}

// check asserts that every recorded signature was made by every kind that
// ran (all three, unless -run chose fewer), and identically.
func (r *sigRecord) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.byName) == 0 {
		t.Fatal("the token suite recorded no signatures")
	}
	var kinds []tokentest.Kind
	for _, k := range tokentest.Kinds {
		if r.ran[k] {
			kinds = append(kinds, k)
		}
	}
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sigs := r.byName[n]
		for _, k := range kinds {
			if _, ok := sigs[k]; !ok {
				t.Errorf("signature %s: not made on %s", n, k)
			}
		}
		first := sigs[kinds[0]]
		for _, k := range kinds[1:] {
			if sigs[k] != first {
				t.Errorf("signature %s: %s gave %s, %s gave %s", n, kinds[0], first, k, sigs[k])
			}
		}
	}
}

// cmdSignRPC implements `[!] signrpc SOCKET INTENT APPROVAL HEAD [BLOCK]`.
func cmdSignRPC(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 && len(args) != 5 {
		ts.Fatalf("usage: [!] signrpc SOCKET INTENT APPROVAL HEAD [BLOCK]")
	}
	// The intent's JSON form as the commands write and read it.
	in, err := intent.UnmarshalJSON([]byte(ts.ReadFile(args[1])))
	ts.Check(err)
	var appr pb.Approval
	ts.Check(protojson.Unmarshal([]byte(ts.ReadFile(args[2])), &appr))
	parsed, err := nano.ParseBlockJSON([]byte(ts.ReadFile(args[3])))
	ts.Check(err)
	head := pb.BlockFromNano(&parsed.Block)
	if _, err := intent.Parse(in); err != nil {
		ts.Fatalf("signrpc: the intent: %v", err)
	}
	conn, err := grpc.NewClient("unix://"+ts.MkAbs(args[0]), grpc.WithTransportCredentials(insecure.NewCredentials()))
	ts.Check(err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := pb.NewSignerClient(conn).Sign(ctx, &pb.SignRequest{Intent: in, Approvals: []*pb.Approval{&appr}, Head: head})
	if r, ok := signerapi.RefusalFromStatus(status.Convert(err)); err != nil && ok && neg {
		fmt.Fprintf(ts.Stderr(), "%s: %s\n", signerapi.ReasonName(r.Reason), r.Detail)
		return
	}
	switch {
	case err != nil:
		ts.Fatalf("signrpc: Sign: %v", err)
	case neg:
		ts.Fatalf("signrpc: signed, want a refusal")
	}
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(resp)
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "%s\n", out)
	// And the signed block in the node's JSON form (hex signature).
	b, err := resp.GetBlock().ToNano("block")
	ts.Check(err)
	js, err := json.MarshalIndent(b, "", "  ")
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "%s\n", js)
	if len(args) == 5 {
		ts.Check(os.WriteFile(ts.MkAbs(args[4]), append(js, '\n'), 0o600))
	}
}
