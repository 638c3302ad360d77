package node

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/nano"
)

// callbackBody builds a callback body for b as the node prints one.
func callbackBody(t *testing.T, b nano.StateBlock) []byte {
	t.Helper()
	blk, err := json.MarshalIndent(b, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]string{
		"account": b.Account.Address(), "hash": b.Hash().String(), "block": string(blk) + "\n", "amount": "1",
	})
	return out
}

func postCallback(h http.Handler, body []byte) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
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

func TestCallbackForgeries(t *testing.T) {
	n := callbackNode(t)
	c, _ := newClients(t, n)
	h := NewCallbackHandler(c, CallbackOptions{MaxBody: 4096})
	forgeries := map[string][]byte{
		// A well-formed body for a block the node does not have.
		"not on the node": callbackBody(t, testBlock(8, nano.Hash{8}, 1, nano.Hash{})),
		// The stated hash is not the block's.
		"hash not the block's": tamper(t, "http_callback_send.json", "balance", "1", true),
		// Same hash, another signature than the node's block.
		"other signature": tamper(t, "http_callback_send.json", "signature", strings.Repeat("AB", 64), true),
		// Same block, another amount than the node's.
		"other amount": tamper(t, "http_callback_send.json", "amount", "1", false),
		// The account field names someone else.
		"other account": tamper(t, "http_callback_send.json", "account", acct1, false),
	}
	for name, body := range forgeries {
		if code := postCallback(h, body); code != http.StatusOK {
			t.Errorf("%s: status %d", name, code)
		}
	}
	st := h.Stats()
	if st.Forged != uint64(len(forgeries)) || st.Verified != 0 || len(n.requestsFor("block_info")) != 3 {
		t.Errorf("stats %+v", st)
	}
	select {
	case ev := <-h.Events():
		t.Fatalf("event from a forged body: %s", ev.Hash)
	default:
	}
	// Malformed, oversized, wrong method.
	if code := postCallback(h, []byte(`{"hash": 1}`)); code != http.StatusBadRequest {
		t.Errorf("malformed: %d", code)
	}
	if code := postCallback(h, bytes.Repeat([]byte(" "), 5000)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized: %d", code)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", rec.Code)
	}
	if st := h.Stats(); st.Malformed != 3 || st.Received != uint64(len(forgeries))+3 {
		t.Errorf("stats %+v", st)
	}
	// The genuine bodies still verify.
	for _, name := range []string{"http_callback_send.json", "http_callback_receive.json"} {
		postCallback(h, MustFixture(t, name))
	}
	if st := h.Stats(); st.Verified != 2 || len(h.Events()) != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestCallbackNodeDown(t *testing.T) {
	n := callbackNode(t)
	c, _ := newClients(t, n)
	c.Close()
	down := NewClient(NewHTTP("http://127.0.0.1:1", HTTPOptions{}), ClientOptions{Retries: -1})
	h := NewCallbackHandler(down, CallbackOptions{})
	if code := postCallback(h, MustFixture(t, "http_callback_send.json")); code != http.StatusServiceUnavailable {
		t.Errorf("status %d", code)
	}
	if st := h.Stats(); st.Unverified != 1 || st.Forged != 0 {
		t.Errorf("stats %+v", st)
	}
}
