package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/devnode"
	"github.com/nanokms/nanokms/gateway"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/node"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// callbackBodyOf is the node's HTTP callback body for b, as the devnode
// posts it (and the node: testdata/node/http_callback_*.json).
func callbackBodyOf(t *testing.T, b nano.StateBlock, amount nano.Amount, send bool) []byte {
	t.Helper()
	m := map[string]string{"account": b.Account.Address(), "hash": b.Hash().String(), "block": contents(t, b), "amount": amount.String()}
	if send {
		m["is_send"], m["subtype"] = "true", "send"
	}
	return mustJSON(t, m)
}

// withField returns the callback body with field k set to v.
func withField(t *testing.T, body []byte, k, v string) []byte {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m[k] = v
	return mustJSON(t, m)
}

// postCallback posts body to url with the content type and returns the
// status.
func postCallback(t *testing.T, url, contentType string, body []byte) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// awaitCallbacks waits until the callback listener has answered n
// requests in all.
func (w *world) awaitCallbacks(n int) map[node.CallbackResult]int {
	w.t.Helper()
	var got map[node.CallbackResult]int
	w.waitUntil("callbacks answered", func() bool {
		got = w.callbackCounts()
		sum := 0
		for _, v := range got {
			sum += v
		}
		return sum >= n
	})
	return got
}

