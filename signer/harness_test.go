package signer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/internal/pgtest"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/policy"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

func TestMain(m *testing.M) {
	code := softhsmtest.Run(m)
	if err := closeSharedPG(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	os.Exit(code)
}

// The custody wallet's seed (vector seed_det1) and its first account.
const custodySeedHex = "7E11F00A97785E691E6C9DD966138EB97B87EA13258CA484E55856BCAFBB9EAD"

// xno returns n XNO.
func xno(n uint64) nano.Amount {
	a, err := nano.ParseAmountUnit(fmt.Sprintf("%d XNO", n))
	if err != nil {
		panic(err)
	}
	return a
}

// extAccount is an account outside custody whose key the test holds.
type extAccount struct {
	key    *nano.SigningKey
	pub    nano.PublicKey
	blocks []nano.StateBlock
}

func newExt(t *testing.T, seedByte byte) *extAccount {
	t.Helper()
	var k nano.PrivateKey
	for i := range k {
		k[i] = seedByte + byte(i)
	}
	sk := nano.NewSigningKey(&k)
	return &extAccount{key: sk, pub: sk.Public()}
}

// add appends a block with the given balance and link, signed.
func (e *extAccount) add(balance nano.Amount, link nano.Hash, rep nano.PublicKey) nano.StateBlock {
	b := nano.StateBlock{Account: e.pub, Representative: rep, Balance: balance, Link: link}
	if n := len(e.blocks); n > 0 {
		b.Previous = e.blocks[n-1].Hash()
	}
	h := b.Hash()
	b.Signature = e.key.Sign(h[:])
	e.blocks = append(e.blocks, b)
	return b
}

// world is a running signer on a real SoftHSM token, over gRPC on a real
// Unix socket, with test approvers and external accounts.
type world struct {
	t         *testing.T
	ctx       context.Context
	tok       *hsm.Token
	store     *Store // the bbolt store; nil on PostgreSQL
	state     State  // what the signer decides through
	pgDSN     string // the PostgreSQL database, when on one
	signer    *Signer
	client    pb.SignerClient
	conn      *grpc.ClientConn
	logs      *logBuffer // the signer's log (JSON lines)
	omu       sync.Mutex
	observed  []string // what Options.Observe was told: "decision/reason"
	approvers map[string]ed25519.PrivateKey
	now       atomic.Int64 // Unix nanoseconds of the signer's clock
	seq       atomic.Int64

	custody     nano.PublicKey // custody wallet index 0
	custody1    nano.PublicKey // custody wallet index 1
	funder      *extAccount
	dest, dest2 nano.PublicKey
	rep, rep2   nano.PublicKey
	epoch       *extAccount // the epoch signer
	stateFile   string
}

const testPolicy = `
[signer]
state = "%[1]s"
listen = "unix://%[2]s"

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "x"
pin_env = "NANOKMS_PIN"

[epoch]
signers = ["%[11]s"]

[[approvers]]
name = "service"
public_key = "%[3]X"
[[approvers]]
name = "alice"
public_key = "%[4]X"
[[approvers]]
name = "bob"
public_key = "%[5]X"
[[approvers]]
name = "carol"
public_key = "%[6]X"

[[groups]]
name = "custody"
wallets = ["custody"]
max_send = "100 XNO"
velocity_24h = "150 XNO"
destinations = ["%[7]s", "%[8]s"]
representatives = ["%[9]s", "%[10]s"]
receive_automatic = true
[[groups.tiers]]
up_to = "10 XNO"
quorum = 1
approvers = ["service"]
[[groups.tiers]]
quorum = 2
approvers = ["alice", "bob", "carol"]

[[groups]]
name = "manual"
wallets = ["manual"]
receive_automatic = false
[[groups.tiers]]
quorum = 1
approvers = ["service"]
`

// worldOptions change how newWorldWith sets the world up.
type worldOptions struct {
	// stateDir holds the state file; "" means a fresh t.TempDir().
	stateDir string
	// serve tunes the gRPC server (Listen and Grace are set by the world).
	serve ServeOptions
	// pg puts the signer's state on PostgreSQL (a new database on the
	// test binary's shared server, or on pgServer when set) in place of a
	// bbolt file.
	pg       bool
	pgServer *pgtest.Server
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldWith(t, worldOptions{})
}

func newWorldWith(t *testing.T, wo worldOptions) *world {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w := &world{t: t, ctx: ctx, approvers: map[string]ed25519.PrivateKey{}}
	w.now.Store(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).UnixNano())

	tk := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("signer"))
	pin, err := hsm.NewPIN([]byte(tk.PIN))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := hsm.Open(ctx, hsm.Config{Module: tk.Module, TokenLabel: tk.Label, PIN: pin, PoolSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	w.tok = tok
	if err := tok.CreateMasterKey(ctx, 0); err != nil {
		t.Fatal(err)
	}
	seed, err := nano.ParseSeed(custodySeedHex)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.ImportWallet(ctx, "custody", &seed); err != nil {
		t.Fatal(err)
	}
	manualSeed, _ := nano.ParseSeed("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF")
	if _, err := tok.ImportWallet(ctx, "manual", &manualSeed); err != nil {
		t.Fatal(err)
	}
	if w.custody, err = tok.PublicKey(ctx, "custody", 0); err != nil {
		t.Fatal(err)
	}
	if w.custody1, err = tok.PublicKey(ctx, "custody", 1); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"service", "alice", "bob", "carol", "mallory"} {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		w.approvers[name] = priv
	}
	w.funder = newExt(t, 1)
	w.dest, w.dest2 = newExt(t, 50).pub, newExt(t, 60).pub
	w.rep, w.rep2 = newExt(t, 70).pub, newExt(t, 80).pub
	w.epoch = newExt(t, 100)

	dir := t.TempDir()
	stateDir := wo.stateDir
	if stateDir == "" {
		stateDir = dir
	}
	w.stateFile = filepath.Join(stateDir, "signer.db")
	sock := filepath.Join(dir, "signer.sock")
	pubOf := func(n string) []byte { return w.approvers[n].Public().(ed25519.PublicKey) }
	cfgText := fmt.Sprintf(testPolicy, w.stateFile, sock, pubOf("service"), pubOf("alice"), pubOf("bob"), pubOf("carol"),
		w.dest.Address(), w.dest2.Address(), w.rep.Address(), w.rep2.Address(), w.epoch.pub.Address())
	cfg, err := policy.Parse([]byte(cfgText))
	if err != nil {
		t.Fatalf("test policy: %v", err)
	}
	var store *Store
	if wo.pg {
		srv := wo.pgServer
		if srv == nil {
			srv = sharedPG(t)
		}
		w.pgDSN = srv.NewDatabase(t)
		w.state = openPG(t, w.pgDSN)
	} else {
		if store, err = OpenStore(w.stateFile); err != nil {
			t.Fatal(err)
		}
		w.store, w.state = store, boltState{store}
	}
	w.logs = &logBuffer{}
	log := slog.New(slog.NewJSONHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	observe := func(decision, reason string, _ time.Duration) {
		w.omu.Lock()
		w.observed = append(w.observed, decision+"/"+reason)
		w.omu.Unlock()
	}
	w.signer = NewWithState(w.state, tok, cfg, Options{Now: func() time.Time { return time.Unix(0, w.now.Load()) }, Logger: log, Observe: observe})
	w.signer.store = store

	opts := wo.serve
	opts.Listen, opts.Grace = "unix://"+sock, 5*time.Second
	l, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	sctx, stop := context.WithCancel(context.Background())
	go func() { served <- Serve(sctx, l, NewServer(w.signer), opts) }()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if store != nil {
			store.Close()
		}
	})
	w.conn = conn
	w.client = pb.NewSignerClient(conn)
	return w
}

