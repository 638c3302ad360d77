package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/nano"
)

// callbackBody builds a callback body for b as the node prints one.
func callbackBody(t *testing.T, b nano.StateBlock, amount nano.Amount) []byte {
	t.Helper()
	blk, err := json.MarshalIndent(b, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]string{
		"account": b.Account.Address(), "hash": b.Hash().String(), "block": string(blk) + "\n", "amount": amount.String(),
	})
	return out
}

// loopback is the peer address of the test's requests: an allowed source
// by default (httptest.NewRequest's own, 192.0.2.1, is not).
const loopback = "127.0.0.1:51234"

// post sends body to h as the node does (a POST of application/json from
// loopback) and returns the status.
func post(h http.Handler, body []byte) int {
	return postAs(h, http.MethodPost, "/", "application/json", loopback, body)
}

func postAs(h http.Handler, method, path, contentType, remote string, body []byte) int {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	r.RemoteAddr = remote
	h.ServeHTTP(rec, r)
	return rec.Code
}

// tamper returns the callback fixture with its embedded block's field
// (or, with block false, the body's own field) set to value.
func tamper(t *testing.T, name, field, value string, inBlock bool) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(MustFixture(t, name), &m); err != nil {
		t.Fatal(err)
	}
	if !inBlock {
		m[field] = value
	} else {
		var blk map[string]any
		if err := json.Unmarshal([]byte(m["block"].(string)), &blk); err != nil {
			t.Fatal(err)
		}
		blk[field] = value
		b, _ := json.Marshal(blk)
		m["block"] = string(b)
	}
	out, _ := json.Marshal(m)
	return out
}

// signedBlock returns a block of the test key at index, signed.
func signedBlock(t *testing.T, index uint32, previous nano.Hash, balance uint64, link nano.Hash) (nano.StateBlock, nano.PublicKey) {
	t.Helper()
	var seed nano.Seed
	seed[0] = 0xcb
	k := nano.DeriveKey(&seed, index)
	sk := nano.NewSigningKey(&k)
	defer sk.Wipe()
	b := nano.StateBlock{Account: sk.Public(), Previous: previous, Representative: sk.Public(), Balance: nano.AmountFromUint64(balance), Link: link}
	h := b.Hash()
	b.Signature = sk.Sign(h[:])
	b.Work = nano.Work(1)
	return b, sk.Public()
}

// addBlockSubtype registers b with the node's "subtype" in its
// block_info answer.
func addBlockSubtype(t *testing.T, n *fakeNode, b nano.StateBlock, amount nano.Amount, subtype string) {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(blockInfoBody(t, b, amount, "true"), &m); err != nil {
		t.Fatal(err)
	}
	m["subtype"] = subtype
	out, _ := json.Marshal(m)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocks[b.Hash()] = out
}

func TestParseCallbackFixtures(t *testing.T) {
	send, err := ParseCallback(MustFixture(t, "http_callback_send.json"))
	if err != nil {
		t.Fatal(err)
	}
	if send.Hash.String() != hashCallbackSend || !send.IsSend || send.Subtype != nano.SubtypeSend || send.Amount.String() != "90000000000000000000000000000000000" {
		t.Errorf("send %+v", send)
	}
	recv, err := ParseCallback(MustFixture(t, "http_callback_receive.json"))
	if err != nil {
		t.Fatal(err)
	}
	if recv.Hash.String() != hashCallbackRecv || recv.IsSend || recv.Subtype != nano.SubtypeUnknown {
		t.Errorf("receive %+v", recv)
	}
}

func TestParseCallbackRefuses(t *testing.T) {
	fix := string(MustFixture(t, "http_callback_send.json"))
	for _, tt := range []struct {
		name string
		body string
		want error
	}{
		{"not json", `{"account": `, ErrBadResponse},
		{"an array", `[]`, ErrBadResponse},
		{"a number value", `{"hash": 1}`, ErrBadResponse},
		{"unknown field", strings.Replace(fix, `"subtype"`, `"extra": "1", "subtype"`, 1), ErrBadResponse},
		{"field twice", strings.Replace(fix, `"subtype": "send"`, `"subtype": "send", "subtype": "send"`, 1), ErrBadResponse},
		{"trailing data", fix + "{}", ErrBadResponse},
		{"no block", string(tamperDelete(t, fix, "block")), ErrBadResponse},
		{"no amount", string(tamperDelete(t, fix, "amount")), ErrBadResponse},
		{"block as an object", string(blockAsObject(t, fix)), ErrBadResponse},
		{"is_send other", string(tamper(t, "http_callback_send.json", "is_send", "1", false)), ErrBadResponse},
		{"subtype other", string(tamper(t, "http_callback_send.json", "subtype", "gift", false)), ErrBadResponse},
		{"amount negative", string(tamper(t, "http_callback_send.json", "amount", "-1", false)), ErrBadResponse},
		{"unsigned block", string(tamper(t, "http_callback_send.json", "signature", "", true)), ErrBadResponse},
		{"hash not the block's", string(tamper(t, "http_callback_send.json", "balance", "1", true)), ErrHashMismatch},
		{"account not the block's", string(tamper(t, "http_callback_send.json", "account", acct1, false)), ErrInconsistent},
		{"is_send contradicts subtype", string(tamper(t, "http_callback_send.json", "is_send", "false", false)), ErrInconsistent},
		{"over the bound", `{"hash": "` + strings.Repeat("0", MaxCallbackBody) + `"}`, ErrBadResponse},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cb, err := ParseCallback([]byte(tt.body))
			if !errors.Is(err, tt.want) || cb != (Callback{}) {
				t.Errorf("ParseCallback = %+v, %v; want an error wrapping %v", cb, err, tt.want)
			}
		})
	}
}

