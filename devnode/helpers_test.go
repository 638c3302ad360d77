package devnode

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// testKey is a test account derived from a test seed.
type testKey struct {
	sk  *nano.SigningKey
	pub nano.PublicKey
}

func newTestKey(i uint32) testKey {
	var seed nano.Seed
	for j := range seed {
		seed[j] = 0x5a
	}
	k := nano.DeriveKey(&seed, i)
	sk := nano.NewSigningKey(&k)
	return testKey{sk: sk, pub: sk.Public()}
}

func genesisTestKey(n *Node) testKey {
	k := n.GenesisKey()
	sk := nano.NewSigningKey(&k)
	return testKey{sk: sk, pub: sk.Public()}
}

// sign signs b with k.
func (k testKey) sign(b *nano.StateBlock) {
	h := b.Hash()
	b.Signature = k.sk.Sign(h[:])
}

// workAtLeast sets b's work to the first nonce from 0 meeting thr.
func workAtLeast(b *nano.StateBlock, thr uint64) {
	root := b.Root()
	for w := nano.Work(0); ; w++ {
		if nano.ValidateWork(root, w, thr) {
			b.Work = w
			return
		}
	}
}

// workBetween sets b's work to a nonce whose value is in [lo, hi).
func workBetween(b *nano.StateBlock, lo, hi uint64) {
	root := b.Root()
	for w := nano.Work(0); ; w++ {
		if v := nano.WorkValue(root, w); v >= lo && v < hi {
			b.Work = w
			return
		}
	}
}

// block builds a signed block with enough work for any subtype.
func block(k testKey, prev nano.Hash, rep nano.PublicKey, bal nano.Amount, link nano.Hash) nano.StateBlock {
	b := nano.StateBlock{Account: k.pub, Previous: prev, Representative: rep, Balance: bal, Link: link}
	k.sign(&b)
	workAtLeast(&b, DefaultWorkThreshold)
	return b
}

func raw(v uint64) nano.Amount { return nano.AmountFromUint64(v) }

func sub(t *testing.T, a, b nano.Amount) nano.Amount {
	t.Helper()
	d, err := a.Sub(b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func newTestNode(t *testing.T, opts Options) *Node {
	t.Helper()
	if opts.ConfirmDelay == 0 {
		opts.ConfirmDelay = 20 * time.Millisecond
	}
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func mustProcess(t *testing.T, n *Node, b nano.StateBlock, s nano.Subtype) nano.Hash {
	t.Helper()
	h, err := n.Process(b, s)
	if err != nil {
		t.Fatalf("process %s: %v", s, err)
	}
	return h
}

// frontier returns an account's head and balance.
func frontier(n *Node, k nano.PublicKey) (nano.Hash, nano.Amount) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := n.led.accounts[k]
	if a == nil {
		return nano.Hash{}, nano.Amount{}
	}
	return a.head, a.balance
}

// sendFrom builds a send of amount from k (at its frontier) to dest.
func sendFrom(t *testing.T, n *Node, k testKey, dest nano.PublicKey, amount nano.Amount) nano.StateBlock {
	t.Helper()
	head, bal := frontier(n, k.pub)
	return block(k, head, k.pub, sub(t, bal, amount), nano.Hash(dest))
}

// rpc calls HandleRPC with v (marshalled) and decodes the answer.
func rpc(t *testing.T, n *Node, v any) map[string]any {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	resp := n.HandleRPC(context.Background(), body)
	if err := json.Unmarshal(resp, &out); err != nil {
		t.Fatalf("response %s: %v", resp, err)
	}
	return out
}

func readFixture(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join("..", "testdata", "node", name))
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := readFixture(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixtureMap(t *testing.T, name string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(fixture(t, name), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func waitConfirmed(t *testing.T, n *Node, h nano.Hash) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a hang bound
	defer cancel()
	if err := n.WaitConfirmed(ctx, h); err != nil {
		t.Fatalf("block %s not confirmed: %v", h, err)
	}
}
