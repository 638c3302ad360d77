package devnode

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/nanokms/nanokms/nano"
)

// scenario: genesis has sent amount to A (S1, receivable), and A is not
// yet open.
type scenario struct {
	n      *Node
	gen, a testKey
	b      testKey
	s1     nano.StateBlock
	s1Hash nano.Hash
	amount nano.Amount
}

func newScenario(t *testing.T) *scenario {
	n := newTestNode(t, Options{})
	sc := &scenario{n: n, gen: genesisTestKey(n), a: newTestKey(1), b: newTestKey(2), amount: raw(1_000_000)}
	sc.s1 = sendFrom(t, n, sc.gen, sc.a.pub, sc.amount)
	sc.s1Hash = mustProcess(t, n, sc.s1, nano.SubtypeSend)
	return sc
}

// open builds A's open block receiving S1 with balance bal.
func (sc *scenario) open(bal nano.Amount) nano.StateBlock {
	return block(sc.a, nano.Hash{}, sc.a.pub, bal, sc.s1Hash)
}

func TestProcessRules(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T, sc *scenario) // extra valid steps first
		build   func(t *testing.T, sc *scenario) nano.StateBlock
		subtype string
		want    error
	}{
		{
			name: "bad signature",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				b := sendFrom(t, sc.n, sc.gen, sc.b.pub, raw(5))
				b.Signature[0] ^= 1
				return b
			},
			want: ErrBadSignature,
		},
		{
			name: "signed by another key",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				b := sendFrom(t, sc.n, sc.gen, sc.b.pub, raw(5))
				sc.a.sign(&b)
				return b
			},
			want: ErrBadSignature,
		},
		{
			name: "work below every threshold",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				b := sendFrom(t, sc.n, sc.gen, sc.b.pub, raw(5))
				workBetween(&b, 0, DefaultReceiveWorkThreshold)
				return b
			},
			want: ErrWorkLow,
		},
		{
			name: "send work below the send threshold",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				b := sendFrom(t, sc.n, sc.gen, sc.b.pub, raw(5))
				workBetween(&b, DefaultReceiveWorkThreshold, DefaultWorkThreshold)
				return b
			},
			want: ErrInsufficientWork,
		},
		{
			name: "fork: second block on the same previous",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				_, bal := frontier(sc.n, sc.gen.pub)
				return block(sc.gen, sc.s1.Previous, sc.gen.pub, sub(t, bal, raw(7)), nano.Hash(sc.b.pub))
			},
			want: ErrFork,
		},
		{
			name:  "old block",
			build: func(t *testing.T, sc *scenario) nano.StateBlock { return sc.s1 },
			want:  ErrOld,
		},
		{
			name: "gap previous",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				_, bal := frontier(sc.n, sc.gen.pub)
				return block(sc.gen, nano.Hash{1, 2, 3}, sc.gen.pub, sub(t, bal, raw(7)), nano.Hash(sc.b.pub))
			},
			want: ErrGapPrevious,
		},
		{
			name: "gap previous on an unopened account",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				return block(sc.b, nano.Hash{9}, sc.b.pub, raw(1), sc.s1Hash)
			},
			want: ErrGapPrevious,
		},
		{
			name: "gap previous with a subtype",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				return block(sc.gen, nano.Hash{1, 2, 3}, sc.gen.pub, raw(1), nano.Hash(sc.b.pub))
			},
			subtype: "send",
			want:    ErrGapPrevious,
		},
		{
			name: "gap source",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				return block(sc.a, nano.Hash{}, sc.a.pub, sc.amount, nano.Hash{4, 5, 6})
			},
			want: ErrGapSource,
		},
		{
			name: "open with a zero link",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				return block(sc.a, nano.Hash{}, sc.a.pub, sc.amount, nano.Hash{})
			},
			want: ErrGapSource,
		},
		{
			name: "receiving a send to another account",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				return block(sc.b, nano.Hash{}, sc.b.pub, sc.amount, sc.s1Hash)
			},
			want: ErrUnreceivable,
		},
		{
			name: "receiving a block that is not a send",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				return block(sc.a, nano.Hash{}, sc.a.pub, sc.amount, sc.n.GenesisHash())
			},
			want: ErrUnreceivable,
		},
		{
			name: "wrong receive amount (less)",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				return sc.open(sub(t, sc.amount, raw(1)))
			},
			want: ErrBalanceMismatch,
		},
		{
			name: "wrong receive amount (more)",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				more, _ := sc.amount.Add(raw(1))
				return sc.open(more)
			},
			want: ErrBalanceMismatch,
		},
		{
			name:  "double receive",
			setup: func(t *testing.T, sc *scenario) { mustProcess(t, sc.n, sc.open(sc.amount), nano.SubtypeOpen) },
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				head, bal := frontier(sc.n, sc.a.pub)
				more, _ := bal.Add(sc.amount)
				return block(sc.a, head, sc.a.pub, more, sc.s1Hash)
			},
			want: ErrUnreceivable,
		},
		{
			name:  "open twice",
			setup: func(t *testing.T, sc *scenario) { mustProcess(t, sc.n, sc.open(sc.amount), nano.SubtypeOpen) },
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				return block(sc.a, nano.Hash{}, sc.b.pub, sc.amount, sc.s1Hash)
			},
			want: ErrFork,
		},
		{
			name:  "balance rises with a zero link",
			setup: func(t *testing.T, sc *scenario) { mustProcess(t, sc.n, sc.open(sc.amount), nano.SubtypeOpen) },
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				head, bal := frontier(sc.n, sc.a.pub)
				more, _ := bal.Add(raw(10))
				return block(sc.a, head, sc.a.pub, more, nano.Hash{})
			},
			want: ErrBalanceMismatch,
		},
		{
			name: "subtype send for a block that does not send",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				return sc.open(sc.amount)
			},
			subtype: "send",
			want:    ErrSubtypeBalance,
		},
		{
			name: "subtype receive for a send",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				return sendFrom(t, sc.n, sc.gen, sc.b.pub, raw(5))
			},
			subtype: "receive",
			want:    ErrSubtypeBalance,
		},
		{
			name: "subtype open for a block with a previous",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				return sendFrom(t, sc.n, sc.gen, sc.b.pub, raw(5))
			},
			subtype: "open",
			want:    ErrSubtypePrevious,
		},
		{
			name: "subtype change for a send",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				return sendFrom(t, sc.n, sc.gen, sc.b.pub, raw(5))
			},
			subtype: "change",
			want:    ErrSubtypeBalance,
		},
		{
			name: "subtype change for an open block",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				return block(sc.a, nano.Hash{}, sc.a.pub, nano.Amount{}, nano.Hash{})
			},
			subtype: "change",
			want:    ErrSubtypePrevious,
		},
		{
			name: "subtype epoch without an epoch link",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				head, bal := frontier(sc.n, sc.gen.pub)
				return block(sc.gen, head, sc.b.pub, bal, nano.Hash{})
			},
			subtype: "epoch",
			want:    ErrSubtypeEpochLink,
		},
		{
			name: "unknown subtype",
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				return sendFrom(t, sc.n, sc.gen, sc.b.pub, raw(5))
			},
			subtype: "withdraw",
			want:    ErrInvalidSubtype,
		},
		{
			name: "epoch block signed by the account, not the epoch signer",
			setup: func(t *testing.T, sc *scenario) {
				mustProcess(t, sc.n, sc.open(sc.amount), nano.SubtypeOpen)
			},
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				head, bal := frontier(sc.n, sc.a.pub)
				return block(sc.a, head, sc.a.pub, bal, nano.EpochV1Link)
			},
			want: ErrBadSignature,
		},
		{
			name: "epoch v2 before v1",
			setup: func(t *testing.T, sc *scenario) {
				mustProcess(t, sc.n, sc.open(sc.amount), nano.SubtypeOpen)
			},
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				head, bal := frontier(sc.n, sc.a.pub)
				b := nano.StateBlock{Account: sc.a.pub, Previous: head, Representative: sc.a.pub, Balance: bal, Link: nano.EpochV2Link}
				sc.gen.sign(&b)
				workAtLeast(&b, DefaultWorkThreshold)
				return b
			},
			want: ErrBlockPosition,
		},
		{
			name: "epoch block changing the representative",
			setup: func(t *testing.T, sc *scenario) {
				mustProcess(t, sc.n, sc.open(sc.amount), nano.SubtypeOpen)
			},
			build: func(t *testing.T, sc *scenario) nano.StateBlock {
				head, bal := frontier(sc.n, sc.a.pub)
				b := nano.StateBlock{Account: sc.a.pub, Previous: head, Representative: sc.b.pub, Balance: bal, Link: nano.EpochV1Link}
				sc.gen.sign(&b)
				workAtLeast(&b, DefaultWorkThreshold)
				return b
			},
			want: ErrOther,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := newScenario(t)
			if tc.setup != nil {
				tc.setup(t, sc)
			}
			b := tc.build(t, sc)
			before := len(sc.n.led.blocks)
			_, err := sc.n.process(&b, tc.subtype)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if err.Error() != tc.want.Error() {
				t.Fatalf("message %q, want %q", err.Error(), tc.want.Error())
			}
			if len(sc.n.led.blocks) != before {
				t.Fatal("a rejected block changed the ledger")
			}
			// The same rejection comes back from the process RPC.
			resp := rpc(t, sc.n, map[string]any{"action": "process", "json_block": "true", "subtype": tc.subtype, "block": blockObject(&b)})
			if resp["error"] != tc.want.Error() {
				t.Fatalf("RPC answered %v, want error %q", resp, tc.want.Error())
			}
		})
	}
}