// logBuffer collects log output; it is safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was logged so far.
func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// nextID returns a fresh request id.
func (w *world) nextID() string { return fmt.Sprintf("req-%04d", w.seq.Add(1)) }

func (w *world) expiry() int64 { return time.Unix(0, w.now.Load()).Add(time.Hour).Unix() }

func (w *world) sendIntent(amount nano.Amount, dest nano.PublicKey) *pb.Intent {
	return &pb.Intent{RequestId: w.nextID(), Kind: pb.IntentKind_INTENT_KIND_SEND, Account: w.custody[:],
		AmountRaw: amount.String(), Destination: dest[:], ExpiresAtUnix: w.expiry()}
}

func (w *world) receiveIntent(account nano.PublicKey, amount nano.Amount, source nano.Hash, rep *nano.PublicKey) *pb.Intent {
	in := &pb.Intent{RequestId: w.nextID(), Kind: pb.IntentKind_INTENT_KIND_RECEIVE, Account: account[:],
		AmountRaw: amount.String(), SourceHash: source[:], ExpiresAtUnix: w.expiry()}
	if rep != nil {
		in.Representative = rep[:]
	}
	return in
}

func (w *world) changeIntent(rep nano.PublicKey) *pb.Intent {
	return &pb.Intent{RequestId: w.nextID(), Kind: pb.IntentKind_INTENT_KIND_CHANGE, Account: w.custody[:],
		Representative: rep[:], ExpiresAtUnix: w.expiry()}
}

