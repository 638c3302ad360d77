package signer

import (
	"bytes"
	"context"
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
	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/internal/pgtest"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerapi"
	"github.com/nanokms/nanokms/signer/signerconf"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

func TestMain(m *testing.M) {
	code := softhsmtest.Run(m)
	killtest.Cleanup() // the binaries the kill tests built
	if err := closeSharedPG(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	os.Exit(code)
}

// world is a running signer on a real SoftHSM token, over gRPC on a real
// Unix socket. Its embedded Parties (signer/custodytest) hold the test
// approvers (service, alice, bob, carol, mallory), the funder and the
// representative Rep, and build intents and approvals that expire by the
// signer's clock.
type world struct {
	*custodytest.Parties
	t        *testing.T
	ctx      context.Context
	tok      *hsm.Token
	store    *Store // the bbolt store; nil on PostgreSQL
	state    State  // what the signer decides through
	pgDSN    string // the PostgreSQL database, when on one
	signer   *Signer
	client   pb.SignerClient
	conn     *grpc.ClientConn
	logs     *logBuffer // the signer's log (JSON lines)
	omu      sync.Mutex
	observed []string     // what Options.Observe was told: "decision/reason"
	now      atomic.Int64 // Unix nanoseconds of the signer's clock

	custody     nano.PublicKey // custody wallet index 0
	custody1    nano.PublicKey // custody wallet index 1
	dest, dest2 nano.PublicKey
	rep2        nano.PublicKey          // a second allowed representative
	epoch       *custodytest.ExtAccount // the epoch signer
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
	w := &world{t: t, ctx: ctx, Parties: custodytest.NewParties(t, "service", "alice", "bob", "carol", "mallory")}
	w.now.Store(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).UnixNano())
	w.IDPrefix, w.Now = "req-", func() time.Time { return time.Unix(0, w.now.Load()) }
	w.tok = custodytest.MustToken(t, "signer", custodytest.TokenOptions{PoolSize: 4,
		Wallets: map[string]string{"manual": "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"}})
	var err error
	if w.custody, err = w.tok.PublicKey(ctx, custodytest.Wallet, 0); err != nil {
		t.Fatal(err)
	}
	if w.custody1, err = w.tok.PublicKey(ctx, custodytest.Wallet, 1); err != nil {
		t.Fatal(err)
	}
	w.dest, w.dest2 = custodytest.NewExtAccount(50).Pub, custodytest.NewExtAccount(60).Pub
	w.rep2 = custodytest.NewExtAccount(80).Pub
	w.epoch = custodytest.NewExtAccount(100)

	dir := t.TempDir()
	stateDir := wo.stateDir
	if stateDir == "" {
		stateDir = dir
	}
	w.stateFile = filepath.Join(stateDir, "signer.db")
	sock := filepath.Join(dir, "signer.sock")
	cfgText := fmt.Sprintf(testPolicy, w.stateFile, sock, w.PublicKey("service"), w.PublicKey("alice"), w.PublicKey("bob"), w.PublicKey("carol"),
		w.dest.Address(), w.dest2.Address(), w.Rep.Address(), w.rep2.Address(), w.epoch.Pub.Address())
	cfg, err := signerconf.Parse([]byte(cfgText))
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
	w.signer = NewWithState(w.state, w.tok, &cfg.Policy, Options{Now: func() time.Time { return time.Unix(0, w.now.Load()) }, Logger: log, Observe: observe})
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

// The test binary's shared PostgreSQL server: started on first use (so
// that tests of the bbolt store alone never wait for it), a database per
// test, stopped by TestMain.
var pgShared struct {
	mu  sync.Mutex
	srv *pgtest.Server
}

// sharedPG returns the shared server, starting it on first use.
func sharedPG(t *testing.T) *pgtest.Server {
	t.Helper()
	pgShared.mu.Lock()
	defer pgShared.mu.Unlock()
	if pgShared.srv == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		srv, err := pgtest.New(ctx, pgtest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		pgShared.srv = srv
	}
	return pgShared.srv
}

func closeSharedPG() error {
	pgShared.mu.Lock()
	defer pgShared.mu.Unlock()
	if pgShared.srv == nil {
		return nil
	}
	err := pgShared.srv.Close()
	pgShared.srv = nil
	return err
}

// openPG opens a PGStore on dsn, closed at t's cleanup.
func openPG(t *testing.T, dsn string) *PGStore {
	t.Helper()
	return openPGWith(t, dsn, PGOptions{})
}

func openPGWith(t *testing.T, dsn string, opts PGOptions) *PGStore {
	t.Helper()
	st, err := OpenPGStore(t.Context(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// forEachStore runs f once on each State implementation: a bbolt file,
// and a database on PostgreSQL.
func forEachStore(t *testing.T, f func(t *testing.T, wo worldOptions)) {
	t.Helper()
	for _, k := range []struct {
		name string
		pg   bool
	}{{"bbolt", false}, {"postgres", true}} {
		t.Run(k.name, func(t *testing.T) { f(t, worldOptions{pg: k.pg}) })
	}
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

// epochOn returns an epoch-v2 block on top of head, signed by signer.
func epochOn(head nano.StateBlock, signer *custodytest.ExtAccount) nano.StateBlock {
	b := nano.StateBlock{Account: head.Account, Previous: head.Hash(), Representative: head.Representative,
		Balance: head.Balance, Link: nano.EpochV2Link}
	h := b.Hash()
	b.Signature = signer.Key.Sign(h[:])
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
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == signerapi.ErrorDomain {
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
