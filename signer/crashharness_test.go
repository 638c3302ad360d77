package signer

// The crash harness: it builds the real nanokms-cold binary, runs
// `nanokms-cold signer --config F` as a subprocess (internal/killtest) against a SoftHSM token, kills it with
// SIGKILL and restarts it, and checks the state file it leaves behind.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

// crashToken is a SoftHSM token holding a master key and the "custody"
// wallet (custodytest.CustodySeed), closed again in the test process, with its PIN
// in a 0600 file. dir is its directory in the test binary's token
// directory; each run gives its signer a private copy (see newCrashSigner).
type crashToken struct {
	module, label, pinFile, dir string
	seed                        nano.Seed
}

func newCrashToken(t *testing.T) *crashToken {
	t.Helper()
	ctx := context.Background()
	tokens := filepath.Join(softhsmtest.Dir(t), "tokens")
	before, err := os.ReadDir(tokens)
	if err != nil {
		t.Fatal(err)
	}
	tk := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("crash"))
	pin, err := hsm.NewPIN([]byte(tk.PIN))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := hsm.Open(ctx, hsm.Config{Module: tk.Module, TokenLabel: tk.Label, PIN: pin, PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.CreateMasterKey(ctx, 0); err != nil {
		tok.Close()
		t.Fatal(err)
	}
	seed, err := nano.ParseSeed(custodytest.CustodySeed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.ImportWallet(ctx, "custody", &seed); err != nil {
		tok.Close()
		t.Fatal(err)
	}
	// The signer derives from the token what the test derives from the seed.
	want := nano.NewSigningKey(ptr(nano.DeriveKey(&seed, 3))).Public()
	if got, err := tok.PublicKey(ctx, "custody", 3); err != nil || got != want {
		tok.Close()
		t.Fatalf("token account 3 = %s, %v; want %s", got.Address(), err, want.Address())
	}
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte(tk.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadDir(tokens)
	if err != nil {
		t.Fatal(err)
	}
	var dir string
	for _, e := range after {
		if e.IsDir() && !slices.ContainsFunc(before, func(b os.DirEntry) bool { return b.Name() == e.Name() }) {
			if dir != "" {
				t.Fatalf("two new token directories in %s: %s and %s", tokens, dir, e.Name())
			}
			dir = filepath.Join(tokens, e.Name())
		}
	}
	if dir == "" {
		t.Fatalf("the new token's directory was not found in %s", tokens)
	}
	return &crashToken{module: tk.Module, label: tk.Label, pinFile: pinFile, dir: dir, seed: seed}
}

// copyTokenDir copies the token directory src into the directory dst.
func copyTokenDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return fmt.Errorf("unexpected non-file %s in the token directory", e.Name())
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// account returns the public key of custody index i.
func (ct *crashToken) account(i uint32) nano.PublicKey {
	k := nano.DeriveKey(&ct.seed, i)
	return nano.NewSigningKey(&k).Public()
}

const crashConfig = `# the crash test's signer
[signer]
state = %q
listen = "unix://%s"
shutdown_grace = "5s"
log_level = "info"

[token]
module = %q
label = %q
pin_file = %q
pool_size = 4

[[approvers]]
name = "service"
public_key = "%X"

[[groups]]
name = "custody"
wallets = ["custody"]
receive_automatic = true
[[groups.tiers]]
quorum = 1
approvers = ["service"]
`

// crashSigner runs the signer binary as a subprocess (internal/killtest),
// kills it and restarts it. Its gRPC connection survives restarts.
type crashSigner struct {
	*killtest.Proc
	t                     *testing.T
	dir, cfg, state, sock string
	// The signer's private copy of the token (tokenDir, under its own
	// SOFTHSM2_CONF) and the copy it started from (pristine).
	tokenDir, pristine string
	conn               *grpc.ClientConn
	client             pb.SignerClient
	health             healthpb.HealthClient
	service            ed25519.PrivateKey

	mu sync.Mutex
	up chan struct{} // closed while the current process is known healthy
}

// newCrashSigner prepares a signer of the nanokms-cold binary bin on a
// private copy of tok; start starts it.
func newCrashSigner(t *testing.T, bin string, tok *crashToken) *crashSigner {
	t.Helper()
	dir := t.TempDir()
	_, service, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := &crashSigner{
		t: t, dir: dir, service: service,
		cfg:   filepath.Join(dir, "signer.toml"),
		state: filepath.Join(dir, "signer.db"),
		sock:  filepath.Join(dir, "s.sock"),
		up:    make(chan struct{}),
	}
	// The signer gets a private copy of the token: a SIGKILL at the wrong
	// moment can tear a SoftHSM file (see repairToken), and a torn token
	// must not break the test process's own SoftHSM.
	cs.tokenDir = filepath.Join(dir, "softhsm", "tokens", filepath.Base(tok.dir))
	cs.pristine = filepath.Join(dir, "softhsm-pristine")
	if err := copyTokenDir(tok.dir, cs.tokenDir); err != nil {
		t.Fatal(err)
	}
	if err := copyTokenDir(tok.dir, cs.pristine); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm", "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", filepath.Dir(cs.tokenDir))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOFTHSM2_CONF=") {
			env = append(env, kv)
		}
	}
	env = append(env, "SOFTHSM2_CONF="+conf)

	text := fmt.Sprintf(crashConfig, cs.state, cs.sock, tok.module, tok.label, tok.pinFile, []byte(service.Public().(ed25519.PublicKey)))
	if err := os.WriteFile(cs.cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cs.conn = killtest.Dial(t, cs.sock)
	cs.client, cs.health = pb.NewSignerClient(cs.conn), healthpb.NewHealthClient(cs.conn)
	// Registered after Dial's cleanup, so it runs before it: the process
	// is killed (and its log shown) with the connection still open.
	cs.Proc = killtest.New(t, "signer", filepath.Join(dir, "signer.log"), bin, "signer", "--config", cs.cfg)
	cs.SetEnv(env)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("token files of the signer (pristine copy in %s):\n%s", cs.pristine, crashListFiles(cs.tokenDir))
		}
	})
	return cs
}