func (w *world) approve(in *pb.Intent, names ...string) []*pb.Approval {
	w.t.Helper()
	var out []*pb.Approval
	for _, n := range names {
		a, err := intent.Approve(w.approvers[n], in)
		if err != nil {
			w.t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// fund makes the funder send amount to to and returns (source, its previous).
func (w *world) fund(to nano.PublicKey, amount nano.Amount) (nano.StateBlock, nano.StateBlock) {
	w.t.Helper()
	if len(w.funder.blocks) == 0 {
		w.funder.add(xno(1_000_000), nano.Hash{0xAA}, w.rep) // the funder's open block
	}
	prev := w.funder.blocks[len(w.funder.blocks)-1]
	bal, err := prev.Balance.Sub(amount)
	if err != nil {
		w.t.Fatal(err)
	}
	src := w.funder.add(bal, nano.Hash(to), w.rep)
	return src, prev
}

// epochOn returns an epoch-v2 block on top of head, signed by signer.
func epochOn(head nano.StateBlock, signer *extAccount) nano.StateBlock {
	b := nano.StateBlock{Account: head.Account, Previous: head.Hash(), Representative: head.Representative,
		Balance: head.Balance, Link: nano.EpochV2Link}
	h := b.Hash()
	b.Signature = signer.key.Sign(h[:])
	return b
}

func pbBlock(b nano.StateBlock) *pb.Block { return pb.BlockFromNano(&b) }

// mustSign sends req and fails the test unless it is signed with a valid
// signature over a block of the expected subtype.
func (w *world) mustSign(req *pb.SignRequest, subtype string) nano.StateBlock {
	w.t.Helper()
	resp, err := w.client.Sign(w.ctx, req)
	if err != nil {
		w.t.Fatalf("Sign(%s): %v", req.GetIntent().GetRequestId(), err)
	}
	b, err := resp.GetBlock().ToNano("block")
	if err != nil {
		w.t.Fatal(err)
	}
	h := b.Hash()
	if string(resp.GetHash()) != string(h[:]) {
		w.t.Fatalf("response hash %X is not the block's %s", resp.GetHash(), h)
	}
	if !nano.Verify(b.Account, h[:], b.Signature) {
		w.t.Fatalf("signed block %s does not verify with nano.Verify", h)
	}
	if resp.GetSubtype() != subtype {
		w.t.Fatalf("subtype %s, want %s", resp.GetSubtype(), subtype)
	}
	return b
}

// reasonOf returns the ErrorInfo reason of a gRPC error ("" if none).
func reasonOf(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == ErrorDomain {
			return ei.GetReason()
		}
	}
	return ""
}

// adopt starts tracking a custody account through the API.
func (w *world) adopt(wallet string, index uint32, head *nano.StateBlock) {
	w.t.Helper()
	req := &pb.AdoptAccountRequest{Wallet: wallet, Index: index}
	if head != nil {
		req.Head = pbBlock(*head)
	}
	if _, err := w.client.AdoptAccount(w.ctx, req); err != nil {
		w.t.Fatalf("AdoptAccount: %v", err)
	}
}

var errNotRefused = errors.New("not refused")