func tamperDelete(t *testing.T, body, field string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	delete(m, field)
	out, _ := json.Marshal(m)
	return out
}

func blockAsObject(t *testing.T, body string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	var blk map[string]any
	if err := json.Unmarshal([]byte(m["block"].(string)), &blk); err != nil {
		t.Fatal(err)
	}
	m["block"] = blk
	out, _ := json.Marshal(m)
	return out
}

// TestCallbackVerifiesAgainstTheNode: each genuine body is checked with
// block_info and delivered to the feed once; a repeat is a duplicate.
func TestCallbackVerifiesAgainstTheNode(t *testing.T) {
	n := callbackNode(t)
	c, _ := newClients(t, n)
	feed := NewConfirmationFeed(FeedOptions{})
	var results []CallbackResult
	h := NewCallbackHandler(c, feed, CallbackOptions{Observe: func(r CallbackResult) { results = append(results, r) }})
	for _, name := range []string{"http_callback_send.json", "http_callback_receive.json", "http_callback_send.json"} {
		if code := post(h, MustFixture(t, name)); code != http.StatusOK {
			t.Fatalf("%s: status %d", name, code)
		}
	}
	for _, want := range []string{hashCallbackSend, hashCallbackRecv} {
		got := <-feed.Confirmations()
		if got.Hash.String() != want || got.Block.Hash().String() != want {
			t.Errorf("delivered %s, want %s", got.Hash, want)
		}
	}
	if st := h.Stats(); st != (CallbackStats{Received: 3, Verified: 2, Duplicate: 1}) {
		t.Errorf("stats %+v", st)
	}
	if want := []CallbackResult{CallbackVerified, CallbackVerified, CallbackDuplicate}; !equalResults(results, want) {
		t.Errorf("observed %v, want %v", results, want)
	}
	if len(n.requestsFor("block_info")) != 3 {
		t.Errorf("%d block_info requests", len(n.requestsFor("block_info")))
	}
}