// ready returns a channel closed while the signer is known to be up.
func (cs *crashSigner) ready() <-chan struct{} {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.up
}

func (cs *crashSigner) markUp() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	select {
	case <-cs.up:
	default:
		close(cs.up)
	}
}

func (cs *crashSigner) markDown() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	select {
	case <-cs.up:
		cs.up = make(chan struct{})
	default:
	}
}

// start starts a new signer process; the previous one must have exited.
func (cs *crashSigner) start() error { return cs.Start() }

// kill marks the signer down, SIGKILLs it and waits until it is gone.
func (cs *crashSigner) kill() error {
	cs.markDown()
	return cs.Kill()
}

// terminate marks the signer down, stops it with SIGTERM and returns its
// exit status.
func (cs *crashSigner) terminate(timeout time.Duration) error {
	cs.markDown()
	return cs.Terminate(timeout)
}

// waitHealthy waits until the signer's health service reports SERVING
// through the shared connection, then marks the signer up.
func (cs *crashSigner) waitHealthy(limit time.Duration) error {
	if err := cs.WaitServing(limit, cs.health); err != nil {
		return err
	}
	cs.markUp()
	return nil
}

// crashState is what checkCrashState found in a state file.
type crashState struct {
	auditRecords uint64
	accounts     map[nano.PublicKey]AccountRecord
	// signed: account → previous → the block signed on it.
	signed    map[nano.PublicKey]map[nano.Hash]SignedBlock
	nSigned   int
	requests  map[string]StoredResponse
	refusals  int
	adoptions int
}

// crashCheckCache remembers what earlier state checks decoded and
// verified, so that the check after each kill does the slow work (JSON
// decoding, signature verification) only for blocks signed since.
type crashCheckCache struct {
	mu      sync.Mutex
	ok      map[nano.Hash]nano.Signature // signatures that verified
	decoded map[string]SignedBlock       // by the record's bytes
}

func (c *crashCheckCache) verify(acct nano.PublicKey, h nano.Hash, sig nano.Signature) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok == nil {
		c.ok = map[nano.Hash]nano.Signature{}
	}
	if s, ok := c.ok[h]; ok && s == sig {
		return true // h covers the account, so only the signature can differ
	}
	if !nano.Verify(acct, h[:], sig) {
		return false
	}
	c.ok[h] = sig
	return true
}

func (c *crashCheckCache) decode(v []byte) (SignedBlock, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sb, ok := c.decoded[string(v)]; ok {
		return sb, nil
	}
	var sb SignedBlock
	if err := sb.UnmarshalBinary(v); err != nil {
		return SignedBlock{}, err
	}
	if c.decoded == nil {
		c.decoded = map[string]SignedBlock{}
	}
	c.decoded[string(v)] = sb
	return sb, nil
}