func TestEpochBlocks(t *testing.T) {
	sc := newScenario(t)
	n := sc.n
	mustProcess(t, n, sc.open(sc.amount), nano.SubtypeOpen)
	for _, link := range []nano.Hash{nano.EpochV1Link, nano.EpochV2Link} {
		head, bal := frontier(n, sc.a.pub)
		b := nano.StateBlock{Account: sc.a.pub, Previous: head, Representative: sc.a.pub, Balance: bal, Link: link}
		sc.gen.sign(&b) // the default epoch signer is the genesis key
		workAtLeast(&b, DefaultWorkThreshold)
		h := mustProcess(t, n, b, nano.SubtypeEpoch)
		info := rpc(t, n, map[string]any{"action": "block_info", "hash": h.String()})
		if info["subtype"] != "epoch" || info["amount"] != "0" {
			t.Fatalf("epoch block_info %v", info)
		}
	}
	// An epoch v1 after v2 cannot follow.
	head, bal := frontier(n, sc.a.pub)
	b := nano.StateBlock{Account: sc.a.pub, Previous: head, Representative: sc.a.pub, Balance: bal, Link: nano.EpochV1Link}
	sc.gen.sign(&b)
	workAtLeast(&b, DefaultWorkThreshold)
	if _, err := n.Process(b, nano.SubtypeUnknown); !errors.Is(err, ErrBlockPosition) {
		t.Fatalf("got %v", err)
	}
}

