package node

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/nanokms/nanokms/nano"
)

// DefaultWSURL is the node's default WebSocket address.
const DefaultWSURL = "ws://[::1]:7078"

// WSOptions configure a WS. The zero value gives the defaults.
type WSOptions struct {
	// Accounts are the accounts whose confirmations are wanted at first;
	// AddAccounts and RemoveAccounts change the set later.
	Accounts []nano.PublicKey
	// Difficulty also subscribes to active_difficulty, whose messages
	// feed Difficulty. Only nodes V19–V22 have that topic; newer ones
	// ignore the subscription (it is sent without asking for an
	// acknowledgement, so it costs nothing there).
	Difficulty bool
	// Topics are extra topics to subscribe to (without options), for
	// example "stopped_election"; their notifications go to
	// OnNotification.
	Topics []string
	// OnNotification, if set, is called (on the reading goroutine; it
	// must not block) with every notification other than a confirmation.
	OnNotification func(WSMessage)
	// PingInterval is the keepalive period; a connection that did not
	// answer the previous ping by the next one is dropped. 0 means 30 s.
	PingInterval time.Duration
	// AckTimeout bounds the wait for an acknowledgement; 0 means 10 s.
	AckTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the reconnection backoff; 0
	// means 250 ms and 30 s.
	ReconnectMin, ReconnectMax time.Duration
	// DedupeSize is how many confirmed hashes are remembered to drop
	// repeats; 0 means 16384.
	DedupeSize int
	// Buffer is the capacity of the Confirmations channel; 0 means 256.
	// When it is full, confirmations are dropped (and counted): delivery
	// is not guaranteed anyway, and AwaitConfirmation does not depend on it.
	Buffer int
	// Feed, if set, receives the confirmations instead of a feed of the
	// WS's own (made with DedupeSize and Buffer): shared with another
	// path (the HTTP callback), each hash is delivered once whichever
	// path brings it first. Confirmations and WaitConfirmed are then the
	// feed's, and Close leaves the feed open (its owner closes it).
	Feed *ConfirmationFeed
	// Dial is passed to websocket.Dial.
	Dial *websocket.DialOptions
	// Log receives connection events; nil discards.
	Log *slog.Logger

	// pingTicks, when set (by tests), replaces PingInterval's ticker: a
	// ping goes out, and the previous one is checked, at each receive.
	pingTicks <-chan time.Time
}

func (o *WSOptions) defaults() {
	if o.PingInterval <= 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 10 * time.Second
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = 250 * time.Millisecond
	}
	if o.ReconnectMax <= 0 {
		o.ReconnectMax = 30 * time.Second
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = o.ReconnectMin
	}
	if o.DedupeSize <= 0 {
		o.DedupeSize = 16384
	}
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// WSStats counts what a WS saw.
type WSStats struct {
	Messages   uint64 // messages read
	Invalid    uint64 // messages refused by ParseWSMessage
	Duplicates uint64 // confirmations dropped as repeats (of this path's or, with a shared feed, another's)
	Dropped    uint64 // confirmations dropped because the feed's channel was full (every path's, with a shared feed)
	Reconnects uint64 // connections lost
}

// WS is a client of the node's WebSocket. It subscribes to the
// confirmation topic for a set of accounts (with acknowledgements), keeps
// the connection alive with pings, reconnects with backoff and
// resubscribes with every current account, and delivers each confirmed
// block once (repeats are dropped by hash, in its ConfirmationFeed).
// Confirmation notifications
// are checked (the block hashes to the stated hash) but are otherwise the
// node's claims. It is safe for concurrent use.
type WS struct {
	url  string
	opts WSOptions
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{} // closed when the supervising goroutine exits

	feed    *ConfirmationFeed
	ownFeed bool // the feed is the WS's own: Close closes it

	subMu sync.Mutex // serialises subscription changes and (re)subscribes; taken before mu

	mu         sync.Mutex
	conn       *websocket.Conn // nil while disconnected
	accounts   map[nano.PublicKey]bool
	acks       map[string]chan WSMessage
	difficulty *ActiveDifficulty

	nextID           atomic.Uint64
	pingSent, ponged atomic.Int64 // unix nanoseconds
	messages         atomic.Uint64
	invalid          atomic.Uint64
	duplicates       atomic.Uint64
	reconnects       atomic.Uint64
}

