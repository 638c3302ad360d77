package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanokms/nanokms/devnode"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/node"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// lie rewrites one RPC answer of the devnode: it gets the action, the
// request and the honest answer, and returns the answer to send (or nil
// to send the honest one).
type lie func(action string, req map[string]any, honest map[string]any) map[string]any

// liar is a hostile node: an RPC proxy in front of the devnode that
// rewrites answers with the current lie. It counts the requests it
// answers by action.
type liar struct {
	w      *world
	honest http.Handler

	mu     sync.Mutex
	lie    lie
	counts map[string]int
}

func (l *liar) set(f lie) {
	l.mu.Lock()
	l.lie = f
	l.mu.Unlock()
}

func (l *liar) count(action string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[action]
}

func (l *liar) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	// Forward to the devnode's own RPC handler.
	rec := httptest.NewRecorder()
	l.honest.ServeHTTP(rec, httptest.NewRequestWithContext(r.Context(), http.MethodPost, "/", bytes.NewReader(body)))
	answer := rec.Body.Bytes()
	var req, honest map[string]any
	if json.Unmarshal(body, &req) == nil && json.Unmarshal(answer, &honest) == nil {
		action, _ := req["action"].(string)
		l.mu.Lock()
		f := l.lie
		l.mu.Unlock()
		if f != nil {
			if forged := f(action, req, honest); forged != nil {
				if answer, err = json.Marshal(forged); err != nil {
					panic(err)
				}
			}
		}
		l.mu.Lock()
		if l.counts == nil {
			l.counts = map[string]int{}
		}
		l.counts[action]++
		if h, ok := req["hash"].(string); ok {
			l.counts[action+" "+h]++
		}
		l.mu.Unlock()
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Write(answer)
	l.w.notify()
}

