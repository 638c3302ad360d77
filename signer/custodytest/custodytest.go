// Package custodytest holds what a test needs around a custody signer
// without the signer itself: a SoftHSM token with a master key and the
// custody wallet, approver keys, external accounts whose keys the test
// controls (to fund custody accounts with real signed sends), and the
// intents and approvals built with them.
//
// It imports no signer package, so that the signer's own tests and
// signer/signertest (which runs a signer for other packages' tests) share
// it. It is for tests only: its keys and seeds are public. The calling
// test binary's TestMain must call softhsmtest.Run.
package custodytest

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
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

// TokenOptions change how MustToken sets the token up.
type TokenOptions struct {
	// PoolSize is the token's session pool size (0: hsm's default).
	PoolSize int
	// Wallets are more wallets to import besides custody: label → seed
	// (hex).
	Wallets map[string]string
}

// MustToken returns an open SoftHSM token (a fresh one, labelled
// label-N) with a master key and the custody wallet imported from
// CustodySeed. It is closed when the test ends.
func MustToken(t testing.TB, label string, opts TokenOptions) *hsm.Token {
	t.Helper()
	ctx := context.Background()
	tk := softhsmtest.MustToken(t, softhsmtest.UniqueLabel(label))
	pin, err := hsm.NewPIN([]byte(tk.PIN))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := hsm.Open(ctx, hsm.Config{Module: tk.Module, TokenLabel: tk.Label, PIN: pin, PoolSize: opts.PoolSize})
	pin.Wipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	if err := tok.CreateMasterKey(ctx, 0); err != nil {
		t.Fatal(err)
	}
	wallets := map[string]string{Wallet: CustodySeed}
	for label, seed := range opts.Wallets {
		wallets[label] = seed
	}
	for label, hex := range wallets {
		seed, err := nano.ParseSeed(hex)
		if err != nil {
			t.Fatalf("wallet %s: %v", label, err)
		}
		_, err = tok.ImportWallet(ctx, label, &seed)
		seed.Wipe()
		if err != nil {
			t.Fatal(err)
		}
	}
	return tok
}

// Parties are the keys a test holds around a custody signer, and the
// intents, approvals and funding blocks it builds with them.
type Parties struct {
	t testing.TB
	// Approvers are the approvers' keys by name.
	Approvers map[string]ed25519.PrivateKey
	// Funder sends the funds custody accounts receive.
	Funder *ExtAccount
	// Rep is the funder's representative (an allowed one in the tests'
	// policies).
	Rep nano.PublicKey
	// IDPrefix starts every request id NextID returns.
	IDPrefix string
	// Now is the clock intents expire by (an hour after Now).
	Now func() time.Time
	seq atomic.Int64
}

// NewParties returns fresh keys for the named approvers, the funder
// (external account 1) and its representative (external account 70).
// Intents expire an hour after time.Now until p.Now is set.
func NewParties(t testing.TB, approvers ...string) *Parties {
	t.Helper()
	p := &Parties{t: t, Approvers: map[string]ed25519.PrivateKey{}, Funder: NewExtAccount(1), Rep: NewExtAccount(70).Pub,
		IDPrefix: fmt.Sprintf("t-%d-", time.Now().UnixNano()%1e6), Now: time.Now}
	for _, name := range approvers {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		p.Approvers[name] = priv
	}
	return p
}

// PublicKey returns the named approver's public key.
func (p *Parties) PublicKey(name string) ed25519.PublicKey {
	return p.Approvers[name].Public().(ed25519.PublicKey)
}

// NextID returns a fresh request id.
func (p *Parties) NextID() string { return fmt.Sprintf("%s%04d", p.IDPrefix, p.seq.Add(1)) }

// Expiry returns the expiry of the intents built now: an hour after Now.
func (p *Parties) Expiry() int64 { return p.Now().Add(time.Hour).Unix() }

// SendIntent is a send of amount from account to dest.
func (p *Parties) SendIntent(account nano.PublicKey, amount nano.Amount, dest nano.PublicKey) *pb.Intent {
	return &pb.Intent{RequestId: p.NextID(), Kind: pb.IntentKind_INTENT_KIND_SEND, Account: account[:],
		AmountRaw: amount.String(), Destination: dest[:], ExpiresAtUnix: p.Expiry()}
}

// ReceiveIntent is a receive of source into account; rep opens it.
func (p *Parties) ReceiveIntent(account nano.PublicKey, amount nano.Amount, source nano.Hash, rep *nano.PublicKey) *pb.Intent {
	in := &pb.Intent{RequestId: p.NextID(), Kind: pb.IntentKind_INTENT_KIND_RECEIVE, Account: account[:],
		AmountRaw: amount.String(), SourceHash: source[:], ExpiresAtUnix: p.Expiry()}
	if rep != nil {
		in.Representative = rep[:]
	}
	return in
}

// ChangeIntent changes account's representative to rep.
func (p *Parties) ChangeIntent(account, rep nano.PublicKey) *pb.Intent {
	return &pb.Intent{RequestId: p.NextID(), Kind: pb.IntentKind_INTENT_KIND_CHANGE, Account: account[:],
		Representative: rep[:], ExpiresAtUnix: p.Expiry()}
}

// Approve returns the named approvers' approvals of in.
func (p *Parties) Approve(in *pb.Intent, names ...string) []*pb.Approval {
	p.t.Helper()
	out := make([]*pb.Approval, 0, len(names))
	for _, n := range names {
		a, err := intent.Approve(p.Approvers[n], in)
		if err != nil {
			p.t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// Fund makes the funder send amount to to and returns the send block and
// the block before it (what a receive request carries). The funder's
// first call opens it with 1,000,000 XNO.
func (p *Parties) Fund(to nano.PublicKey, amount nano.Amount) (src, prev nano.StateBlock) {
	p.t.Helper()
	if len(p.Funder.Blocks) == 0 {
		p.Funder.Add(XNO(1_000_000), nano.Hash{0xAA}, p.Rep)
	}
	prev = p.Funder.Blocks[len(p.Funder.Blocks)-1]
	bal, err := prev.Balance.Sub(amount)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.Funder.Add(bal, nano.Hash(to), p.Rep), prev
}