// openStateReadOnly opens a state file no process holds, read-only.
func openStateReadOnly(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	return &Store{db: db, appended: make(chan struct{})}, nil
}

// checkCrashState verifies the invariants a state file must keep whatever
// moment the signer died at:
//   - the audit chain verifies;
//   - every signed block sits under its own previous, hashes to its
//     recorded hash and carries a valid signature by its account;
//   - each account's signed blocks form one chain from an open block to
//     the recorded frontier, whose height is the chain's length;
//   - every signed block's request id has a stored response naming that
//     block, and every stored response's block is the signed one;
//   - the audit chain holds exactly one "signed" record per signed block.
func checkCrashState(s *Store, cache *crashCheckCache) (*crashState, error) {
	st := &crashState{
		accounts: map[nano.PublicKey]AccountRecord{},
		signed:   map[nano.PublicKey]map[nano.Hash]SignedBlock{},
		requests: map[string]StoredResponse{},
	}
	n, err := s.VerifyAudit()
	if err != nil {
		return nil, fmt.Errorf("audit chain after %d records: %w", n, err)
	}
	st.auditRecords = n
	recs, err := s.Accounts()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		st.accounts[r.Account] = r
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	err = s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketSigned).ForEach(func(k, v []byte) error {
			if len(k) != 64 {
				bad("signed: key of %d bytes", len(k))
				return nil
			}
			acct, prev := nano.PublicKey(k[:32]), nano.Hash(k[32:])
			sb, err := cache.decode(v)
			if err != nil {
				bad("signed %s/%s: %v", acct.Address(), prev, err)
				return nil
			}
			h := sb.Block.Hash()
			switch {
			case sb.Block.Account != acct:
				bad("signed %s/%s: the block belongs to %s", acct.Address(), prev, sb.Block.Account.Address())
			case sb.Block.Previous != prev:
				bad("signed %s/%s: the block's previous is %s", acct.Address(), prev, sb.Block.Previous)
			case h != sb.Hash:
				bad("signed %s/%s: the block hashes to %s, recorded %s", acct.Address(), prev, h, sb.Hash)
			case !cache.verify(acct, h, sb.Block.Signature):
				bad("signed %s/%s: the signature does not verify", acct.Address(), prev)
			}
			if st.signed[acct] == nil {
				st.signed[acct] = map[nano.Hash]SignedBlock{}
			}
			st.signed[acct][prev] = sb
			st.nSigned++
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketRequests).ForEach(func(k, _ []byte) error {
			sr, ok, err := getRequest(tx, string(k))
			if err != nil || !ok {
				bad("request %q: %v", k, err)
				return nil
			}
			st.requests[string(k)] = sr
			return nil
		})
	})
	if err != nil {
		return nil, err
	}

	// One chain per account, ending at the recorded frontier.
	for acct, byPrev := range st.signed {
		rec, ok := st.accounts[acct]
		if !ok {
			bad("%s: blocks were signed for an account with no record", acct.Address())
			continue
		}
		byHash := make(map[nano.Hash]SignedBlock, len(byPrev))
		for _, sb := range byPrev {
			byHash[sb.Hash] = sb
		}
		if rec.Frontier == nil || rec.Frontier.Hash() != rec.FrontierHash {
			bad("%s: the record's frontier does not hash to its frontier hash %s", acct.Address(), rec.FrontierHash)
			continue
		}
		walked := 0
		for cur := rec.FrontierHash; !cur.IsZero(); {
			sb, ok := byHash[cur]
			if !ok {
				bad("%s: the chain from the frontier reaches %s, which this signer never signed", acct.Address(), cur)
				break
			}
			walked++
			if walked > len(byHash) {
				bad("%s: the chain loops", acct.Address())
				break
			}
			cur = sb.Block.Previous
		}
		if walked != len(byPrev) {
			bad("%s: %d blocks signed but the chain to the frontier %s has %d: a block is off the chain (a fork, or a lost frontier)", acct.Address(), len(byPrev), rec.FrontierHash, walked)
		}
		if rec.Height != uint64(walked) {
			bad("%s: recorded height %d, chain length %d", acct.Address(), rec.Height, walked)
		}
		if sb, ok := byHash[rec.FrontierHash]; !ok || sb.Block != *rec.Frontier {
			bad("%s: the recorded frontier block differs from the signed one", acct.Address())
		}
	}
	for acct, rec := range st.accounts {
		if rec.Frontier != nil && len(st.signed[acct]) == 0 {
			bad("%s: a frontier %s on record but no block signed", acct.Address(), rec.FrontierHash)
		}
	}

	// Signed blocks ↔ stored responses.
	byHash := map[nano.Hash]SignedBlock{}
	for _, byPrev := range st.signed {
		for _, sb := range byPrev {
			byHash[sb.Hash] = sb
			sr, ok := st.requests[sb.RequestID]
			if !ok {
				bad("block %s was signed for request %q, which has no stored response", sb.Hash, sb.RequestID)
				continue
			}
			if !bytes.Equal(sr.Response.GetHash(), sb.Hash[:]) {
				bad("request %q: stored response names %X, the signed block is %s", sb.RequestID, sr.Response.GetHash(), sb.Hash)
			}
			if b, err := sr.Response.GetBlock().ToNano("block"); err != nil || b != sb.Block {
				bad("request %q: the stored response's block differs from the signed block (%v)", sb.RequestID, err)
			}
		}
	}
	for id, sr := range st.requests {
		if _, ok := byHash[nano.Hash(sr.Response.GetHash())]; !ok {
			bad("request %q: a stored response for block %X that is not among the signed blocks", id, sr.Response.GetHash())
		}
		if sr.Response.GetRequestId() != id {
			bad("request %q: the stored response carries request id %q", id, sr.Response.GetRequestId())
		}
	}

	// The audit chain ↔ signed blocks.
	inAudit := map[nano.Hash]int{}
	_, err = s.AuditFrom(1, func(r *pb.AuditRecord) error {
		switch r.GetDecision() {
		case DecisionSigned:
			inAudit[nano.Hash(r.GetBlockHash())]++
			sb, ok := byHash[nano.Hash(r.GetBlockHash())]
			if !ok {
				bad("audit %d: records signing %X, which is not among the signed blocks", r.GetSeq(), r.GetBlockHash())
			} else if sb.RequestID != r.GetRequestId() {
				bad("audit %d: request %q, the signed block's is %q", r.GetSeq(), r.GetRequestId(), sb.RequestID)
			}
			if sr, ok := st.requests[r.GetRequestId()]; ok && sr.Response.GetAuditSeq() != r.GetSeq() {
				bad("audit %d: the stored response for %q names audit seq %d", r.GetSeq(), r.GetRequestId(), sr.Response.GetAuditSeq())
			}
		case DecisionRefused:
			st.refusals++
		case DecisionAdopted:
			st.adoptions++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for h := range byHash {
		if inAudit[h] != 1 {
			bad("block %s appears %d times in the audit chain as signed", h, inAudit[h])
		}
	}
	if st.adoptions != len(st.accounts) {
		bad("%d adoption records for %d accounts", st.adoptions, len(st.accounts))
	}
	return st, errors.Join(errs...)
}

// crashDeterministic marshals m deterministically.
func crashDeterministic(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// crashListFiles lists the files of dir with their sizes.
func crashListFiles(dir string) string {
	var b strings.Builder
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			fmt.Fprintf(&b, "  %8d %s\n", fi.Size(), e.Name())
		}
	}
	return b.String()
}

// repairToken restores the signer's token files whose size differs from
// the pristine copy's, and names them. SoftHSM's file store rewrites
// token.object in place (truncate, then write) on every successful
// C_Login, to store the token flags, and bumps the generation file; a
// SIGKILL inside that window leaves token.object empty and the token
// gone ("token not found"). The signer logs in once, at start-up, and
// writes nothing to the token afterwards, so only a kill during start-up
// can tear a file. A real HSM keeps its own state atomically; the
// repair stands in for that.
func (cs *crashSigner) repairToken() ([]string, error) {
	entries, err := os.ReadDir(cs.pristine)
	if err != nil {
		return nil, err
	}
	var torn []string
	for _, e := range entries {
		want, err := e.Info()
		if err != nil {
			return nil, err
		}
		path := filepath.Join(cs.tokenDir, e.Name())
		if got, err := os.Stat(path); err == nil && got.Size() == want.Size() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(cs.pristine, e.Name()))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
		torn = append(torn, e.Name())
	}
	return torn, nil
}