// contents returns a block as block_info's "contents" string.
func contents(t *testing.T, b nano.StateBlock) string {
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// blockInfoOf is a block_info answer for b, as the devnode would print it.
func blockInfoOf(t *testing.T, b nano.StateBlock, amount nano.Amount, subtype string) map[string]any {
	return map[string]any{
		"block_account": b.Account.Address(), "amount": amount.String(), "balance": b.Balance.String(),
		"height": "1", "local_timestamp": "0", "confirmed": "true", "contents": contents(t, b), "subtype": subtype,
	}
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestHostileNode puts a lying node in front of the gateway: it reports a
// lower balance, an altered head (with and without a hash that matches),
// a forged head signature, a head that is not the frontier, and fake
// receivables. In every case either the node client refuses the answer
// (the request fails before reaching the bridge) or the signer refuses
// (the request is refused), and the devnode never receives a block the
// signer did not sign.
func TestHostileNode(t *testing.T) {
	var l *liar
	w := newWorld(t, devnode.Options{}, worldOptions{
		scan: 50 * time.Millisecond,
		rpc: func(w *world, honest http.Handler) http.Handler {
			l = &liar{w: w, honest: honest}
			return l
		},
	})
	ctx := context.Background()
	acct := w.env.Account(0)
	addr := acct.Address()
	fund := w.genesisSend(acct, custodytest.XNO(100))
	recv := w.awaitFinal(autoReceiveID(fund.Hash(), 1))
	mustStatus(t, recv, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")
	head := blockOf(t, recv)
	headHash := head.Hash()
	dest := custodytest.NewExtAccount(40).Pub
	liarClient := node.NewClient(node.NewHTTP(w.gwRPC, node.HTTPOptions{}), node.ClientOptions{Timeout: waitLimit})
	defer liarClient.Close()

	// nothingNew checks that the custody account still ends at head and
	// that the signer signed nothing on it.
	nothingNew := func(t *testing.T) {
		t.Helper()
		if c := w.chain(acct); len(c) != 1 || c[0].Hash() != headHash {
			t.Fatalf("the custody chain moved: %d blocks", len(c))
		}
		if sb, ok, err := w.env.Store.SignedOn(acct, headHash); err != nil || ok {
			t.Fatalf("the signer signed %s on the head (%v)", sb.Hash, err)
		}
	}
	// altered is the head with a higher balance: a hash of its own, and
	// no valid signature.
	altered := head
	altered.Balance, _ = head.Balance.Add(custodytest.XNO(1000))
	alteredHash := altered.Hash()
	// claimHead makes account_info name h (with balance bal) as the
	// frontier and block_info answer b for h.
	claimHead := func(h nano.Hash, b nano.StateBlock) lie {
		return func(action string, req, honest map[string]any) map[string]any {
			switch {
			case action == "account_info" && req["account"] == addr:
				out := clone(honest)
				out["frontier"], out["representative_block"], out["balance"] = h.String(), h.String(), b.Balance.String()
				return out
			case action == "block_info" && req["hash"] == h.String():
				return blockInfoOf(t, b, custodytest.XNO(100), "receive")
			}
			return nil
		}
	}

	cases := []struct {
		name   string
		lie    lie
		status pb.RequestStatus
		reason string // refusal reason, or a fragment of the failure
	}{
		{
			name: "lower balance",
			lie: func(action string, req, honest map[string]any) map[string]any {
				if action == "account_info" && req["account"] == addr {
					out := clone(honest)
					out["balance"] = custodytest.XNO(1).String()
					return out
				}
				return nil
			},
			status: pb.RequestStatus_REQUEST_STATUS_FAILED, reason: "inconsistent",
		},
		{
			name: "altered head, hash not matching",
			lie: func(action string, req, honest map[string]any) map[string]any {
				if action == "block_info" && req["hash"] == headHash.String() {
					out := clone(honest)
					out["balance"], out["contents"] = altered.Balance.String(), contents(t, altered)
					return out
				}
				return nil
			},
			status: pb.RequestStatus_REQUEST_STATUS_FAILED, reason: "does not hash",
		},
		{
			name:   "altered head with its own hash",
			lie:    claimHead(alteredHash, altered),
			status: pb.RequestStatus_REQUEST_STATUS_REFUSED, reason: "HEAD_HASH_MISMATCH",
		},
		{
			name: "head signature forged",
			lie: func() lie {
				forged := head
				forged.Signature[0] ^= 0x55
				return claimHead(headHash, forged)
			}(),
			status: pb.RequestStatus_REQUEST_STATUS_REFUSED, reason: "HEAD_SIGNATURE_INVALID",
		},
		{
			name: "head that is not the frontier",
			lie: func() lie {
				other := head
				other.Previous = nano.Hash{0x42}
				return claimHead(other.Hash(), other)
			}(),
			status: pb.RequestStatus_REQUEST_STATUS_REFUSED, reason: "HEAD_NOT_FRONTIER",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l.set(c.lie)
			defer l.set(nil)
			r := w.withdraw(acct, custodytest.XNO(5), dest)
			if c.status == pb.RequestStatus_REQUEST_STATUS_REFUSED {
				mustStatus(t, r, c.status, c.reason)
			} else {
				mustStatus(t, r, c.status, "")
				if !strings.Contains(r.GetError(), c.reason) || r.GetAttempts() != 0 {
					t.Fatalf("failed with %q after %d bridge attempts; want %q before the bridge", r.GetError(), r.GetAttempts(), c.reason)
				}
			}
			t.Logf("%s: %s %s", r.GetStatus(), r.GetRefusalReason(), r.GetError())
			nothingNew(t)
		})
	}

	t.Run("node client refuses a block that does not hash to its hash", func(t *testing.T) {
		l.set(cases[1].lie)
		defer l.set(nil)
		if _, err := liarClient.BlockInfo(ctx, headHash); !errors.Is(err, node.ErrHashMismatch) {
			t.Fatalf("BlockInfo of an altered block: %v", err)
		}
	})

	t.Run("fake receivables", func(t *testing.T) {
		// A send to another account, a block that is not a send, and a
		// hash the node does not have: the gateway does not act on any.
		other := custodytest.NewExtAccount(50).Pub
		elsewhere, err := w.dev.Fund(ctx, other, custodytest.XNO(3))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.dev.WaitConfirmed(ctx, elsewhere); err != nil {
			t.Fatal(err)
		}
		missing := nano.Hash{0xDE, 0xAD}
		fakes := []nano.Hash{elsewhere, headHash, missing}
		looked := map[nano.Hash]int{}
		for _, h := range fakes {
			looked[h] = l.count("block_info " + h.String())
		}
		l.set(func(action string, req, honest map[string]any) map[string]any {
			if action == "receivable" && req["account"] == addr {
				blocks := map[string]any{}
				for _, h := range fakes {
					blocks[h.String()] = map[string]any{"amount": custodytest.XNO(3).String(), "source": w.dev.Genesis().Address()}
				}
				return map[string]any{"blocks": blocks}
			}
			return nil
		})
		listed, err := liarClient.Receivable(ctx, acct, 64, nano.Amount{})
		if err != nil || len(listed) != len(fakes) {
			t.Fatalf("the node client does not take the lie: %+v %v", listed, err)
		}
		// Two full scans after the lie: the scan of one account finishes
		// (with its auto-receives) before the next one asks again.
		from := l.count("receivable")
		w.waitUntil("two scans with the fake receivables", func() bool { return l.count("receivable") >= from+3 })
		l.set(nil)
		for _, h := range fakes {
			if l.count("block_info "+h.String()) == looked[h] {
				t.Errorf("the gateway never looked at the fake receivable %s", h)
			}
		}
		for _, h := range fakes {
			if r, err := w.gw.Get(autoReceiveID(h, 1)); err == nil {
				t.Errorf("a receive of %s was queued: %s", h, r.GetStatus())
			}
		}
		nothingNew(t)

		// Asked explicitly, the cold side refuses a source that is not a
		// send to the account.
		in := w.env.ReceiveIntent(acct, custodytest.XNO(3), elsewhere, nil)
		mustStatus(t, w.submit(in), pb.RequestStatus_REQUEST_STATUS_REFUSED, "SOURCE_INVALID")
		nothingNew(t)
	})

	t.Run("forged send to the custody account", func(t *testing.T) {
		// The node lists, and serves with a matching hash, a send from
		// genesis to the custody account that genesis never signed.
		ai, err := w.direct.AccountInfo(ctx, w.dev.Genesis())
		if err != nil {
			t.Fatal(err)
		}
		bal, _ := ai.Balance.Sub(custodytest.XNO(500))
		forged := nano.StateBlock{Account: w.dev.Genesis(), Previous: ai.Frontier, Representative: w.dev.Genesis(), Balance: bal, Link: nano.Hash(acct)}
		forged.Signature[7] = 1
		fh := forged.Hash()
		l.set(func(action string, req, honest map[string]any) map[string]any {
			switch {
			case action == "receivable" && req["account"] == addr:
				return map[string]any{"blocks": map[string]any{fh.String(): map[string]any{"amount": custodytest.XNO(500).String(), "source": w.dev.Genesis().Address()}}}
			case action == "block_info" && req["hash"] == fh.String():
				out := blockInfoOf(t, forged, custodytest.XNO(500), "send")
				out["height"] = "99"
				return out
			}
			return nil
		})
		r := w.awaitFinal(autoReceiveID(fh, 1))
		l.set(nil)
		mustStatus(t, r, pb.RequestStatus_REQUEST_STATUS_REFUSED, "SOURCE_INVALID")
		t.Logf("%s: %s", r.GetRefusalReason(), r.GetError())
		w.awaitAllFinal()
		nothingNew(t)
	})

	// Honest again, the gateway works, and everything on the devnode for
	// the custody account was signed by the signer.
	l.set(nil)
	mustStatus(t, w.withdraw(acct, custodytest.XNO(5), dest), pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")
	chains := w.assertOnlySignerBlocks(acct)
	if len(chains[acct]) != 2 {
		t.Fatalf("custody chain: %d blocks", len(chains[acct]))
	}
	for _, r := range w.awaitAllFinal() {
		if r.GetStatus() == pb.RequestStatus_REQUEST_STATUS_CONFIRMED {
			b := blockOf(t, r)
			if !containsBlock(chains[acct], b.Hash()) {
				t.Errorf("confirmed request %s has block %s, not on the devnode", r.GetRequestId(), b.Hash())
			}
		}
	}
}

func containsBlock(chain []nano.StateBlock, h nano.Hash) bool {
	for _, b := range chain {
		if b.Hash() == h {
			return true
		}
	}
	return false
}

// TestForgedCallback posts forged HTTP callbacks to a node.CallbackHandler
// that checks them against the devnode: none reaches its feed, each is
// counted rejected, while the devnode's own callback is verified.
func TestForgedCallback(t *testing.T) {
	var handler atomic.Pointer[node.CallbackHandler]
	real := make(chan []byte, 16)
	cbL := listen(t)
	serveHTTP(t, cbL, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		handler.Load().ServeHTTP(rw, r)
		if r.Header.Get("X-Forged") == "" {
			// Handed over once the handler has counted it: the stats
			// read below then hold the real callback's verdict.
			real <- body
		}
	}))
	cbURL := "http://" + cbL.Addr().String() + "/callback"
	dev, rpcURL, _, _ := newDevnode(t, devnode.Options{CallbackURL: cbURL})
	client := node.NewClient(node.NewHTTP(rpcURL, node.HTTPOptions{}), node.ClientOptions{Timeout: waitLimit})
	defer client.Close()
	feed := node.NewConfirmationFeed(node.FeedOptions{})
	h := node.NewCallbackHandler(client, feed, node.CallbackOptions{})
	handler.Store(h)

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	dest := custodytest.NewExtAccount(50).Pub
	sent, err := dev.Fund(ctx, dest, custodytest.XNO(5))
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	select {
	case ev := <-feed.Confirmations():
		if ev.Hash != sent || ev.Subtype != nano.SubtypeSend || ev.Amount != custodytest.XNO(5) || ev.Account != dev.Genesis() {
			t.Fatalf("event %+v", ev)
		}
		body = <-real
	case <-ctx.Done():
		t.Fatalf("the devnode's callback gave no event: %+v", h.Stats())
	}
	// The devnode's callback has the shape of the node's.
	sameShape(t, "callback", body, fixture(t, "http_callback_send.json"), nil)

	var orig map[string]any
	if err := json.Unmarshal(body, &orig); err != nil {
		t.Fatal(err)
	}
	pb, err := nano.ParseBlockJSON(body)
	if err != nil {
		t.Fatal(err)
	}
	richer := pb.Block
	richer.Balance, _ = richer.Balance.Add(custodytest.XNO(1))
	forgeries := map[string]func(m map[string]any){
		"amount":                    func(m map[string]any) { m["amount"] = custodytest.XNO(500).String() },
		"block not hashing to hash": func(m map[string]any) { m["block"] = contents(t, richer) },
		"block the node lacks": func(m map[string]any) {
			m["block"], m["hash"] = contents(t, richer), richer.Hash().String()
		},
		"account": func(m map[string]any) { m["account"] = dest.Address() },
	}
	for name, forge := range forgeries {
		m := clone(orig)
		forge(m)
		data, _ := json.Marshal(m)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, cbURL, bytes.NewReader(data))
		req.Header.Set("X-Forged", name)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", name, resp.StatusCode)
		}
	}
	st := h.Stats()
	if st.Rejected != uint64(len(forgeries)) || st.Verified != 1 || st.Received != uint64(len(forgeries))+1 {
		t.Fatalf("stats %+v: want %d rejected and the one real callback verified", st, len(forgeries))
	}
	if fs := feed.Stats(); fs.Delivered != 1 || fs.Duplicates != 0 {
		t.Fatalf("a forged callback reached the feed: %+v", fs)
	}
}
