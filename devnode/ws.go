package devnode

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/nanokms/nanokms/nano"
)

// The topics a client may subscribe to. Only "confirmation" ever carries
// messages here (the devnode has no votes, elections or work peers), but
// subscribing to the others succeeds as it does on a node.
var wsTopics = map[string]bool{
	"confirmation":          true,
	"started_election":      true,
	"stopped_election":      true,
	"vote":                  true,
	"active_difficulty":     true,
	"work":                  true,
	"bootstrap":             true,
	"telemetry":             true,
	"new_unconfirmed_block": true,
}

const (
	wsReadLimit  = 64 << 10
	wsQueueLen   = 4096
	wsWriteLimit = 10 * time.Second
)

// Confirmation types, as filter bits.
const (
	typeActiveQuorum = 1 << iota
	typeActiveConfHeight
	typeInactive
	typeAll = typeActiveQuorum | typeActiveConfHeight | typeInactive
)

// confOptions are a "confirmation" subscription's options.
type confOptions struct {
	includeBlock        bool
	includeElectionInfo bool
	types               int
	hasAccountFilter    bool
	accounts            map[string]bool // nano_ addresses
}

func defaultConfOptions() *confOptions {
	return &confOptions{includeBlock: true, includeElectionInfo: true, types: typeAll}
}

// optFlag reads a boolean option as the node does: a JSON boolean or the
// strings "true"/"false"/"1"/"0"; anything else is def.
func optFlag(m map[string]json.RawMessage, key string, def bool) (val, present bool) {
	raw, ok := m[key]
	if !ok {
		return def, false
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "true", "1":
			return true, true
		case "false", "0":
			return false, true
		}
	}
	return def, true
}

// addresses decodes a list of accounts, skipping invalid ones (as the
// node does, with a log line) and normalising xrb_ to nano_.
func addresses(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) != nil {
		return nil
	}
	var out []string
	for _, s := range list {
		if k, err := nano.ParseAddress(s); err == nil {
			out = append(out, k.Address())
		}
	}
	return out
}

func parseConfOptions(raw json.RawMessage) *confOptions {
	o := defaultConfOptions()
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return o
	}
	o.includeBlock, _ = optFlag(m, "include_block", true)
	// The node's default is false; the devnode includes election_info
	// unless told not to, so that its messages have the sample's shape.
	o.includeElectionInfo, _ = optFlag(m, "include_election_info", true)
	if raw, ok := m["confirmation_type"]; ok {
		var t string
		_ = json.Unmarshal(raw, &t)
		switch strings.ToLower(t) {
		case "active":
			o.types = typeActiveQuorum | typeActiveConfHeight
		case "active_quorum":
			o.types = typeActiveQuorum
		case "active_confirmation_height":
			o.types = typeActiveConfHeight
		case "inactive":
			o.types = typeInactive
		}
	}
	if _, present := optFlag(m, "all_local_accounts", false); present {
		// The devnode has no wallets: no account is "local".
		o.hasAccountFilter = true
	}
	if raw, ok := m["accounts"]; ok {
		o.hasAccountFilter = true
		o.accounts = make(map[string]bool)
		for _, a := range addresses(raw) {
			o.accounts[a] = true
		}
	}
	return o
}

// update applies an "update" action's accounts_add / accounts_del.
func (o *confOptions) update(raw json.RawMessage) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return
	}
	for key, add := range map[string]bool{"accounts_add": true, "accounts_del": false} {
		list, ok := m[key]
		if !ok {
			continue
		}
		o.hasAccountFilter = true
		if o.accounts == nil {
			o.accounts = make(map[string]bool)
		}
		for _, a := range addresses(list) {
			if add {
				o.accounts[a] = true
			} else {
				delete(o.accounts, a)
			}
		}
	}
}

func (o *confOptions) clone() *confOptions {
	c := *o
	c.accounts = make(map[string]bool, len(o.accounts))
	for k := range o.accounts {
		c.accounts[k] = true
	}
	return &c
}

// filtered reports whether a confirmation is withheld from this
// subscription, by the node's rules: the type must be wanted and, with an
// account filter, the block must be included and its account or its link
// (as an account) listed.
func (o *confOptions) filtered(ev *event) bool {
	bit := typeActiveQuorum
	if ev.confType == "inactive" {
		bit = typeInactive
	}
	if o.types&bit == 0 {
		return true
	}
	if !o.hasAccountFilter {
		return false
	}
	if !o.includeBlock {
		return true
	}
	b := &ev.rec.block
	return !o.accounts[b.Account.Address()] && !o.accounts[nano.PublicKey(b.Link).Address()]
}

