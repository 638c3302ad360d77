// Package signertest runs a real cold signer for tests of other packages:
// a SoftHSM token with a master key and an imported custody wallet, a
// strict policy with test approvers, the bbolt state file and the gRPC
// server on a Unix socket. It also holds external accounts whose keys the
// test controls, to fund custody accounts with real signed sends.
//
// It is for tests only: its keys and seeds are public. The calling test
// binary's TestMain must call softhsmtest.Run.
package signertest

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
	"github.com/nanokms/nanokms/signer/policy"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

// CustodySeed is the custody wallet's seed (the public vectors' seed_det1).
const CustodySeed = "7E11F00A97785E691E6C9DD966138EB97B87EA13258CA484E55856BCAFBB9EAD"

// Wallet is the custody wallet's label.
const Wallet = "custody"

// XNO returns n XNO.
func XNO(n uint64) nano.Amount {
	a, err := nano.ParseAmountUnit(fmt.Sprintf("%d XNO", n))
	if err != nil {
		panic(err)
	}
	return a
}

// ExtAccount is an account outside custody whose key the test holds.
type ExtAccount struct {
	Key    *nano.SigningKey
	Pub    nano.PublicKey
	Blocks []nano.StateBlock
}

// NewExtAccount returns an account with a private key made from b.
func NewExtAccount(b byte) *ExtAccount {
	var k nano.PrivateKey
	for i := range k {
		k[i] = b + byte(i)
	}
	sk := nano.NewSigningKey(&k)
	return &ExtAccount{Key: sk, Pub: sk.Public()}
}

// Add appends a signed block with the given balance, link and representative.
func (e *ExtAccount) Add(balance nano.Amount, link nano.Hash, rep nano.PublicKey) nano.StateBlock {
	b := nano.StateBlock{Account: e.Pub, Representative: rep, Balance: balance, Link: link}
	if n := len(e.Blocks); n > 0 {
		b.Previous = e.Blocks[n-1].Hash()
	}
	h := b.Hash()
	b.Signature = e.Key.Sign(h[:])
	e.Blocks = append(e.Blocks, b)
	return b
}

// Env is a running signer and what tests need around it.
type Env struct {
	t         testing.TB
	Token     *hsm.Token
	Signer    *signer.Signer
	Store     *signer.Store
	Socket    string // the signer's Unix socket path
	Client    pb.SignerClient
	Config    *policy.Config
	Approvers map[string]ed25519.PrivateKey // service, alice, bob
	Funder    *ExtAccount
	Rep       nano.PublicKey // an allowed representative
	seq       atomic.Int64
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
	e := &Env{t: t, Approvers: map[string]ed25519.PrivateKey{}, Funder: NewExtAccount(1), Rep: NewExtAccount(70).Pub}

	tk := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("signer"))
	pin, err := hsm.NewPIN([]byte(tk.PIN))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := hsm.Open(ctx, hsm.Config{Module: tk.Module, TokenLabel: tk.Label, PIN: pin})
	pin.Wipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	e.Token = tok
	if err := tok.CreateMasterKey(ctx, 0); err != nil {
		t.Fatal(err)
	}
	seed, err := nano.ParseSeed(CustodySeed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.ImportWallet(ctx, Wallet, &seed); err != nil {
		t.Fatal(err)
	}
	seed.Wipe()
	for _, name := range []string{"service", "alice", "bob"} {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		e.Approvers[name] = priv
	}
	dir := t.TempDir()
	e.Socket = filepath.Join(dir, "signer.sock")
	state := filepath.Join(dir, "signer.db")
	pub := func(n string) []byte { return e.Approvers[n].Public().(ed25519.PublicKey) }
	cfg, err := policy.Parse([]byte(fmt.Sprintf(policyTOML, state, e.Socket, pub("service"), pub("alice"), pub("bob"))))
	if err != nil {
		t.Fatalf("signertest policy: %v", err)
	}
	e.Config = cfg
	store, err := signer.OpenStore(state)
	if err != nil {
		t.Fatal(err)
	}
	e.Store = store
	e.Signer = signer.New(store, tok, cfg, signer.Options{})
	opts := signer.ServeOptions{Listen: "unix://" + e.Socket, Grace: 5 * time.Second}
	l, err := signer.Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- signer.Serve(sctx, l, signer.NewServer(e.Signer), opts) }()
	conn, err := grpc.NewClient("unix://"+e.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		stop()
		if err := <-served; err != nil {
			t.Errorf("signer: %v", err)
		}
		store.Close()
	})
	e.Client = pb.NewSignerClient(conn)
	for i := 0; i < accounts; i++ {
		if _, err := e.Client.AdoptAccount(ctx, &pb.AdoptAccountRequest{Wallet: Wallet, Index: uint32(i)}); err != nil {
			t.Fatalf("adopting account %d: %v", i, err)
		}
	}
	return e
}

// Account returns custody account i's public key.
func (e *Env) Account(i uint32) nano.PublicKey {
	e.t.Helper()
	pub, err := e.Token.PublicKey(context.Background(), Wallet, i)
	if err != nil {
		e.t.Fatal(err)
	}
	return pub
}

// Fund makes the funder send amount to to and returns the send block and
// the block before it (what a receive request carries).
func (e *Env) Fund(to nano.PublicKey, amount nano.Amount) (src, prev nano.StateBlock) {
	e.t.Helper()
	if len(e.Funder.Blocks) == 0 {
		e.Funder.Add(XNO(1_000_000), nano.Hash{0xAA}, e.Rep)
	}
	prev = e.Funder.Blocks[len(e.Funder.Blocks)-1]
	bal, err := prev.Balance.Sub(amount)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.Funder.Add(bal, nano.Hash(to), e.Rep), prev
}

// NextID returns a fresh request id.
func (e *Env) NextID() string {
	return fmt.Sprintf("t-%d-%04d", time.Now().UnixNano()%1e6, e.seq.Add(1))
}

func expiry() int64 { return time.Now().Add(time.Hour).Unix() }

// SendIntent is a send of amount from account to dest.
func (e *Env) SendIntent(account nano.PublicKey, amount nano.Amount, dest nano.PublicKey) *pb.Intent {
	return &pb.Intent{RequestId: e.NextID(), Kind: pb.IntentKind_INTENT_KIND_SEND, Account: account[:],
		AmountRaw: amount.String(), Destination: dest[:], ExpiresAtUnix: expiry()}
}

// ReceiveIntent is a receive of source into account; rep opens it.
func (e *Env) ReceiveIntent(account nano.PublicKey, amount nano.Amount, source nano.Hash, rep *nano.PublicKey) *pb.Intent {
	in := &pb.Intent{RequestId: e.NextID(), Kind: pb.IntentKind_INTENT_KIND_RECEIVE, Account: account[:],
		AmountRaw: amount.String(), SourceHash: source[:], ExpiresAtUnix: expiry()}
	if rep != nil {
		in.Representative = rep[:]
	}
	return in
}

// ChangeIntent changes account's representative to rep.
func (e *Env) ChangeIntent(account, rep nano.PublicKey) *pb.Intent {
	return &pb.Intent{RequestId: e.NextID(), Kind: pb.IntentKind_INTENT_KIND_CHANGE, Account: account[:],
		Representative: rep[:], ExpiresAtUnix: expiry()}
}

// Approve returns the named approvers' approvals of in.
func (e *Env) Approve(in *pb.Intent, names ...string) []*pb.Approval {
	e.t.Helper()
	out := make([]*pb.Approval, 0, len(names))
	for _, n := range names {
		a, err := intent.Approve(e.Approvers[n], in)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}
