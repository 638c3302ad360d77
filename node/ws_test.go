package node

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nanokms/nanokms/nano"
)

// wsServer is a WebSocket server that runs a script per connection,
// sending the node's exact messages.
type wsServer struct {
	url   string
	conns atomic.Int32
}

// wsSession is one server-side connection.
type wsSession struct {
	t    testing.TB
	conn *websocket.Conn
	ctx  context.Context
	n    int // 1 for the first connection
}

func newWSServer(t testing.TB, script func(s *wsSession)) *wsServer {
	t.Helper()
	ws := &wsServer{}
	var (
		mu     sync.Mutex // orders wg.Add before wg.Wait for the race detector
		closed bool
		wg     sync.WaitGroup
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if closed {
			mu.Unlock()
			return
		}
		wg.Add(1)
		mu.Unlock()
		defer wg.Done()
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		n := ws.conns.Add(1)
		script(&wsSession{t: t, conn: conn, ctx: r.Context(), n: int(n)})
	}))
	t.Cleanup(func() {
		mu.Lock()
		closed = true
		mu.Unlock()
		srv.CloseClientConnections()
		srv.Close()
		wg.Wait()
	})
	ws.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	return ws
}

// readJSON reads one message into v; it ends the script (Goexit) when
// the connection is gone.
func (s *wsSession) readJSON(v any) {
	ctx, cancel := context.WithTimeout(s.ctx, hangLimit)
	defer cancel()
	_, data, err := s.conn.Read(ctx)
	if err != nil {
		runtimeGoexit()
	}
	if err := json.Unmarshal(data, v); err != nil {
		s.t.Errorf("client sent %q: %v", data, err)
	}
}

func (s *wsSession) send(data []byte) {
	ctx, cancel := context.WithTimeout(s.ctx, hangLimit)
	defer cancel()
	_ = s.conn.Write(ctx, websocket.MessageText, data)
}

// ack acknowledges req as the node does (ws_ack.json with the request's
// action and id).
func (s *wsSession) ack(req map[string]any) {
	var a map[string]any
	if err := json.Unmarshal(MustFixture(s.t, "ws_ack.json"), &a); err != nil {
		s.t.Fatal(err)
	}
	a["ack"] = req["action"]
	a["id"] = req["id"]
	b, _ := json.Marshal(a)
	s.send(b)
}

// serveAcks acknowledges every request (pings with pong) until the
// connection ends, passing each to seen if set.
func (s *wsSession) serveAcks(seen func(req map[string]any)) {
	for {
		var req map[string]any
		s.readJSON(&req)
		if seen != nil {
			seen(req)
		}
		if req["action"] == "ping" {
			s.send([]byte(`{"ack": "pong", "time": "1552766057328"}`))
			continue
		}
		s.ack(req)
	}
}

// waitClosed blocks until the client goes away.
func (s *wsSession) waitClosed() {
	for {
		if _, _, err := s.conn.Read(s.ctx); err != nil {
			return
		}
	}
}