func TestChain(t *testing.T) {
	n := newTestNode(t, Options{})
	gen, a := genesisTestKey(n), newTestKey(1)
	amount := raw(250_000)
	back := raw(100_000)

	send := sendFrom(t, n, gen, a.pub, amount)
	sendHash := mustProcess(t, n, send, nano.SubtypeSend)
	waitConfirmed(t, n, sendHash)

	recv := rpc(t, n, map[string]any{"action": "receivable", "account": a.pub.Address(), "source": "true"})
	entry, ok := recv["blocks"].(map[string]any)[sendHash.String()].(map[string]any)
	if !ok || entry["amount"] != amount.String() || entry["source"] != GenesisAddress {
		t.Fatalf("receivable %v", recv)
	}

	openHash := mustProcess(t, n, block(a, nano.Hash{}, a.pub, amount, sendHash), nano.SubtypeOpen)
	if r := rpc(t, n, map[string]any{"action": "receivable", "account": a.pub.Address()}); r["blocks"] != "" {
		t.Fatalf("receivable after open: %v", r)
	}
	backHash := mustProcess(t, n, block(a, openHash, a.pub, sub(t, amount, back), nano.Hash(gen.pub)), nano.SubtypeSend)
	head, bal := frontier(n, gen.pub)
	more, _ := bal.Add(back)
	recvHash := mustProcess(t, n, block(gen, head, gen.pub, more, backHash), nano.SubtypeReceive)
	waitConfirmed(t, n, recvHash)

	info := rpc(t, n, map[string]any{"action": "account_info", "account": a.pub.Address(), "representative": "true", "receivable": "true"})
	want := map[string]any{
		"frontier": backHash.String(), "open_block": openHash.String(), "representative_block": backHash.String(),
		"balance": sub(t, amount, back).String(), "block_count": "2", "representative": a.pub.Address(),
		"pending": "0", "receivable": "0",
	}
	for k, v := range want {
		if info[k] != v {
			t.Errorf("account_info %s = %v, want %v", k, info[k], v)
		}
	}
	for h, w := range map[nano.Hash][3]string{
		sendHash: {"send", amount.String(), "2"},
		openHash: {"receive", amount.String(), "1"}, // the node prints an open block as "receive"
		backHash: {"send", back.String(), "2"},
		recvHash: {"receive", back.String(), "3"},
	} {
		bi := rpc(t, n, map[string]any{"action": "block_info", "hash": h.String()})
		if bi["subtype"] != w[0] || bi["amount"] != w[1] || bi["height"] != w[2] || bi["confirmed"] != "true" {
			t.Errorf("block_info %s: %v, want %v", h, bi, w)
		}
	}
	g := rpc(t, n, map[string]any{"action": "account_balance", "account": GenesisAddress})
	want2 := sub(t, nano.MaxAmount, sub(t, amount, back)).String()
	if g["balance"] != want2 || g["receivable"] != "0" {
		t.Fatalf("genesis balance %v, want %s", g, want2)
	}
	if c := rpc(t, n, map[string]any{"action": "block_count"}); c["count"] != "5" || c["cemented"] != "5" || c["unchecked"] != "0" {
		t.Fatalf("block_count %v", c)
	}
}