// TestCallbackOnly runs the gateway with [node.callback] and no
// WebSocket: the devnode's callback sender posts every confirmed block to
// the gateway's listener. A withdrawal is confirmed through the callback
// alone — block_info polling is an hour apart, and a block the gateway has
// just published is not polled at once (it awaits the feed) — and recorded
// once. Then forged bodies are posted to the listener: each is
// rejected (or, not ours, ignored) and counted, and nothing in the
// gateway changes.
func TestCallbackOnly(t *testing.T) {
	var l *liar // no lie: it counts the block_info answers the gateway got
	w := newWorld(t, devnode.Options{}, worldOptions{
		noWebSocket: true, callback: true, pollInterval: 1 << 62,
		rpc: func(w *world, honest http.Handler) http.Handler {
			l = &liar{w: w, honest: honest}
			return l
		},
	})
	if w.side.WS() != nil {
		t.Fatal("the gateway has a WebSocket")
	}
	acct := w.env.Account(0)
	fund := w.genesisSend(acct, custodytest.XNO(30))
	recv := w.awaitFinal(autoReceiveID(fund.Hash(), 1))
	mustStatus(t, recv, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")

	// The withdrawal is published while the node holds confirmations.
	w.dev.HoldConfirmations(true)
	dest := custodytest.NewExtAccount(41).Pub
	in := w.env.SendIntent(acct, custodytest.XNO(4), dest)
	ctx, cancel := context.WithTimeout(w.ctx, waitLimit)
	defer cancel()
	if _, err := w.custody.SubmitIntent(ctx, &pb.SubmitIntentRequest{Intent: in, Approvals: w.env.Approve(in, "service")}); err != nil {
		t.Fatal(err)
	}
	id := in.GetRequestId()
	var out *pb.Request
	w.waitUntil("the withdrawal published", func() bool {
		r, err := w.gw.Get(id)
		out = r
		return err == nil && r.GetStatus() == pb.RequestStatus_REQUEST_STATUS_PUBLISHED
	})
	sent := blockOf(t, out)
	h := sent.Hash()
	if w.dev.Confirmed(h) {
		t.Fatal("the node confirmed the withdrawal while holding confirmations")
	}
	w.dev.HoldConfirmations(false)

	out = w.awaitFinal(id)
	mustStatus(t, out, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")
	w.awaitRecordedOnce(id, pb.RequestStatus_REQUEST_STATUS_CONFIRMED)
	// Confirmed by the callback: its one check of the block with
	// block_info, and no poll.
	if got := l.count("block_info " + h.String()); got != 1 {
		t.Errorf("block_info of the withdrawal asked %d times; want the callback's check alone", got)
	}
	if c := w.chain(acct); len(c) != 2 || c[1].Hash() != h {
		t.Fatalf("custody chain %v", c)
	}

	// A send of someone else's, confirmed: the devnode posts it too.
	other := w.genesisSend(custodytest.NewExtAccount(42).Pub, custodytest.XNO(1))
	if err := w.dev.WaitConfirmed(ctx, other.Hash()); err != nil {
		t.Fatal(err)
	}
	// Four blocks confirmed, four callbacks: the funding send, the open,
	// the withdrawal (all verified) and the other send (ignored).
	before := w.awaitCallbacks(4)
	if want := map[node.CallbackResult]int{node.CallbackVerified: 3, node.CallbackIgnored: 1}; !equalCounts(before, want) {
		t.Fatalf("the devnode's callbacks: %v, want %v", before, want)
	}
	state, err := w.gw.List(nil)
	if err != nil {
		t.Fatal(err)
	}
	alerts := len(w.alertsRaised())

	genuine := callbackBodyOf(t, sent, custodytest.XNO(4), true)
	forge := func(k, v string) []byte { return withField(t, genuine, k, v) }
	richer := sent
	richer.Balance, _ = richer.Balance.Add(custodytest.XNO(3))
	forgeries := []struct {
		name, contentType string
		body              []byte
		code              int
		result            node.CallbackResult
	}{
		{"the hash of another block", "application/json", forge("hash", fund.Hash().String()), http.StatusOK, node.CallbackRejected},
		{"an altered amount", "application/json", forge("amount", custodytest.XNO(400).String()), http.StatusOK, node.CallbackRejected},
		{"an altered block", "application/json", callbackBodyOf(t, richer, custodytest.XNO(1), true), http.StatusOK, node.CallbackRejected},
		{"someone else's block claimed ours", "application/json", withField(t, callbackBodyOf(t, other, custodytest.XNO(1), true), "account", acct.Address()),
			http.StatusOK, node.CallbackRejected},
		{"not our account", "application/json", callbackBodyOf(t, other, custodytest.XNO(1), true), http.StatusOK, node.CallbackIgnored},
		{"malformed JSON", "application/json", []byte(`{"account": "` + acct.Address()), http.StatusBadRequest, node.CallbackRejected},
		{"a huge body", "application/json", []byte(`{"account": "` + strings.Repeat("1", node.MaxCallbackBody) + `"}`), http.StatusRequestEntityTooLarge, node.CallbackRejected},
		{"the wrong content type", "text/plain", genuine, http.StatusUnsupportedMediaType, node.CallbackRejected},
		{"the genuine body again", "application/json", genuine, http.StatusOK, node.CallbackDuplicate},
	}
	want := before
	for _, f := range forgeries {
		if code := postCallback(t, w.cbURL, f.contentType, f.body); code != f.code {
			t.Errorf("%s: status %d, want %d", f.name, code, f.code)
		}
		want[f.result]++
		if got := w.callbackCounts(); !equalCounts(got, want) {
			t.Errorf("%s: counted %v, want %v", f.name, got, want)
			want = got
		}
	}
	after, err := w.gw.List(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(state) {
		t.Fatalf("%d requests after the forgeries, %d before", len(after), len(state))
	}
	for i := range state {
		if !proto.Equal(state[i], after[i]) {
			t.Errorf("request %s changed:\n%v\n%v", state[i].GetRequestId(), state[i], after[i])
		}
	}
	if n := len(w.alertsRaised()); n != alerts {
		t.Errorf("%d alerts raised by forged callbacks", n-alerts)
	}
	if n := w.statusCount(id, pb.RequestStatus_REQUEST_STATUS_CONFIRMED); n != 1 {
		t.Errorf("CONFIRMED recorded %d times", n)
	}
}

// awaitRecordedOnce waits until the gateway has told its observer that
// request id entered status s, and checks that it did so once.
func (w *world) awaitRecordedOnce(id string, s pb.RequestStatus) {
	w.t.Helper()
	w.waitUntil("request "+id+" observed "+s.String(), func() bool { return w.statusCount(id, s) >= 1 })
	if n := w.statusCount(id, s); n != 1 {
		w.t.Errorf("request %s: %s recorded %d times", id, s, n)
	}
}

func equalCounts(a, b map[node.CallbackResult]int) bool {
	for _, r := range node.CallbackResults {
		if a[r] != b[r] {
			return false
		}
	}
	return true
}

// heldCallbacks is the devnode's callback receiver in front of the
// gateway's: it keeps each body, by hash, for the test to forward when it
// chooses.
type heldCallbacks struct {
	w *world

	mu     sync.Mutex
	bodies map[nano.Hash][]byte
}

func (c *heldCallbacks) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	cb, err := node.ParseCallback(body)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.bodies[cb.Hash] = body
	c.mu.Unlock()
	c.w.notify()
}

// body waits for the devnode's callback of h and returns it.
func (c *heldCallbacks) body(h nano.Hash) []byte {
	c.w.t.Helper()
	var b []byte
	c.w.waitUntil("the devnode's callback of "+h.String(), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		b = c.bodies[h]
		return b != nil
	})
	return b
}

// awaitFeed waits until the gateway's confirmation feed has h (shared by
// the WebSocket and the callback; the WebSocket's WaitConfirmed is the
// feed's).
func (w *world) awaitFeed(h nano.Hash) {
	w.t.Helper()
	ch, stop := w.side.WS().WaitConfirmed(h)
	defer stop()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		w.t.Fatalf("the confirmation of %s never reached the feed", h)
	}
}

