// Package signertest runs a real cold signer for tests of other packages:
// a SoftHSM token with a master key and an imported custody wallet, a
// strict policy with test approvers, the bbolt state file and the gRPC
// server on a Unix socket. The token, the approvers, the external accounts
// and the intents come from signer/custodytest, which the signer's own
// tests share.
//
// It is for tests only: its keys and seeds are public. The calling test
// binary's TestMain must call softhsmtest.Run.
package signertest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerconf"
)

// Env is a running signer and what tests need around it: its embedded
// Parties hold the approvers (service, alice, bob), the funder and the
// representative, and build intents and approvals.
type Env struct {
	*custodytest.Parties
	t      testing.TB
	Token  *hsm.Token
	Signer *signer.Signer
	Store  *signer.Store
	Socket string // the signer's Unix socket path
	Client pb.SignerClient
	Config *signerconf.Config

	mu     sync.Mutex
	stop   context.CancelFunc // stops the running server; nil while stopped
	served chan error
}

const policyTOML = `
[signer]
state = "%[1]s"
listen = "unix://%[2]s"

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "unused"
pin_env = "NANOKMS_PIN"

[[approvers]]
name = "service"
public_key = "%[3]X"
[[approvers]]
name = "alice"
public_key = "%[4]X"
[[approvers]]
name = "bob"
public_key = "%[5]X"

[[groups]]
name = "custody"
wallets = ["custody"]
receive_automatic = true
[[groups.tiers]]
up_to = "100 XNO"
quorum = 1
approvers = ["service"]
[[groups.tiers]]
quorum = 2
approvers = ["alice", "bob"]
`

// MustEnv starts a signer. Its custody wallet is adopted for accounts
// 0..accounts-1, unopened. Everything stops when the test ends.
func MustEnv(t testing.TB, accounts int) *Env {
	t.Helper()
	ctx := context.Background()
	e := &Env{t: t, Parties: custodytest.NewParties(t, "service", "alice", "bob"),
		Token: custodytest.MustToken(t, "signer", custodytest.TokenOptions{})}
	tok := e.Token
	dir := t.TempDir()
	e.Socket = filepath.Join(dir, "signer.sock")
	state := filepath.Join(dir, "signer.db")
	cfg, err := signerconf.Parse([]byte(fmt.Sprintf(policyTOML, state, e.Socket, e.PublicKey("service"), e.PublicKey("alice"), e.PublicKey("bob"))))
	if err != nil {
		t.Fatalf("signertest policy: %v", err)
	}
	e.Config = cfg
	store, err := signer.OpenStore(state)
	if err != nil {
		t.Fatal(err)
	}
	e.Store = store
	e.Signer = signer.New(store, tok, &cfg.Policy, signer.Options{})
	e.Start()
	conn, err := grpc.NewClient("unix://"+e.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		e.Stop()
		store.Close()
	})
	e.Client = pb.NewSignerClient(conn)
	for i := 0; i < accounts; i++ {
		if _, err := e.Client.AdoptAccount(ctx, &pb.AdoptAccountRequest{Wallet: custodytest.Wallet, Index: uint32(i)}); err != nil {
			t.Fatalf("adopting account %d: %v", i, err)
		}
	}
	return e
}

// Account returns custody account i's public key.
func (e *Env) Account(i uint32) nano.PublicKey {
	e.t.Helper()
	pub, err := e.Token.PublicKey(context.Background(), custodytest.Wallet, i)
	if err != nil {
		e.t.Fatal(err)
	}
	return pub
}

// Start serves the signer on its socket (MustEnv does), after Stop: the
// same signer, state and token, a new listener.
func (e *Env) Start() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stop != nil {
		e.t.Fatal("signertest: Start: the signer is serving")
	}
	opts := signer.ServeOptions{Listen: "unix://" + e.Socket, Grace: 5 * time.Second}
	l, err := signer.Listen(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- signer.Serve(sctx, l, signer.NewServer(e.Signer), opts) }()
	e.stop, e.served = stop, served
}

// Stop stops serving and waits until the socket is closed: the signer is
// down, for real, until Start. Stopping a stopped signer does nothing.
func (e *Env) Stop() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stop == nil {
		return
	}
	e.stop()
	if err := <-e.served; err != nil {
		e.t.Errorf("signer: %v", err)
	}
	e.stop, e.served = nil, nil
}