// DialWS connects to the node's WebSocket at url ("" means DefaultWSURL),
// subscribes to confirmations of opts.Accounts (and to opts.Topics), waits
// for the acknowledgements, and then keeps the
// subscription alive in the background until Close. ctx bounds the first
// connection only.
func DialWS(ctx context.Context, url string, opts WSOptions) (*WS, error) {
	if url == "" {
		url = DefaultWSURL
	}
	opts.defaults()
	life, stop := context.WithCancel(context.Background())
	w := &WS{
		url: url, opts: opts, ctx: life, stop: stop, done: make(chan struct{}),
		feed:     opts.Feed,
		accounts: make(map[nano.PublicKey]bool),
		acks:     make(map[string]chan WSMessage),
	}
	if w.feed == nil {
		w.feed = NewConfirmationFeed(FeedOptions{DedupeSize: opts.DedupeSize, Buffer: opts.Buffer})
		w.ownFeed = true
	}
	for _, a := range opts.Accounts {
		w.accounts[a] = true
	}
	conn, readerDone, err := w.connect(ctx)
	if err != nil {
		stop()
		if w.ownFeed {
			w.feed.Close()
		}
		return nil, err
	}
	go w.supervise(conn, readerDone)
	return w, nil
}

// connect dials, starts the reader and subscribes.
func (w *WS) connect(ctx context.Context) (*websocket.Conn, chan struct{}, error) {
	conn, _, err := websocket.Dial(ctx, w.url, w.opts.Dial)
	if err != nil {
		return nil, nil, fmt.Errorf("node: websocket: %w: %w", ErrTransport, err)
	}
	conn.SetReadLimit(MaxWSMessage)
	readerDone := make(chan struct{})
	go w.read(conn, readerDone)
	w.subMu.Lock()
	err = w.subscribe(ctx, conn)
	w.subMu.Unlock()
	if err != nil {
		_ = conn.CloseNow()
		<-readerDone
		w.mu.Lock()
		if w.conn == conn {
			w.conn = nil
		}
		w.mu.Unlock()
		return nil, nil, err
	}
	return conn, readerDone, nil
}

// wsRequest is an action sent to the node, in the order the node's
// documentation prints the fields.
type wsRequest struct {
	Action  string `json:"action"`
	Topic   string `json:"topic,omitempty"`
	Ack     bool   `json:"ack,omitempty"`
	ID      string `json:"id,omitempty"`
	Options any    `json:"options,omitempty"`
}

// subscribe makes conn the current connection and subscribes it to every
// topic with the current account set. The caller holds subMu.
func (w *WS) subscribe(ctx context.Context, conn *websocket.Conn) error {
	w.mu.Lock()
	w.conn = conn
	accounts := w.accountList()
	w.mu.Unlock()
	type confirmationOptions struct {
		Accounts []string `json:"accounts"`
	}
	if err := w.request(ctx, conn, wsRequest{Action: "subscribe", Topic: "confirmation", Options: confirmationOptions{Accounts: accounts}}); err != nil {
		return err
	}
	for _, t := range w.opts.Topics {
		if err := w.request(ctx, conn, wsRequest{Action: "subscribe", Topic: t}); err != nil {
			return err
		}
	}
	if w.opts.Difficulty {
		data, err := json.Marshal(wsRequest{Action: "subscribe", Topic: "active_difficulty"})
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, w.opts.AckTimeout)
		defer cancel()
		if err := conn.Write(wctx, websocket.MessageText, data); err != nil {
			return fmt.Errorf("node: websocket subscribe active_difficulty: %w: %w", ErrTransport, err)
		}
	}
	return nil
}

// accountList returns the account set as sorted addresses. The caller
// holds mu.
func (w *WS) accountList() []string {
	out := make([]string, 0, len(w.accounts))
	for a := range w.accounts {
		out = append(out, a.Address())
	}
	slices.Sort(out)
	return out
}