func TestChangeBlock(t *testing.T) {
	n := newTestNode(t, Options{})
	gen, a := genesisTestKey(n), newTestKey(1)
	head, bal := frontier(n, gen.pub)
	h := mustProcess(t, n, block(gen, head, a.pub, bal, nano.Hash{}), nano.SubtypeChange)
	bi := rpc(t, n, map[string]any{"action": "block_info", "hash": h.String()})
	if bi["subtype"] != "change" || bi["amount"] != "0" {
		t.Fatalf("%v", bi)
	}
	ai := rpc(t, n, map[string]any{"action": "account_info", "account": GenesisAddress, "representative": "true", "weight": "true"})
	if ai["representative"] != a.pub.Address() || ai["weight"] != "0" {
		t.Fatalf("%v", ai)
	}
}

func TestWorkDisabled(t *testing.T) {
	n := newTestNode(t, Options{DisableWork: true})
	gen := genesisTestKey(n)
	b := sendFrom(t, n, gen, newTestKey(1).pub, raw(1))
	workBetween(&b, 0, 0x1000000000000000)
	mustProcess(t, n, b, nano.SubtypeSend)
}

func TestFund(t *testing.T) {
	n := newTestNode(t, Options{})
	a := newTestKey(3)
	h, err := n.Fund(t.Context(), a.pub, raw(42))
	if err != nil {
		t.Fatal(err)
	}
	waitConfirmed(t, n, h)
	r := rpc(t, n, map[string]any{"action": "receivable", "account": a.pub.Address(), "threshold": "1"})
	if r["blocks"].(map[string]any)[h.String()] != "42" {
		t.Fatalf("%v", r)
	}
}

func TestGenesis(t *testing.T) {
	n := newTestNode(t, Options{})
	if n.Genesis().Address() != GenesisAddress {
		t.Fatalf("genesis %s, documented %s", n.Genesis().Address(), GenesisAddress)
	}
	seed, err := nano.ParseSeed(DevSeedHex)
	if err != nil {
		t.Fatal(err)
	}
	k := nano.DeriveKey(&seed, 0)
	gk := n.GenesisKey()
	if !k.Equal(&gk) {
		t.Fatal("GenesisKey is not DeriveKey(DevSeedHex, 0)")
	}
	wantPriv, _ := nano.ParsePrivateKey("9F0E444C69F77A49BD0BE89DB92C38FE713E0963165CCA12FAF5712D7657120F")
	if !wantPriv.Equal(&gk) {
		t.Fatal("documented genesis private key differs")
	}
	info := rpc(t, n, map[string]any{"action": "block_info", "hash": n.GenesisHash().String(), "json_block": "true"})
	if info["confirmed"] != "true" || info["balance"] != nano.MaxAmount.String() || info["height"] != "1" {
		t.Fatalf("%v", info)
	}
	var b nano.StateBlock
	c, _ := json.Marshal(info["contents"])
	if err := b.UnmarshalJSON(c); err != nil {
		t.Fatal(err)
	}
	if !b.VerifySignature() || b.Link != nano.Hash(n.Genesis()) || !b.IsOpen() {
		t.Fatalf("genesis block %+v", b)
	}
}