func equalResults(a, b []CallbackResult) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCallbackForgeries: a body that lies, or is not a callback, reaches
// nothing: each is counted rejected, and the feed stays empty.
func TestCallbackForgeries(t *testing.T) {
	n := callbackNode(t)
	c, _ := newClients(t, n)
	// A block the node has, whose signature is not its account's.
	badSig, _ := signedBlock(t, 1, nano.Hash{7}, 5, nano.Hash{})
	badSig.Signature[0] ^= 1
	n.addBlock(badSig, nano.AmountFromUint64(1), "true")
	// A receive, as the node's block_info says.
	recv, _ := signedBlock(t, 6, nano.Hash{7}, 9, nano.Hash{3})
	addBlockSubtype(t, n, recv, nano.AmountFromUint64(4), "receive")
	claimsSend := callbackBody(t, recv, nano.AmountFromUint64(4))
	claimsSend = bytes.Replace(claimsSend, []byte(`{`), []byte(`{"is_send": "true", "subtype": "send", `), 1)
	feed := NewConfirmationFeed(FeedOptions{})
	h := NewCallbackHandler(c, feed, CallbackOptions{MaxBody: 4096, Path: "/callback"})
	h200 := func(body []byte) int {
		return postAs(h, http.MethodPost, "/callback", "application/json", loopback, body)
	}
	for _, tt := range []struct {
		name string
		code int
	}{
		// Lies, answered 200: the sender learns nothing.
		{"not on the node", h200(callbackBody(t, testBlock(8, nano.Hash{8}, 1, nano.Hash{}), nano.AmountFromUint64(1)))},
		{"hash not the block's", h200(tamper(t, "http_callback_send.json", "balance", "1", true))},
		{"other signature", h200(tamper(t, "http_callback_send.json", "signature", strings.Repeat("AB", 64), true))},
		{"other amount", h200(tamper(t, "http_callback_send.json", "amount", "1", false))},
		{"other account", h200(tamper(t, "http_callback_send.json", "account", acct1, false))},
		{"other subtype", h200(claimsSend)},
		{"signature not the account's", h200(callbackBody(t, badSig, nano.AmountFromUint64(1)))},
	} {
		if tt.code != http.StatusOK {
			t.Errorf("%s: status %d, want 200", tt.name, tt.code)
		}
	}
	for _, tt := range []struct {
		name, method, path, contentType string
		body                            []byte
		code                            int
	}{
		{"malformed", http.MethodPost, "/callback", "application/json", []byte(`{"hash": 1}`), http.StatusBadRequest},
		{"oversized", http.MethodPost, "/callback", "application/json", bytes.Repeat([]byte(" "), 5000), http.StatusRequestEntityTooLarge},
		{"text/plain", http.MethodPost, "/callback", "text/plain", MustFixture(t, "http_callback_send.json"), http.StatusUnsupportedMediaType},
		{"no content type", http.MethodPost, "/callback", "", MustFixture(t, "http_callback_send.json"), http.StatusUnsupportedMediaType},
		{"GET", http.MethodGet, "/callback", "application/json", nil, http.StatusMethodNotAllowed},
		{"other path", http.MethodPost, "/", "application/json", MustFixture(t, "http_callback_send.json"), http.StatusNotFound},
	} {
		if code := postAs(h, tt.method, tt.path, tt.contentType, loopback, tt.body); code != tt.code {
			t.Errorf("%s: status %d, want %d", tt.name, code, tt.code)
		}
	}
	if st := h.Stats(); st != (CallbackStats{Received: 13, Rejected: 13}) {
		t.Errorf("stats %+v", st)
	}
	if st := feed.Stats(); st != (FeedStats{}) {
		t.Fatalf("the feed was given %+v", st)
	}
	// A charset parameter is allowed; the genuine bodies still verify.
	for _, name := range []string{"http_callback_send.json", "http_callback_receive.json"} {
		if code := postAs(h, http.MethodPost, "/callback", "application/json; charset=utf-8", loopback, MustFixture(t, name)); code != http.StatusOK {
			t.Errorf("%s: status %d", name, code)
		}
	}
	if st := h.Stats(); st.Verified != 2 || feed.Stats().Delivered != 2 {
		t.Errorf("stats %+v, feed %+v", st, feed.Stats())
	}
}

// TestCallbackSources: only the allowed sources are served; anyone else
// is refused with 403 before the body is read or the node asked.
func TestCallbackSources(t *testing.T) {
	n := callbackNode(t)
	c, _ := newClients(t, n)
	body := MustFixture(t, "http_callback_send.json")
	for _, tt := range []struct {
		name    string
		sources []netip.Prefix
		remote  string
		code    int
	}{
		{"loopback by default", nil, "127.0.0.1:1", http.StatusOK},
		{"::1 by default", nil, "[::1]:1", http.StatusOK},
		{"mapped loopback by default", nil, "[::ffff:127.0.0.1]:1", http.StatusOK},
		{"elsewhere by default", nil, "192.0.2.1:1", http.StatusForbidden},
		{"listed prefix", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, "192.0.2.1:1", http.StatusOK},
		{"loopback when not listed", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, "127.0.0.1:1", http.StatusForbidden},
		{"mapped IPv4 in a listed prefix", []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32")}, "[::ffff:192.0.2.7]:1", http.StatusOK},
		{"no address", nil, "@", http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(n.requestsFor("block_info"))
			h := NewCallbackHandler(c, NewConfirmationFeed(FeedOptions{}), CallbackOptions{Sources: tt.sources})
			if code := postAs(h, http.MethodPost, "/", "application/json", tt.remote, body); code != tt.code {
				t.Fatalf("status %d, want %d", code, tt.code)
			}
			st := h.Stats()
			if tt.code == http.StatusForbidden && (st != CallbackStats{Received: 1, Forbidden: 1} || len(n.requestsFor("block_info")) != before) {
				t.Errorf("stats %+v; %d block_info requests", st, len(n.requestsFor("block_info"))-before)
			}
		})
	}
}