// request sends req with an acknowledgement request and waits for the
// acknowledgement carrying the same id.
func (w *WS) request(ctx context.Context, conn *websocket.Conn, req wsRequest) error {
	req.Ack = true
	req.ID = "nanokms-" + strconv.FormatUint(w.nextID.Add(1), 10)
	ack := make(chan WSMessage, 1)
	w.mu.Lock()
	w.acks[req.ID] = ack
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.acks, req.ID)
		w.mu.Unlock()
	}()
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, w.opts.AckTimeout)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("node: websocket %s %s: %w: %w", req.Action, req.Topic, ErrTransport, err)
	}
	select {
	case m := <-ack:
		if m.Ack != req.Action {
			return fmt.Errorf("node: websocket %s %s: %w: acknowledged as %q", req.Action, req.Topic, ErrInconsistent, m.Ack)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("node: websocket %s %s: %w: no acknowledgement: %w", req.Action, req.Topic, ErrTransport, ctx.Err())
	}
}

// read reads conn until it fails.
func (w *WS) read(conn *websocket.Conn, done chan struct{}) {
	defer close(done)
	for {
		_, data, err := conn.Read(w.ctx)
		if err != nil {
			w.opts.Log.Debug("node: websocket read ended", "err", err)
			return
		}
		w.messages.Add(1)
		w.handle(data)
	}
}

func (w *WS) handle(data []byte) {
	m, err := ParseWSMessage(data)
	if err != nil {
		w.invalid.Add(1)
		w.opts.Log.Warn("node: websocket message refused", "err", err)
		return
	}
	switch {
	case m.Ack != "":
		if m.Ack == "pong" {
			w.ponged.Store(time.Now().UnixNano())
		}
		if m.ID != "" {
			w.mu.Lock()
			ch := w.acks[m.ID]
			w.mu.Unlock()
			if ch != nil {
				select {
				case ch <- m:
				default:
				}
			}
		}
	case m.Confirmation != nil:
		w.confirmed(*m.Confirmation)
	case m.ActiveDifficulty != nil:
		w.mu.Lock()
		w.difficulty = m.ActiveDifficulty
		w.mu.Unlock()
		fallthrough
	default:
		if w.opts.OnNotification != nil {
			w.opts.OnNotification(m)
		}
	}
}

func (w *WS) confirmed(c Confirmation) {
	if !w.feed.Deliver(c) {
		w.duplicates.Add(1)
	}
}