// confirmationMessage is the WebSocket message for ev under o.
func confirmationMessage(ev *event, o *confOptions, now time.Time) []byte {
	r := &ev.rec
	msg := object{
		{"account", r.block.Account.Address()},
		{"amount", r.amount.String()},
		{"hash", r.hash.String()},
		{"confirmation_type", ev.confType},
	}
	if o.includeElectionInfo {
		tally := nano.MaxAmount.String()
		if ev.confType == "inactive" {
			tally = "0"
		}
		msg = append(msg, member{"election_info", object{
			{"duration", strconv.FormatInt(ev.duration.Milliseconds(), 10)},
			{"time", nowMillis(ev.confirmed)},
			{"tally", tally},
		}})
	}
	if o.includeBlock {
		blk := append(blockObject(&r.block), member{"subtype", r.nodeSubtype()})
		msg = append(msg, member{"block", blk})
	}
	return mustMarshal(object{
		{"topic", "confirmation"},
		{"time", nowMillis(now)},
		{"message", msg},
	})
}

// hub is the WebSocket server: its sessions and their subscriptions.
type hub struct {
	n        *Node
	mu       sync.Mutex
	sessions map[*session]struct{}
}

func newHub(n *Node) *hub {
	return &hub{n: n, sessions: make(map[*session]struct{})}
}

type session struct {
	conn   *websocket.Conn
	out    chan []byte
	cancel context.CancelFunc

	mu   sync.Mutex
	subs map[string]*confOptions // topic → options (confirmation only; nil otherwise)
}

// enqueue queues a message; a client too slow to drain its queue is
// disconnected rather than allowed to hold the node up.
func (s *session) enqueue(msg []byte) {
	select {
	case s.out <- msg:
	default:
		s.cancel()
	}
}

func (h *hub) broadcast(ev event) {
	h.mu.Lock()
	sessions := make([]*session, 0, len(h.sessions))
	for s := range h.sessions {
		sessions = append(sessions, s)
	}
	h.mu.Unlock()
	now := time.Now()
	for _, s := range sessions {
		s.mu.Lock()
		o, ok := s.subs["confirmation"]
		if ok {
			o = o.clone()
		}
		s.mu.Unlock()
		if !ok || o.filtered(&ev) {
			continue
		}
		s.enqueue(confirmationMessage(&ev, o, now))
	}
}

// closeAll disconnects every session.
func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.sessions {
		s.cancel()
	}
}

// ServeHTTP accepts a WebSocket connection on any path.
func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A node accepts any origin; the devnode listens for local tools.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	c.SetReadLimit(wsReadLimit)
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{conn: c, out: make(chan []byte, wsQueueLen), cancel: cancel, subs: make(map[string]*confOptions)}
	h.mu.Lock()
	h.sessions[s] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.sessions, s)
		h.mu.Unlock()
		cancel()
	}()
	go s.writeLoop(ctx)
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		if !s.handle(data) {
			c.Close(websocket.StatusUnsupportedData, "invalid JSON")
			return
		}
	}
}

func (s *session) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			s.conn.Close(websocket.StatusGoingAway, "shutting down")
			return
		case msg := <-s.out:
			wctx, cancel := context.WithTimeout(ctx, wsWriteLimit)
			err := s.conn.Write(wctx, websocket.MessageText, msg)
			cancel()
			if err != nil {
				s.cancel()
				return
			}
		}
	}
}

// handle runs one client message; false means it was not JSON and the
// session ends.
func (s *session) handle(data []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || m == nil {
		return false
	}
	str := func(key string) string {
		var v string
		if raw, ok := m[key]; ok && json.Unmarshal(raw, &v) != nil {
			// A number (or other scalar) id is echoed as its text.
			v = strings.Trim(string(raw), "\" \t\r\n")
		}
		return v
	}
	action, topic, id := str("action"), str("topic"), str("id")
	ack, _ := optFlag(m, "ack", false)
	ok := false
	s.mu.Lock()
	switch action {
	case "subscribe":
		if wsTopics[topic] {
			var o *confOptions
			if topic == "confirmation" {
				o = defaultConfOptions()
				if raw, has := m["options"]; has {
					o = parseConfOptions(raw)
				}
			}
			s.subs[topic] = o
			ok = true
		}
	case "update":
		// Only confirmation subscriptions have updatable options.
		if o := s.subs[topic]; o != nil {
			if raw, has := m["options"]; has {
				o.update(raw)
				ok = true
			}
		}
	case "unsubscribe":
		if wsTopics[topic] {
			delete(s.subs, topic)
			ok = true
		}
	case "ping":
		ok, ack, action = true, true, "pong"
	}
	s.mu.Unlock()
	if ack && ok {
		reply := object{{"ack", action}, {"time", nowMillis(time.Now())}}
		if id != "" {
			reply = append(reply, member{"id", id})
		}
		s.enqueue(mustMarshal(reply))
	}
	return true
}
