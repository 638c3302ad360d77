package node

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/nanokms/nanokms/nano"
)

// TestRejection classifies each process error of nano-node (the
// devnode's strings, devnode/errors.go) by which the node refuses a block,
// and only those.
func TestRejection(t *testing.T) {
	cases := []struct {
		msg  string
		want error // nil: not a rejection
	}{
		{"Gap source block", ErrGapSource},
		{"Gap previous block", ErrGapPrevious},
		{"Fork", ErrFork},
		{"Old block", ErrOldBlock}, // the node does not have it (block_info: Block not found)
		{"Bad signature", ErrBadSignature},
		{"Balance and amount delta do not match", ErrBalanceMismatch},
		{"Negative spend", ErrBalanceMismatch},
		{"Unreceivable", ErrUnreceivable},
		{"Invalid block balance for given subtype", ErrSubtypeMismatch},
		{"This block cannot follow the previous block", ErrBlockPosition},
		{"Burning account", ErrBurningAccount},
		{"Block work is insufficient", nil},
		{"Block work is less than threshold", nil},
		{"Error processing block", nil},
		{"Something new", nil},
	}
	n := newFakeNode(t)
	var msg atomic.Value
	n.handle("process", func(map[string]any) []byte { return nodeError(msg.Load().(string)) })
	c, _ := newClients(t, n)
	b := testBlock(3, nano.Hash{3}, 1, nano.Hash{})
	for _, tc := range cases {
		msg.Store(tc.msg)
		_, err := c.Process(testCtx(t), b, nano.SubtypeSend)
		got, ok := Rejection(err)
		if ok != (tc.want != nil) || got != tc.want {
			t.Errorf("%q: Rejection(%v) = %v, %v; want %v", tc.msg, err, got, ok, tc.want)
		}
		if ok && got.Error() == "" {
			t.Errorf("%q: the class has no name", tc.msg)
		}
	}
	// The same messages from another action are not a refusal of a block.
	n.handle("block_info", func(map[string]any) []byte { return nodeError("Gap source block") })
	if _, err := c.BlockInfo(testCtx(t), nano.Hash{1}); err == nil {
		t.Fatal("block_info answered")
	} else if _, ok := Rejection(err); ok {
		t.Errorf("a block_info error is a rejection: %v", err)
	}
	if _, ok := Rejection(ErrTransport); ok {
		t.Error("a transport failure is a rejection")
	}
	if _, ok := Rejection(nil); ok {
		t.Error("nil is a rejection")
	}
}

// TestOldBlockLookupFails: process answers "Old block" and the lookup of
// the block fails in transit. Whether the node has the block is unknown:
// the error is the transport failure (retried), not a rejection that would
// have the block reported refused.
func TestOldBlockLookupFails(t *testing.T) {
	n := newFakeNode(t)
	n.handle("process", func(map[string]any) []byte { return nodeError("Old block") })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"block_info"`)) {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(n.serve(body))
	}))
	defer srv.Close()
	c := NewClient(NewHTTP(srv.URL, HTTPOptions{}), fastOpts())
	defer c.Close()
	_, err := c.Process(testCtx(t), testBlock(3, nano.Hash{3}, 1, nano.Hash{}), nano.SubtypeSend)
	if !errors.Is(err, ErrTransport) || errors.Is(err, ErrOldBlock) {
		t.Fatalf("Process: %v; want the transport failure", err)
	}
	if _, ok := Rejection(err); ok {
		t.Fatalf("reported as a rejection: %v", err)
	}
}

// TestLedgerMarksRejections: Publish wraps the node's refusals of the
// block with LedgerOptions.Rejected (the gaps too), and only them.
func TestLedgerMarksRejections(t *testing.T) {
	errRejected := errors.New("rejected")
	n := newFakeNode(t)
	var msg atomic.Value
	n.handle("process", func(map[string]any) []byte { return nodeError(msg.Load().(string)) })
	l := newLedger(t, n, LedgerOptions{Rejected: errRejected})
	b := testBlock(5, nano.Hash{5}, 400, nano.Hash{9})
	for _, tc := range []struct {
		msg                 string
		rejected, permanent bool
	}{
		{"Gap source block", true, false},
		{"Gap previous block", true, false},
		{"Fork", true, true},
		{"Bad signature", true, true},
		{"Block work is insufficient", false, false},
	} {
		msg.Store(tc.msg)
		_, err := l.Publish(testCtx(t), b, nano.SubtypeSend)
		if err == nil || errors.Is(err, errRejected) != tc.rejected || errors.Is(err, errPermanent) != tc.permanent {
			t.Errorf("%q: %v; want rejected %v, permanent %v", tc.msg, err, tc.rejected, tc.permanent)
		}
	}
}