func dialWS(t *testing.T, url string, opts WSOptions) *WS {
	t.Helper()
	if opts.ReconnectMin == 0 {
		opts.ReconnectMin, opts.ReconnectMax = 10*time.Millisecond, 50*time.Millisecond
	}
	if opts.AckTimeout == 0 {
		opts.AckTimeout = hangLimit // a hang bound: no test here waits it out
	}
	w, err := DialWS(testCtx(t), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// Two valid accounts (acct1 sorts first). The fixture's sample accounts
// (from the node's documentation) are not valid addresses: they hold the
// digit 2, outside the Nano alphabet.
var (
	acct1 = "nano_1tgkjkq9r96zd3pkr7edj8e4qbu3wr3ps6ettzse8hmoa37nurua7faupjhc"
	acct2 = "nano_3rropjiqfxpmrrkooej4qtmm1pueu36f9ghinpho4esfdor8785a455d16nf"
)

func TestWSSubscribeWaitsForItsAck(t *testing.T) {
	var acked atomic.Bool
	srv := newWSServer(t, func(s *wsSession) {
		var req map[string]any
		s.readJSON(&req)
		if req["action"] != "subscribe" || req["topic"] != "confirmation" || req["ack"] != true || req["id"] == "" {
			t.Errorf("subscribe %v", req)
		}
		// An acknowledgement for another id must not satisfy the client.
		// The pause gives a wrong client time to return on it; on a slow
		// host it may not, and the test passes without catching it: the
		// pause can never fail a correct client (acked is set before the
		// real acknowledgement is sent).
		s.send([]byte(`{"ack": "subscribe", "time": "1", "id": "someone-else"}`))
		time.Sleep(50 * time.Millisecond)
		acked.Store(true)
		s.ack(req)
		// Then active_difficulty, without an acknowledgement request
		// (nodes after V22 do not know the topic and would not answer).
		req = nil
		s.readJSON(&req)
		if req["topic"] != "active_difficulty" || req["ack"] != nil || req["id"] != nil {
			t.Errorf("second subscription %v", req)
		}
		s.send(MustFixture(t, "ws_active_difficulty.json"))
		s.serveAcks(nil)
	})
	w := dialWS(t, srv.url, WSOptions{Accounts: []nano.PublicKey{MustAccount(t, acct1)}, Difficulty: true})
	if !acked.Load() {
		t.Fatal("DialWS returned before its acknowledgement")
	}
	eventually(t, "active difficulty", func() bool { _, ok := w.Difficulty(); return ok })
	d, _ := w.Difficulty()
	if d.NetworkCurrent != 0xffffffc81644d01f {
		t.Errorf("difficulty %+v", d)
	}
	if got := Threshold(nano.SubtypeSend, WorkThresholds{}, w); got <= nano.ThresholdSend {
		t.Errorf("threshold not raised: %016x", got)
	}
}

func TestWSSubscribeWithoutAckFails(t *testing.T) {
	srv := newWSServer(t, func(s *wsSession) { s.waitClosed() })
	_, err := DialWS(testCtx(t), srv.url, WSOptions{AckTimeout: 100 * time.Millisecond})
	if err == nil {
		t.Fatal("subscribed without an acknowledgement")
	}
}

func TestWSDeliversOnceAndParsesEveryTopic(t *testing.T) {
	confirmation := MustFixture(t, "ws_confirmation.json")
	srv := newWSServer(t, func(s *wsSession) {
		var req map[string]any
		s.readJSON(&req)
		s.ack(req)
		s.send(confirmation)
		s.send(confirmation)
		s.send(MustFixture(t, "ws_vote.json"))
		s.send(MustFixture(t, "ws_stopped_election.json"))
		s.send(MustFixture(t, "ws_active_difficulty.json"))
		s.send(confirmation)
		s.send([]byte(`{"topic": "confirmation", "message": {"hash": "nope"}}`))
		s.serveAcks(nil)
	})
	var mu sync.Mutex
	var topics []string
	w := dialWS(t, srv.url, WSOptions{OnNotification: func(m WSMessage) {
		mu.Lock()
		topics = append(topics, m.Topic)
		mu.Unlock()
	}})
	select {
	case c := <-w.Confirmations():
		if c.Hash.String() != hashWSConfirm {
			t.Errorf("confirmation of %s", c.Hash)
		}
	case <-time.After(hangLimit):
		t.Fatal("no confirmation")
	}
	eventually(t, "all messages", func() bool { return w.Stats().Messages >= 8 })
	// Negative check: every message has been read; a repeat delivered
	// late on a slow host would be missed (a false pass), never a false
	// failure.
	select {
	case c := <-w.Confirmations():
		t.Fatalf("repeat delivered: %s", c.Hash)
	case <-time.After(50 * time.Millisecond):
	}
	st := w.Stats()
	if st.Duplicates != 2 || st.Invalid != 1 {
		t.Errorf("stats %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(topics, []string{"vote", "stopped_election", "active_difficulty"}) {
		t.Errorf("notifications %v", topics)
	}
	if _, ok := w.Difficulty(); !ok {
		t.Error("active difficulty not kept")
	}
	// A waiter for a hash already confirmed returns at once.
	ch, cancel := w.WaitConfirmed(MustHash(t, hashWSConfirm))
	defer cancel()
	select {
	case <-ch:
	default:
		t.Error("WaitConfirmed on a confirmed hash blocks")
	}
}

func TestWSRefusesForgedConfirmation(t *testing.T) {
	var m map[string]any
	if err := json.Unmarshal(MustFixture(t, "ws_confirmation.json"), &m); err != nil {
		t.Fatal(err)
	}
	m["message"].(map[string]any)["block"].(map[string]any)["balance"] = "1"
	forged, _ := json.Marshal(m)
	srv := newWSServer(t, func(s *wsSession) {
		var req map[string]any
		s.readJSON(&req)
		s.ack(req)
		s.send(forged)
		s.serveAcks(nil)
	})
	w := dialWS(t, srv.url, WSOptions{})
	eventually(t, "the forged message", func() bool { return w.Stats().Invalid == 1 })
	select {
	case c := <-w.Confirmations():
		t.Fatalf("forged confirmation delivered: %s", c.Hash)
	default:
	}
}

func TestWSUpdateMessages(t *testing.T) {
	reqs := make(chan map[string]any, 10)
	srv := newWSServer(t, func(s *wsSession) {
		s.serveAcks(func(req map[string]any) { reqs <- req })
	})
	w := dialWS(t, srv.url, WSOptions{Accounts: []nano.PublicKey{MustAccount(t, acct1)}})
	<-reqs // the subscription
	ctx := testCtx(t)
	if err := w.AddAccounts(ctx, MustAccount(t, acct2), MustAccount(t, acct1)); err != nil {
		t.Fatal(err)
	}
	got := <-reqs
	want := map[string]any{"action": "update", "topic": "confirmation", "ack": true, "id": got["id"],
		"options": map[string]any{"accounts_add": []any{acct2}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("update %v, want %v", got, want)
	}
	if err := w.RemoveAccounts(ctx, MustAccount(t, acct1)); err != nil {
		t.Fatal(err)
	}
	got = <-reqs
	want = map[string]any{"action": "update", "topic": "confirmation", "ack": true, "id": got["id"],
		"options": map[string]any{"accounts_del": []any{acct1}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("update %v, want %v", got, want)
	}
	// Adding a known account sends nothing (a negative check: a late
	// wrong request on a slow host is missed, a correct client never
	// fails it).
	if err := w.AddAccounts(ctx, MustAccount(t, acct2)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reqs:
		t.Errorf("unexpected %v", r)
	case <-time.After(50 * time.Millisecond):
	}
	if len(w.Accounts()) != 1 {
		t.Errorf("accounts %v", w.Accounts())
	}
}

func TestWSReconnectsAndResubscribes(t *testing.T) {
	subs := make(chan []any, 4)
	srv := newWSServer(t, func(s *wsSession) {
		var req map[string]any
		s.readJSON(&req)
		subs <- req["options"].(map[string]any)["accounts"].([]any)
		s.ack(req)
		if s.n == 1 {
			s.readJSON(&req) // the update adding acct2
			s.ack(req)
			return // the node goes away
		}
		s.send(MustFixture(t, "ws_confirmation.json"))
		s.serveAcks(nil)
	})
	w := dialWS(t, srv.url, WSOptions{Accounts: []nano.PublicKey{MustAccount(t, acct1)}})
	if got := <-subs; !reflect.DeepEqual(got, []any{acct1}) {
		t.Errorf("first subscription %v", got)
	}
	if err := w.AddAccounts(testCtx(t), MustAccount(t, acct2)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-subs:
		if !reflect.DeepEqual(got, []any{acct1, acct2}) {
			t.Errorf("resubscription %v", got)
		}
	case <-time.After(hangLimit):
		t.Fatal("no resubscription")
	}
	select {
	case c := <-w.Confirmations():
		if c.Hash.String() != hashWSConfirm {
			t.Errorf("confirmation %s", c.Hash)
		}
	case <-time.After(hangLimit):
		t.Fatal("no confirmation after reconnecting")
	}
	if w.Stats().Reconnects < 1 {
		t.Errorf("stats %+v", w.Stats())
	}
}

// TestWSKeepalive: a connection that answers every ping is kept. The
// test drives the keepalive's ticks itself and sends the next one only
// once the client has the pong, so a slow host cannot make a pong late.
func TestWSKeepalive(t *testing.T) {
	var pings atomic.Int32
	srv := newWSServer(t, func(s *wsSession) {
		if s.n == 1 {
			s.serveAcks(func(req map[string]any) {
				if req["action"] == "ping" {
					if len(req) != 1 {
						t.Errorf("ping %v", req)
					}
					pings.Add(1)
				}
			})
			return
		}
		s.waitClosed()
	})
	ticks := make(chan time.Time)
	w := dialWS(t, srv.url, WSOptions{pingTicks: ticks})
	for i := range int32(4) {
		tick(t, ticks)
		eventually(t, "the pong", func() bool {
			return pings.Load() == i+1 && w.ponged.Load() >= w.pingSent.Load()
		})
	}
	tick(t, ticks) // the check of the fourth pong, and a fifth ping
	eventually(t, "the fifth ping", func() bool { return pings.Load() == 5 })
	if st := w.Stats(); st.Reconnects != 0 || !w.Connected() {
		t.Errorf("reconnected although pongs came: %+v", st)
	}
}

// TestWSDropsSilentConnection: a connection that leaves a ping
// unanswered until the next tick is dropped, and the client reconnects.
func TestWSDropsSilentConnection(t *testing.T) {
	srv := newWSServer(t, func(s *wsSession) {
		var req map[string]any
		s.readJSON(&req)
		s.ack(req)
		if s.n == 1 {
			s.waitClosed() // never answers pings
			return
		}
		s.serveAcks(nil)
	})
	ticks := make(chan time.Time)
	w := dialWS(t, srv.url, WSOptions{pingTicks: ticks})
	tick(t, ticks) // a ping
	tick(t, ticks) // still unanswered: dropped
	eventually(t, "a reconnection", func() bool { return w.Stats().Reconnects >= 1 && w.Connected() })
}

// tick hands one tick to a WebSocket's keepalive (it fails the test if
// no keepalive takes it within the hang bound).
func tick(t *testing.T, ticks chan<- time.Time) {
	t.Helper()
	select {
	case ticks <- time.Now():
	case <-time.After(hangLimit):
		t.Fatal("no keepalive is running")
	}
}

func TestAwaitConfirmationPolls(t *testing.T) {
	n := newFakeNode(t)
	b := testBlock(1, nano.Hash{1}, 5, nano.Hash{})
	h := b.Hash()
	var polls atomic.Int32
	n.handle("block_info", func(req map[string]any) []byte {
		confirmed := "false"
		if polls.Add(1) >= 3 {
			confirmed = "true"
		}
		return blockInfoBody(t, b, nano.AmountFromUint64(1), confirmed)
	})
	c, _ := newClients(t, n)
	// The WebSocket is subscribed but never delivers.
	srv := newWSServer(t, func(s *wsSession) { s.serveAcks(nil) })
	w := dialWS(t, srv.url, WSOptions{})
	cf := &Confirmer{Client: c, WS: w, PollInterval: 10 * time.Millisecond}
	if err := cf.AwaitConfirmation(testCtx(t), h); err != nil {
		t.Fatal(err)
	}
	if polls.Load() < 3 {
		t.Errorf("%d polls", polls.Load())
	}
}

func TestAwaitConfirmationOverWS(t *testing.T) {
	n := newFakeNode(t)
	b := testBlock(1, nano.Hash{1}, 5, nano.Hash{})
	n.addBlock(b, nano.AmountFromUint64(1), "false")
	c, _ := newClients(t, n)
	release := make(chan struct{})
	srv := newWSServer(t, func(s *wsSession) {
		var req map[string]any
		s.readJSON(&req)
		s.ack(req)
		<-release
		s.send(MustFixture(t, "ws_confirmation.json"))
		s.serveAcks(nil)
	})
	w := dialWS(t, srv.url, WSOptions{})
	cf := &Confirmer{Client: c, WS: w, PollInterval: time.Hour}
	// The confirmation is sent once the wait is under way: its first poll
	// (after it registered with the WebSocket) has reached the node.
	ctx, h := testCtx(t), MustHash(t, hashWSConfirm)
	awaited := make(chan error, 1)
	go func() { awaited <- cf.AwaitConfirmation(ctx, h) }()
	eventually(t, "the first poll", func() bool { return len(n.requestsFor("block_info")) > 0 })
	close(release)
	if err := <-awaited; err != nil {
		t.Fatal(err)
	}
	// Without a confirmation the wait ends with the context.
	ctx2, cancel2 := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel2()
	if err := cf.AwaitConfirmation(ctx2, b.Hash()); err == nil {
		t.Fatal("an unconfirmed block came back confirmed")
	}
}

// TestWSSharedFeed: with WSOptions.Feed, a confirmation another path
// delivered first is a duplicate on the WebSocket (dropped, counted),
// one it brings first is the feed's, and Close leaves the feed open.
func TestWSSharedFeed(t *testing.T) {
	first := MustHash(t, hashWSConfirm)
	srv := newWSServer(t, func(s *wsSession) {
		var req map[string]any
		s.readJSON(&req)
		s.ack(req)
		s.send(MustFixture(t, "ws_confirmation.json"))
		s.send(MustFixture(t, "ws_vote.json")) // read once the confirmation is handled
		s.serveAcks(nil)
	})
	feed := NewConfirmationFeed(FeedOptions{})
	if !feed.Deliver(Confirmation{Hash: first}) { // as the callback path would
		t.Fatal("refused")
	}
	w := dialWS(t, srv.url, WSOptions{Feed: feed})
	eventually(t, "the confirmation handled", func() bool { return w.Stats().Messages >= 3 })
	if st := w.Stats(); st.Duplicates != 1 {
		t.Errorf("WebSocket stats %+v: want the confirmation dropped as a repeat", st)
	}
	if st := feed.Stats(); st.Delivered != 1 || st.Duplicates != 1 {
		t.Errorf("feed stats %+v", st)
	}
	if wait, stop := w.WaitConfirmed(first); !isClosed(wait) {
		t.Error("the WebSocket does not see the feed's confirmation")
	} else {
		stop()
	}
	w.Close()
	if !feed.Deliver(Confirmation{Hash: nano.Hash{9}}) {
		t.Error("the WebSocket's Close closed a feed it does not own")
	}
}
