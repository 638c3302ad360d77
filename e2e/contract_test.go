package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nanokms/nanokms/devnode"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/node"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// fixture reads a real node payload from testdata/node.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "node", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// shape reduces a JSON value to its skeleton: objects keep their keys,
// lists their first element's shape, and leaves their JSON type; a string
// holding a JSON object (the node's "contents" and "block") is shaped too.
func shape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = shape(e)
		}
		return out
	case []any:
		if len(x) == 0 {
			return []any{}
		}
		return []any{shape(x[0])}
	case string:
		if strings.HasPrefix(strings.TrimSpace(x), "{") {
			var inner any
			if json.Unmarshal([]byte(x), &inner) == nil {
				return map[string]any{"(JSON in a string)": shape(inner)}
			}
		}
		return "string"
	case bool:
		return "bool"
	case float64:
		return "number"
	case nil:
		return "null"
	}
	return "?"
}

// sameShape checks that got has the fixture's shape, once the keys in
// extra (the devnode's documented additions, which must be present) are
// set aside.
func sameShape(t *testing.T, what string, got, want []byte, extra []string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v: %s", what, err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	gs := shape(g)
	if m, ok := gs.(map[string]any); ok {
		for _, k := range extra {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: no %q", what, k)
			}
			delete(m, k)
		}
	}
	if ws := shape(w); !reflect.DeepEqual(gs, ws) {
		a, _ := json.Marshal(gs)
		b, _ := json.Marshal(ws)
		t.Errorf("%s has another shape than the fixture:\n got  %s\n want %s", what, a, b)
	}
}

