package devnode

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nanokms/nanokms/nano"
)

// wsClient reads messages into a channel so tests wait with deadlines.
type wsClient struct {
	t    *testing.T
	c    *websocket.Conn
	msgs chan map[string]any
}

func dialWS(t *testing.T, url string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &wsClient{t: t, c: c, msgs: make(chan map[string]any, 64)}
	// The reader ends before the test does (the cleanup closes the
	// connection and waits for it), and reports a bad message as one on
	// msgs rather than touching t.
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer close(w.msgs)
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				return
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				m = map[string]any{"unparsable message": string(data), "error": err.Error()}
			}
			select {
			case w.msgs <- m:
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		c.Close(websocket.StatusNormalClosure, "")
		<-done
	})
	return w
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	data, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, data); err != nil {
		w.t.Fatal(err)
	}
}

// next waits (with a deadline) for the next message.
func (w *wsClient) next() map[string]any {
	w.t.Helper()
	select {
	case m, ok := <-w.msgs:
		if !ok {
			w.t.Fatal("connection closed")
		}
		return m
	case <-time.After(10 * time.Second):
		w.t.Fatal("no message within 10s")
	}
	return nil
}

func confHash(m map[string]any) string {
	msg, _ := m["message"].(map[string]any)
	h, _ := msg["hash"].(string)
	return h
}

// subscribe subscribes with an ack and waits for it.
func (w *wsClient) subscribe(options any) {
	w.t.Helper()
	req := map[string]any{"action": "subscribe", "topic": "confirmation", "ack": true, "id": "s"}
	if options != nil {
		req["options"] = options
	}
	w.send(req)
	if ack := w.next(); ack["ack"] != "subscribe" || ack["id"] != "s" {
		w.t.Fatalf("ack %v", ack)
	}
}

func TestWebSocketAckAndPing(t *testing.T) {
	n := newTestNode(t, Options{})
	w := dialWS(t, serve(t, n).wsURL)

	var req map[string]any
	json.Unmarshal(fixture(t, "ws_subscribe_confirmation_accounts.json"), &req)
	w.send(req)
	ack := w.next()
	sameShape(t, "ack", ack, fixtureMap(t, "ws_ack.json"))
	allStrings(t, "ack", ack)
	if ack["ack"] != "subscribe" || ack["id"] != "sub-1" {
		t.Fatalf("%v", ack)
	}
	if ms, _ := ack["time"].(string); len(ms) < 13 {
		t.Fatalf("time %q is not milliseconds since the epoch", ms)
	}

	w.send(map[string]any{"action": "ping"})
	if pong := w.next(); pong["ack"] != "pong" || pong["id"] != nil || len(pong) != 2 {
		t.Fatalf("pong %v", pong)
	}
	w.send(map[string]any{"action": "ping", "id": 7})
	if pong := w.next(); pong["ack"] != "pong" || pong["id"] != "7" {
		t.Fatalf("pong %v", pong)
	}
	// No ack unless asked; an update of an unknown topic fails silently.
	w.send(map[string]any{"action": "unsubscribe", "topic": "confirmation"})
	w.send(map[string]any{"action": "update", "topic": "vote", "ack": true, "options": map[string]any{}})
	w.send(map[string]any{"action": "subscribe", "topic": "bogus", "ack": true})
	w.send(map[string]any{"action": "subscribe", "topic": "vote", "ack": "true"})
	if m := w.next(); m["ack"] != "subscribe" {
		t.Fatalf("expected only the vote subscription's ack, got %v", m)
	}
}