// TestCallbackAndWebSocketRecordOnce runs the gateway with both the
// WebSocket and [node.callback]. The devnode's callbacks are held and
// forwarded to the gateway once the WebSocket has delivered the same
// blocks: each is verified against the node and found a duplicate, and
// nothing is applied twice — the withdrawal is CONFIRMED once, the
// compromise alert for a block signed outside nanokms is raised once.
func TestCallbackAndWebSocketRecordOnce(t *testing.T) {
	held := &heldCallbacks{bodies: map[nano.Hash][]byte{}}
	w := newWorld(t, devnode.Options{}, worldOptions{
		callback: true,
		callbackVia: func(string) string {
			l := listen(t)
			serveHTTP(t, l, held)
			return "http://" + l.Addr().String() + "/"
		},
	})
	held.w = w
	if w.side.WS() == nil {
		t.Fatal("the gateway has no WebSocket")
	}
	acct := w.env.Account(0)
	fund := w.genesisSend(acct, custodytest.XNO(30))
	mustStatus(t, w.awaitFinal(autoReceiveID(fund.Hash(), 1)), pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")
	out := w.withdraw(acct, custodytest.XNO(2), custodytest.NewExtAccount(43).Pub)
	mustStatus(t, out, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")
	sent := blockOf(t, out)

	// The WebSocket brought both; their callbacks now are duplicates.
	for _, h := range []nano.Hash{fund.Hash(), sent.Hash()} {
		w.awaitFeed(h)
		if code := postCallback(t, w.cbURL, "application/json", held.body(h)); code != http.StatusOK {
			t.Fatalf("callback of %s: status %d", h, code)
		}
	}
	if got, want := w.callbackCounts(), map[node.CallbackResult]int{node.CallbackDuplicate: 2}; !equalCounts(got, want) {
		t.Fatalf("callbacks %v, want %v", got, want)
	}
	w.awaitRecordedOnce(out.GetRequestId(), pb.RequestStatus_REQUEST_STATUS_CONFIRMED)

	// A thief with the custody seed signs a send; the WebSocket's
	// confirmation raises the alert.
	seed, err := nano.ParseSeed(custodytest.CustodySeed)
	if err != nil {
		t.Fatal(err)
	}
	k := nano.DeriveKey(&seed, 0)
	seed.Wipe()
	sk := nano.NewSigningKey(&k)
	k.Wipe()
	defer sk.Wipe()
	steal := func(prev nano.StateBlock, amount nano.Amount) nano.StateBlock {
		bal, _ := prev.Balance.Sub(amount)
		b := w.signWith(sk, nano.StateBlock{Account: acct, Previous: prev.Hash(), Representative: prev.Representative, Balance: bal,
			Link: nano.Hash(custodytest.NewExtAccount(66).Pub)}, nano.SubtypeSend)
		if _, err := w.dev.Process(b, nano.SubtypeSend); err != nil {
			t.Fatalf("processing a rogue block: %v", err)
		}
		return b
	}
	unknownAlerts := func() []nano.Hash {
		var hs []nano.Hash
		for _, a := range w.alertsRaised() {
			if a.GetKind() == gateway.AlertUnknownBlock {
				hs = append(hs, nano.Hash(a.GetBlockHash()))
			}
		}
		return hs
	}
	rogue := steal(sent, custodytest.XNO(5))
	w.waitUntil("the alert for the rogue block", func() bool { return len(unknownAlerts()) >= 1 })
	w.awaitFeed(rogue.Hash())
	if code := postCallback(t, w.cbURL, "application/json", held.body(rogue.Hash())); code != http.StatusOK {
		t.Fatalf("callback of the rogue block: status %d", code)
	}
	if got := w.callbackCounts()[node.CallbackDuplicate]; got != 3 {
		t.Errorf("%d duplicates, want 3", got)
	}
	// A second rogue block: its alert is the next one raised, not a
	// second one for the first.
	rogue2 := steal(rogue, custodytest.XNO(1))
	w.waitUntil("the alert for the second rogue block", func() bool { return len(unknownAlerts()) >= 2 })
	if got := unknownAlerts(); len(got) != 2 || got[0] != rogue.Hash() || got[1] != rogue2.Hash() {
		t.Errorf("UNKNOWN_BLOCK alerts for %v; want one for %s, then one for %s", got, rogue.Hash(), rogue2.Hash())
	}
}