// supervise pings the current connection and, when it is lost, reconnects
// with backoff until Close.
func (w *WS) supervise(conn *websocket.Conn, readerDone chan struct{}) {
	defer close(w.done)
	defer func() {
		if w.ownFeed {
			w.feed.Close()
		}
	}()
	for {
		w.keepalive(conn, readerDone)
		_ = conn.CloseNow()
		<-readerDone
		w.mu.Lock()
		if w.conn == conn {
			w.conn = nil
		}
		w.mu.Unlock()
		if w.ctx.Err() != nil {
			return
		}
		w.reconnects.Add(1)
		w.opts.Log.Info("node: websocket connection lost; reconnecting", "url", w.url)
		delay := w.opts.ReconnectMin
		for {
			t := time.NewTimer(delay)
			select {
			case <-w.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			c, rd, err := w.connect(w.ctx)
			if err == nil {
				conn, readerDone = c, rd
				break
			}
			w.opts.Log.Warn("node: websocket reconnect failed", "err", err)
			delay = min(2*delay, w.opts.ReconnectMax)
		}
	}
}

// keepalive pings conn every PingInterval until the reader exits or the
// previous ping went unanswered.
func (w *WS) keepalive(conn *websocket.Conn, readerDone chan struct{}) {
	w.pingSent.Store(0)
	ticks := w.opts.pingTicks
	if ticks == nil {
		t := time.NewTicker(w.opts.PingInterval)
		defer t.Stop()
		ticks = t.C
	}
	ping, _ := json.Marshal(wsRequest{Action: "ping"})
	for {
		select {
		case <-readerDone:
			return
		case <-w.ctx.Done():
			return
		case <-ticks:
		}
		if sent := w.pingSent.Load(); sent != 0 && w.ponged.Load() < sent {
			w.opts.Log.Warn("node: websocket ping unanswered; dropping the connection")
			return
		}
		w.pingSent.Store(time.Now().UnixNano())
		ctx, cancel := context.WithTimeout(w.ctx, w.opts.AckTimeout)
		err := conn.Write(ctx, websocket.MessageText, ping)
		cancel()
		if err != nil {
			return
		}
	}
}

// AddAccounts adds accounts to the confirmation subscription with an
// "update" action (accounts_add). The accounts are kept even when the
// update fails (the error is returned): every resubscription includes
// them.
func (w *WS) AddAccounts(ctx context.Context, accounts ...nano.PublicKey) error {
	return w.update(ctx, accounts, true)
}

// RemoveAccounts removes accounts from the confirmation subscription with
// an "update" action (accounts_del).
func (w *WS) RemoveAccounts(ctx context.Context, accounts ...nano.PublicKey) error {
	return w.update(ctx, accounts, false)
}

func (w *WS) update(ctx context.Context, accounts []nano.PublicKey, add bool) error {
	w.subMu.Lock()
	defer w.subMu.Unlock()
	if w.ctx.Err() != nil {
		return fmt.Errorf("node: websocket: %w", ErrClosed)
	}
	w.mu.Lock()
	var changed []string
	for _, a := range accounts {
		if w.accounts[a] != add {
			changed = append(changed, a.Address())
			if add {
				w.accounts[a] = true
			} else {
				delete(w.accounts, a)
			}
		}
	}
	conn := w.conn
	w.mu.Unlock()
	if len(changed) == 0 || conn == nil {
		return nil // nothing to say, or the next subscription carries the set
	}
	slices.Sort(changed)
	type updateOptions struct {
		AccountsAdd []string `json:"accounts_add,omitempty"`
		AccountsDel []string `json:"accounts_del,omitempty"`
	}
	var o updateOptions
	if add {
		o.AccountsAdd = changed
	} else {
		o.AccountsDel = changed
	}
	return w.request(ctx, conn, wsRequest{Action: "update", Topic: "confirmation", Options: o})
}

// Accounts returns the current account set.
func (w *WS) Accounts() []nano.PublicKey {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]nano.PublicKey, 0, len(w.accounts))
	for a := range w.accounts {
		out = append(out, a)
	}
	return out
}

// Confirmations returns the channel confirmed blocks are delivered on,
// each hash once (as long as the dedupe memory holds it): its feed's. It
// is closed after Close, unless the feed came from WSOptions.Feed.
func (w *WS) Confirmations() <-chan Confirmation { return w.feed.Confirmations() }

// WaitConfirmed returns a channel closed when a confirmation of h arrives
// (at once if one already did) in its feed, and a function to call when
// no longer waiting.
func (w *WS) WaitConfirmed(h nano.Hash) (<-chan struct{}, func()) {
	return w.feed.WaitConfirmed(h)
}

// Difficulty returns the last active_difficulty notification, if any.
func (w *WS) Difficulty() (ActiveDifficulty, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.difficulty == nil {
		return ActiveDifficulty{}, false
	}
	return *w.difficulty, true
}

// Connected reports whether a subscribed connection is up.
func (w *WS) Connected() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conn != nil
}

// Stats returns the counters.
func (w *WS) Stats() WSStats {
	return WSStats{
		Messages: w.messages.Load(), Invalid: w.invalid.Load(), Duplicates: w.duplicates.Load(),
		Dropped: w.feed.Stats().Dropped, Reconnects: w.reconnects.Load(),
	}
}

// Close closes the connection and stops reconnecting. It is idempotent.
func (w *WS) Close() error {
	w.stop() // the reader and keepalive stop; the supervisor closes the connection
	<-w.done
	return nil
}

var _ DifficultySource = (*WS)(nil)