// TestDevnodeContract runs node.Client against the real devnode over HTTP
// and over IPC: every answer parses through the client's types, both
// transports give identical results (and identical bytes), and the
// answers, WebSocket messages and callbacks have the shape of the real
// node's samples in testdata/node.
func TestDevnodeContract(t *testing.T) {
	dev, rpcURL, wsURL, ipcPath := newDevnode(t, devnode.Options{ConfirmDelay: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	httpT := node.NewHTTP(rpcURL, node.HTTPOptions{})
	ipcT, err := node.NewIPC("unix", ipcPath, 1)
	if err != nil {
		t.Fatal(err)
	}
	httpC := node.NewClient(httpT, node.ClientOptions{Timeout: waitLimit})
	ipcC := node.NewClient(ipcT, node.ClientOptions{Timeout: waitLimit})
	defer httpC.Close()
	defer ipcC.Close()

	// A ledger with something in it: genesis sends to ext, ext opens with
	// it, and genesis sends to ext again (receivable).
	w := &world{t: t, dev: dev, direct: httpC, changed: make(chan struct{})}
	ext := custodytest.NewExtAccount(60)
	send1, err := dev.Fund(ctx, ext.Pub, custodytest.XNO(10))
	if err != nil {
		t.Fatal(err)
	}
	open := w.signWith(ext.Key, nano.StateBlock{Account: ext.Pub, Representative: ext.Pub, Balance: custodytest.XNO(10), Link: send1}, nano.SubtypeOpen)
	if _, err := dev.Process(open, nano.SubtypeOpen); err != nil {
		t.Fatal(err)
	}
	send2, err := dev.Fund(ctx, ext.Pub, custodytest.XNO(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.WaitConfirmed(ctx, send2); err != nil {
		t.Fatal(err)
	}
	if err := dev.WaitConfirmed(ctx, open.Hash()); err != nil {
		t.Fatal(err)
	}
	openHash := open.Hash()
	unopened := custodytest.NewExtAccount(61).Pub
	missing := nano.Hash{0xAB}
	sendT, receiveT := dev.Thresholds()

	// agree runs one call on both clients and checks that the results
	// (or the errors' sentinels) are identical.
	agree := func(name string, call func(c *node.Client) (any, error), want error) any {
		t.Helper()
		h, herr := call(httpC)
		i, ierr := call(ipcC)
		if want != nil {
			if !errors.Is(herr, want) || !errors.Is(ierr, want) {
				t.Errorf("%s: HTTP %v, IPC %v; want %v", name, herr, ierr, want)
			}
			return nil
		}
		if herr != nil || ierr != nil {
			t.Fatalf("%s: HTTP %v, IPC %v", name, herr, ierr)
		}
		if !reflect.DeepEqual(h, i) {
			t.Errorf("%s: HTTP %+v, IPC %+v", name, h, i)
		}
		return h
	}

	v := agree("version", func(c *node.Client) (any, error) { return c.Version(ctx) }, nil).(node.Version)
	if v.Network != "dev" || v.NetworkIdentifier != dev.GenesisHash().String() {
		t.Errorf("version %+v", v)
	}
	bc := agree("block_count", func(c *node.Client) (any, error) { return c.BlockCount(ctx) }, nil).(node.BlockCount)
	if bc.Count != 4 || bc.Cemented != 4 {
		t.Errorf("block_count %+v", bc)
	}
	ai := agree("account_info", func(c *node.Client) (any, error) { return c.AccountInfo(ctx, ext.Pub) }, nil).(node.AccountInfo)
	if ai.Frontier != openHash || ai.OpenBlock != openHash || ai.Balance != custodytest.XNO(10) || ai.BlockCount != 1 || ai.Representative != ext.Pub {
		t.Errorf("account_info %+v", ai)
	}
	agree("account_info genesis", func(c *node.Client) (any, error) { return c.AccountInfo(ctx, dev.Genesis()) }, nil)
	agree("account_info unopened", func(c *node.Client) (any, error) { return c.AccountInfo(ctx, unopened) }, node.ErrAccountNotFound)
	for _, h := range []nano.Hash{dev.GenesisHash(), send1, openHash, send2} {
		bi := agree("block_info", func(c *node.Client) (any, error) { return c.BlockInfo(ctx, h) }, nil).(node.BlockInfo)
		if bi.Hash != h || bi.Block.Hash() != h || !bi.Confirmed || !bi.HasConfirmed {
			t.Errorf("block_info %s: %+v", h, bi)
		}
	}
	bi := agree("block_info open", func(c *node.Client) (any, error) { return c.BlockInfo(ctx, openHash) }, nil).(node.BlockInfo)
	if bi.Subtype != nano.SubtypeReceive || bi.Amount != custodytest.XNO(10) || bi.Height != 1 || bi.Block != open {
		t.Errorf("block_info of the open block %+v", bi)
	}
	agree("block_info missing", func(c *node.Client) (any, error) { return c.BlockInfo(ctx, missing) }, node.ErrBlockNotFound)
	bis := agree("blocks_info", func(c *node.Client) (any, error) {
		return c.BlocksInfo(ctx, []nano.Hash{send1, openHash, missing})
	}, nil).(map[nano.Hash]node.BlockInfo)
	if len(bis) != 2 || bis[openHash].Block != open {
		t.Errorf("blocks_info %+v", bis)
	}
	rs := agree("receivable", func(c *node.Client) (any, error) { return c.Receivable(ctx, ext.Pub, 10, nano.Amount{}) }, nil).([]node.Receivable)
	if len(rs) != 1 || rs[0].Hash != send2 || rs[0].Amount != custodytest.XNO(2) || rs[0].Source != dev.Genesis() {
		t.Errorf("receivable %+v", rs)
	}
	ad := agree("active_difficulty", func(c *node.Client) (any, error) { return c.ActiveDifficulty(ctx) }, nil).(node.ActiveDifficulty)
	if ad.NetworkMinimum != sendT || ad.NetworkReceiveMinimum != receiveT {
		t.Errorf("active_difficulty %+v", ad)
	}
	wv := agree("work_validate", func(c *node.Client) (any, error) {
		return c.WorkValidate(ctx, open.Root(), open.Work, receiveT)
	}, nil).(node.WorkValidation)
	if !wv.Valid || !wv.ValidReceive || wv.Value != nano.WorkValue(open.Root(), open.Work) {
		t.Errorf("work_validate %+v", wv)
	}
	for _, c := range []*node.Client{httpC, ipcC} {
		if _, err := c.WorkGenerate(ctx, send2, sendT); err != nil { // checked locally by the client
			t.Errorf("work_generate: %v", err)
		}
	}
	// process: a resend is success on both, a bad signature and a fork
	// are the same sentinel on both.
	if got := agree("process again", func(c *node.Client) (any, error) { return c.Process(ctx, open, nano.SubtypeOpen) }, nil).(nano.Hash); got != openHash {
		t.Errorf("process again: %s", got)
	}
	fork := w.signWith(ext.Key, nano.StateBlock{Account: ext.Pub, Representative: unopened, Balance: custodytest.XNO(10), Link: send1}, nano.SubtypeOpen)
	agree("process fork", func(c *node.Client) (any, error) { return c.Process(ctx, fork, nano.SubtypeUnknown) }, node.ErrFork)
	bad := fork
	bad.Signature[3] ^= 1
	agree("process bad signature", func(c *node.Client) (any, error) { return c.Process(ctx, bad, nano.SubtypeUnknown) }, node.ErrBadSignature)

	// The raw answers: the same bytes over both transports, and the
	// fixtures' shapes.
	raw := func(name string, req map[string]any) []byte {
		t.Helper()
		body, _ := json.Marshal(req)
		h, err := httpT.Do(ctx, body)
		if err != nil {
			t.Fatal(err)
		}
		i, err := ipcT.Do(ctx, body)
		if err != nil {
			t.Fatal(err)
		}
		if string(h) != string(i) {
			t.Errorf("%s: HTTP %s, IPC %s", name, h, i)
		}
		return h
	}
	var req map[string]any
	json.Unmarshal(fixture(t, "rpc_account_info_request.json"), &req)
	req["account"] = ext.Pub.Address()
	sameShape(t, "account_info", raw("account_info", req), fixture(t, "rpc_account_info_response.json"), nil)
	req = nil
	json.Unmarshal(fixture(t, "rpc_block_info_request.json"), &req)
	req["hash"] = openHash.String()
	sameShape(t, "block_info", raw("block_info", req), fixture(t, "rpc_block_info_response.json"), []string{"confirmed", "subtype"})
	req = nil
	json.Unmarshal(fixture(t, "rpc_block_hash_request.json"), &req)
	if got, want := raw("block_hash", req), fixture(t, "rpc_block_hash_response.json"); !sameJSON(t, got, want) {
		t.Errorf("block_hash of the fixture block: %s, want %s", got, want)
	}
	for _, r := range []map[string]any{
		{"action": "receivable", "account": ext.Pub.Address(), "count": "10", "source": "true"},
		{"action": "blocks_info", "hashes": []string{send1.String(), openHash.String()}, "json_block": "true"},
		{"action": "account_balance", "account": ext.Pub.Address()},
		{"action": "process", "json_block": "true", "block": json.RawMessage(mustJSON(t, bad))},
		{"action": "no_such_action"},
	} {
		raw(r["action"].(string), r)
	}

	// WebSocket: the fixture's subscription (with a valid account) is
	// acknowledged as in the fixture, and a confirmation has the shape of
	// the node's.
	conn, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	var sub map[string]any
	json.Unmarshal(fixture(t, "ws_subscribe_confirmation_accounts.json"), &sub)
	sub["options"].(map[string]any)["accounts"] = []string{ext.Pub.Address()}
	if err := conn.Write(ctx, websocket.MessageText, mustJSON(t, sub)); err != nil {
		t.Fatal(err)
	}
	_, ack, err := conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sameShape(t, "ack", ack, fixture(t, "ws_ack.json"), nil)
	if m, err := node.ParseWSMessage(ack); err != nil || m.Ack != "subscribe" || m.ID != "sub-1" {
		t.Errorf("ack %s: %+v %v", ack, m, err)
	}
	nws, err := node.DialWS(ctx, wsURL, node.WSOptions{Accounts: []nano.PublicKey{ext.Pub}})
	if err != nil {
		t.Fatal(err)
	}
	defer nws.Close()
	send3, err := dev.Fund(ctx, ext.Pub, custodytest.XNO(1))
	if err != nil {
		t.Fatal(err)
	}
	_, msg, err := conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sameShape(t, "confirmation", msg, fixture(t, "ws_confirmation.json"), nil)
	m, err := node.ParseWSMessage(msg)
	if err != nil || m.Confirmation == nil || m.Confirmation.Hash != send3 || m.Confirmation.Subtype != nano.SubtypeSend {
		t.Fatalf("confirmation %s: %+v %v", msg, m, err)
	}
	select {
	case c := <-nws.Confirmations():
		if c.Hash != send3 || c.Block.Hash() != send3 || c.Account != dev.Genesis() || c.Amount != custodytest.XNO(1) {
			t.Errorf("node.WS confirmation %+v", c)
		}
	case <-ctx.Done():
		t.Fatal("node.WS delivered no confirmation")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(va, vb)
}