func TestWebSocketConfirmation(t *testing.T) {
	const delay = 150 * time.Millisecond
	n := newTestNode(t, Options{ConfirmDelay: delay})
	w := dialWS(t, serve(t, n).wsURL)
	gen, a, b := genesisTestKey(n), newTestKey(1), newTestKey(2)
	w.subscribe(map[string]any{"accounts": []string{a.pub.Address()}})

	// A send to b does not match the filter; the send to a does (by its
	// link). Confirmations come in processing order, so the first message
	// proves the first was filtered out.
	toB := mustProcess(t, n, sendFrom(t, n, gen, b.pub, raw(3)), nano.SubtypeSend)
	start := time.Now()
	toA := mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(5)), nano.SubtypeSend)
	// Unconfirmed until the delay has passed. The answer proves it only
	// if it came back within the delay (on a slow host it may not, and
	// then it proves nothing: the elapsed-time check below still holds).
	bi := rpc(t, n, map[string]any{"action": "block_info", "hash": toA.String()})
	if early := time.Since(start) < delay; early && bi["confirmed"] != "false" {
		t.Fatalf("confirmed before the delay: %v", bi)
	} else if !early {
		t.Logf("block_info answered after the delay (a slow host): its confirmed flag proves nothing")
	}
	m := w.next()
	if elapsed := time.Since(start); elapsed < delay {
		t.Fatalf("confirmation after %v, before the %v delay", elapsed, delay)
	}
	if confHash(m) != toA.String() {
		t.Fatalf("got %v, want the confirmation of %s", m, toA)
	}
	if !n.Confirmed(toB) {
		t.Fatal("the filtered block is not confirmed")
	}
	sameShape(t, "confirmation", m, fixtureMap(t, "ws_confirmation.json"))
	allStrings(t, "confirmation", m)
	msg := m["message"].(map[string]any)
	blk := msg["block"].(map[string]any)
	if m["topic"] != "confirmation" || msg["confirmation_type"] != "active_quorum" || msg["amount"] != "5" ||
		msg["account"] != GenesisAddress || blk["subtype"] != "send" || blk["link_as_account"] != a.pub.Address() {
		t.Fatalf("%v", m)
	}
	if bi := rpc(t, n, map[string]any{"action": "block_info", "hash": toA.String()}); bi["confirmed"] != "true" {
		t.Fatalf("block_info after the notification: %v", bi)
	}

	// a's own open block matches by account; the block round-trips.
	open := block(a, nano.Hash{}, a.pub, raw(5), toA)
	openHash := mustProcess(t, n, open, nano.SubtypeOpen)
	m = w.next()
	if confHash(m) != openHash.String() {
		t.Fatalf("%v", m)
	}
	var back nano.StateBlock
	pb, err := nano.ParseBlockJSON(mustMarshal(m))
	if err != nil || pb.Form != nano.FormWebSocket {
		t.Fatalf("ParseBlockJSON: %v", err)
	}
	back = pb.Block
	if back != open || pb.ClaimedHash != openHash {
		t.Fatal("the WebSocket block differs from the processed one")
	}

	// update: drop a, add b.
	w.send(map[string]any{"action": "update", "topic": "confirmation", "ack": true, "id": "u",
		"options": map[string]any{"accounts_del": []string{a.pub.Address()}, "accounts_add": []string{"xrb_" + b.pub.Address()[5:]}}})
	if ack := w.next(); ack["ack"] != "update" || ack["id"] != "u" {
		t.Fatalf("%v", ack)
	}
	mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(1)), nano.SubtypeSend)
	toB2 := mustProcess(t, n, sendFrom(t, n, gen, b.pub, raw(1)), nano.SubtypeSend)
	if m := w.next(); confHash(m) != toB2.String() {
		t.Fatalf("after update: %v", m)
	}
}

func TestWebSocketOptions(t *testing.T) {
	n := newTestNode(t, Options{})
	url := serve(t, n).wsURL
	gen := genesisTestKey(n)
	all := dialWS(t, url)
	all.subscribe(nil)
	bare := dialWS(t, url)
	bare.subscribe(map[string]any{"include_block": "false", "include_election_info": "false"})
	none := dialWS(t, url)
	none.subscribe(map[string]any{"accounts": []string{}})
	inactive := dialWS(t, url)
	inactive.subscribe(map[string]any{"confirmation_type": "inactive"})

	// Two sends in a row: the first has a successor by the time it is
	// confirmed, so it is confirmed implicitly ("inactive"). Confirmations
	// are held until both are processed, however slow the host.
	n.HoldConfirmations(true)
	s1 := mustProcess(t, n, sendFrom(t, n, gen, newTestKey(1).pub, raw(1)), nano.SubtypeSend)
	s2 := mustProcess(t, n, sendFrom(t, n, gen, newTestKey(1).pub, raw(1)), nano.SubtypeSend)
	n.HoldConfirmations(false)

	m1, m2 := all.next(), all.next()
	t1 := m1["message"].(map[string]any)["confirmation_type"]
	t2 := m2["message"].(map[string]any)["confirmation_type"]
	if confHash(m1) != s1.String() || confHash(m2) != s2.String() || t1 != "inactive" || t2 != "active_quorum" {
		t.Fatalf("%v / %v", m1, m2)
	}
	sameShape(t, "inactive confirmation", m1, fixtureMap(t, "ws_confirmation.json"))
	b1 := bare.next()
	if msg := b1["message"].(map[string]any); msg["block"] != nil || msg["election_info"] != nil || len(msg) != 4 {
		t.Fatalf("bare %v", b1)
	}
	bare.next()
	if m := inactive.next(); confHash(m) != s1.String() {
		t.Fatalf("inactive %v", m)
	}
	// The inactive-only subscription skipped s2: a ping is its next message.
	inactive.send(map[string]any{"action": "ping"})
	if m := inactive.next(); m["ack"] != "pong" {
		t.Fatalf("inactive filter let through %v", m)
	}
	// The empty account filter passes nothing.
	none.send(map[string]any{"action": "ping"})
	if m := none.next(); m["ack"] != "pong" {
		t.Fatalf("empty filter let through %v", m)
	}
}