// TestCallbackOurs: a block neither of an account of ours nor a send to
// one is ignored without asking the node; a send to one of ours is
// checked (its subtype learnt from the block before it) and delivered;
// anything else to one of ours is ignored once checked.
func TestCallbackOurs(t *testing.T) {
	n := newFakeNode(t)
	c, _ := newClients(t, n)
	ours := map[nano.PublicKey]bool{}
	_, dest := signedBlock(t, 9, nano.Hash{}, 0, nano.Hash{})
	ours[dest] = true
	open, _ := signedBlock(t, 2, nano.Hash{}, 100, nano.Hash{5})
	send, _ := signedBlock(t, 2, open.Hash(), 60, nano.Hash(dest))
	// A receive whose source hash happens to be dest's key: not a send.
	recv, _ := signedBlock(t, 2, send.Hash(), 80, nano.Hash(dest))
	for _, b := range []struct {
		b      nano.StateBlock
		amount uint64
	}{{open, 100}, {send, 40}, {recv, 20}} {
		n.addBlock(b.b, nano.AmountFromUint64(b.amount), "true")
	}
	other, _ := signedBlock(t, 3, nano.Hash{}, 10, nano.Hash{6})
	feed := NewConfirmationFeed(FeedOptions{})
	h := NewCallbackHandler(c, feed, CallbackOptions{Ours: func(k nano.PublicKey) bool { return ours[k] }})

	if code := post(h, callbackBody(t, other, nano.AmountFromUint64(10))); code != http.StatusOK {
		t.Errorf("other: status %d", code)
	}
	if st := h.Stats(); st.Ignored != 1 || len(n.requestsFor("block_info")) != 0 {
		t.Errorf("a block not ours: stats %+v, %d block_info requests", st, len(n.requestsFor("block_info")))
	}
	if code := post(h, callbackBody(t, send, nano.AmountFromUint64(40))); code != http.StatusOK {
		t.Errorf("send: status %d", code)
	}
	if got := <-feed.Confirmations(); got.Hash != send.Hash() || got.Subtype != nano.SubtypeSend || got.Account != send.Account {
		t.Errorf("delivered %+v", got)
	}
	if code := post(h, callbackBody(t, recv, nano.AmountFromUint64(20))); code != http.StatusOK {
		t.Errorf("receive: status %d", code)
	}
	if st := h.Stats(); st != (CallbackStats{Received: 3, Verified: 1, Ignored: 2}) || feed.Stats().Delivered != 1 {
		t.Errorf("stats %+v, feed %+v", st, feed.Stats())
	}
	// A send between two accounts of ours is delivered as a send (what
	// auto-receive acts on), though the node does not print the subtype.
	ourOpen, mine := signedBlock(t, 10, nano.Hash{}, 50, nano.Hash{4})
	ours[mine] = true
	internal, _ := signedBlock(t, 10, ourOpen.Hash(), 20, nano.Hash(dest))
	n.addBlock(ourOpen, nano.AmountFromUint64(50), "true")
	n.addBlock(internal, nano.AmountFromUint64(30), "true")
	if code := post(h, callbackBody(t, internal, nano.AmountFromUint64(30))); code != http.StatusOK {
		t.Errorf("internal send: status %d", code)
	}
	if got := <-feed.Confirmations(); got.Hash != internal.Hash() || got.Subtype != nano.SubtypeSend {
		t.Errorf("delivered %+v", got)
	}
}

// TestCallbackUnverified: what cannot be checked now is not delivered,
// and is answered 503: a block the node does not say is confirmed, an
// epoch block, a node that cannot be asked.
func TestCallbackUnverified(t *testing.T) {
	n := newFakeNode(t)
	c, _ := newClients(t, n)
	pending, _ := signedBlock(t, 4, nano.Hash{1}, 5, nano.Hash{})
	n.addBlock(pending, nano.AmountFromUint64(0), "false")
	epoch, _ := signedBlock(t, 5, nano.Hash{1}, 5, nano.EpochV2Link)
	n.addBlock(epoch, nano.AmountFromUint64(0), "true")
	feed := NewConfirmationFeed(FeedOptions{})
	h := NewCallbackHandler(c, feed, CallbackOptions{})
	for _, b := range []nano.StateBlock{pending, epoch} {
		if code := post(h, callbackBody(t, b, nano.AmountFromUint64(0))); code != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d", b.Hash(), code)
		}
	}
	down := NewClient(NewHTTP("http://127.0.0.1:1", HTTPOptions{}), ClientOptions{Retries: -1})
	defer down.Close()
	hd := NewCallbackHandler(down, feed, CallbackOptions{})
	if code := post(hd, MustFixture(t, "http_callback_send.json")); code != http.StatusServiceUnavailable {
		t.Errorf("node down: status %d", code)
	}
	if st, sd := h.Stats(), hd.Stats(); st.Unverified != 2 || sd.Unverified != 1 || st.Received != 2 || feed.Stats() != (FeedStats{}) {
		t.Errorf("stats %+v %+v, feed %+v", st, sd, feed.Stats())
	}
}