func TestDropAndDuplicate(t *testing.T) {
	n := newTestNode(t, Options{})
	w := dialWS(t, serve(t, n).wsURL)
	w.subscribe(nil)
	gen, a := genesisTestKey(n), newTestKey(1)

	n.SetDropNext(1)
	dropped := mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(1)), nano.SubtypeSend)
	kept := mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(1)), nano.SubtypeSend)
	if m := w.next(); confHash(m) != kept.String() {
		t.Fatalf("got %v, want %s (the first dropped)", m, kept)
	}
	// Dropped, but confirmed: polling finds it.
	if bi := rpc(t, n, map[string]any{"action": "block_info", "hash": dropped.String()}); bi["confirmed"] != "true" {
		t.Fatalf("%v", bi)
	}

	n.SetDuplicate(true)
	dup := mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(1)), nano.SubtypeSend)
	m1, m2 := w.next(), w.next()
	if confHash(m1) != dup.String() || confHash(m2) != dup.String() {
		t.Fatalf("duplicate: %v / %v", m1, m2)
	}
	n.SetDuplicate(false)
	one := mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(1)), nano.SubtypeSend)
	two := mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(1)), nano.SubtypeSend)
	if m := w.next(); confHash(m) != one.String() {
		t.Fatalf("%v", m)
	}
	if m := w.next(); confHash(m) != two.String() {
		t.Fatalf("a duplicate after SetDuplicate(false): %v", m)
	}

	n.SetDrop(1)
	waitConfirmed(t, n, mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(1)), nano.SubtypeSend))
	n.SetDrop(0)
	last := mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(1)), nano.SubtypeSend)
	if m := w.next(); confHash(m) != last.String() {
		t.Fatalf("probability 1 did not drop: %v", m)
	}
}

func TestDropProbabilityIsSeeded(t *testing.T) {
	plan := func() []int {
		n := newTestNode(t, Options{DropProbability: 0.5, RandSeed: 42})
		var out []int
		for range 32 {
			out = append(out, n.notifyPlan())
		}
		return out
	}
	a, b := plan(), plan()
	drops := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("the same seed gave different drops")
		}
		if a[i] == 0 {
			drops++
		}
	}
	if drops == 0 || drops == len(a) {
		t.Fatalf("%d of %d dropped at p=0.5", drops, len(a))
	}
	if _, err := New(Options{DropProbability: 2}); err == nil {
		t.Fatal("probability 2 accepted")
	}
}

func TestCallback(t *testing.T) {
	bodies := make(chan map[string]any, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("callback body: %v", err)
		}
		bodies <- m
	}))
	defer srv.Close()
	n := newTestNode(t, Options{CallbackURL: srv.URL})
	gen, a := genesisTestKey(n), newTestKey(1)
	send := mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(9)), nano.SubtypeSend)
	recv := mustProcess(t, n, block(a, nano.Hash{}, a.pub, raw(9), send), nano.SubtypeOpen)
	next := func() map[string]any {
		select {
		case m := <-bodies:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no callback")
		}
		return nil
	}
	s := next()
	sameShape(t, "callback send", s, fixtureMap(t, "http_callback_send.json"))
	allStrings(t, "callback send", s)
	if s["hash"] != send.String() || s["amount"] != "9" {
		t.Fatalf("%v", s)
	}
	r := next()
	sameShape(t, "callback receive", r, fixtureMap(t, "http_callback_receive.json"))
	if r["hash"] != recv.String() {
		t.Fatalf("%v", r)
	}
	if _, err := nano.ParseBlockJSON(mustMarshal(r)); err != nil {
		t.Fatal(err)
	}
}

func TestServeStopsWithOpenSessions(t *testing.T) {
	n := newTestNode(t, Options{})
	s := serve(t, n)
	w := dialWS(t, s.wsURL)
	w.subscribe(nil)
	// serve's cleanup checks that Serve returns although w is connected.
}
