package node

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nanokms/nanokms/nano"
)

// TestIPCAndHTTPAgree runs the same requests over HTTP, IPC over TCP and
// IPC over a Unix socket against one backend and compares the results.
func TestIPCAndHTTPAgree(t *testing.T) {
	n := callbackNode(t)
	n.handle("receivable", func(map[string]any) []byte {
		return []byte(`{"blocks": {"` + hashCallbackSend + `": {"amount": "90000000000000000000000000000000000", "source": "nano_1ipx847tk8o46pwxt5qjdbncjqcbwcc1rrmqnkztrfjy5k7z4imsrata9est"}}}`)
	})
	httpc, tcpc := newClients(t, n)
	ut, err := NewIPC("unix", ipcListener(t, n, "unix"), IPCLegacyUnsafe)
	if err != nil {
		t.Fatal(err)
	}
	unixc := NewClient(ut, fastOpts())
	defer unixc.Close()

	type result struct {
		V   any
		Err string
	}
	run := func(c *Client) []result {
		ctx := testCtx(t)
		var out []result
		add := func(v any, err error) {
			r := result{V: v}
			if err != nil {
				r.Err = err.Error()
			}
			out = append(out, r)
		}
		add(c.AccountInfo(ctx, MustAccount(t, "nano_3qb1qckpady6njewfotrdrcgakrgbfh7ytqfrd9r8txsx7d91b9pu6z1ixrg")))
		add(c.AccountInfo(ctx, MustAccount(t, acct1)))
		add(c.BlockInfo(ctx, MustHash(t, hashBlockInfo)))
		add(c.BlockInfo(ctx, MustHash(t, hashCallbackRecv)))
		add(c.BlockInfo(ctx, nano.Hash{7}))
		add(c.BlocksInfo(ctx, []nano.Hash{MustHash(t, hashCallbackSend)}))
		add(c.Receivable(ctx, MustAccount(t, acct1), 10, nano.Amount{}))
		add(c.BlockCount(ctx))
		add(c.Version(ctx))
		return out
	}
	a, b, u := run(httpc), run(tcpc), run(unixc)
	if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(a, u) {
		t.Errorf("transports disagree:\nhttp %+v\ntcp  %+v\nunix %+v", a, b, u)
	}
	if a[1].Err == "" || a[4].Err == "" || a[0].Err != "" || a[2].Err != "" {
		t.Errorf("unexpected outcomes %+v", a)
	}
}

func TestNodeErrorsAreTyped(t *testing.T) {
	cases := []struct {
		msg  string
		want error
	}{
		{"Account not found", ErrAccountNotFound},
		{"Block not found", ErrBlockNotFound},
		{"Fork", ErrFork},
		{"Old block", ErrOldBlock},
		{"Gap previous block", ErrGapPrevious},
		{"Gap previous", ErrGapPrevious},
		{"Gap source block", ErrGapSource},
		{"Block work is less than threshold", ErrInsufficientWork},
		{"Block work is insufficient", ErrInsufficientWork},
		{"Bad signature", ErrBadSignature},
		{"Balance and amount delta do not match", ErrBalanceMismatch},
		{"Unreceivable", ErrUnreceivable},
		{"Invalid block balance for given subtype", ErrSubtypeMismatch},
		{"Unknown command", ErrUnknownAction},
		{"fork", ErrFork}, // case-insensitive
		{"GAP SOURCE BLOCK", ErrGapSource},
		{"Account not found in wallet", nil},
		{"Something new", nil},
	}
	n := newFakeNode(t)
	var msg atomic.Value
	n.handle("process", func(map[string]any) []byte { return nodeError(msg.Load().(string)) })
	c, _ := newClients(t, n)
	b := testBlock(3, nano.Hash{3}, 1, nano.Hash{})
	for _, tc := range cases {
		msg.Store(tc.msg)
		before := len(n.requestsFor("process"))
		_, err := c.Process(testCtx(t), b, nano.SubtypeSend)
		var ne *NodeError
		if !errors.As(err, &ne) {
			t.Errorf("%q: %v is not a *NodeError", tc.msg, err)
			continue
		}
		if ne.Action != "process" || ne.Message != tc.msg || ne.Err != tc.want {
			t.Errorf("%q: %+v", tc.msg, ne)
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%q: errors.Is fails", tc.msg)
		}
		// Node-level errors are never retried.
		if got := len(n.requestsFor("process")) - before; got != 1 {
			t.Errorf("%q: %d process requests", tc.msg, got)
		}
	}
	if !IsPermanent(newNodeError("process", "Fork")) || IsPermanent(newNodeError("process", "Gap previous block")) {
		t.Error("IsPermanent")
	}
}

func TestTransportFailuresAreRetried(t *testing.T) {
	n := newFakeNode(t)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		httpNodeHandler(n)(w, r)
	}))
	defer srv.Close()
	c := NewClient(NewHTTP(srv.URL, HTTPOptions{}), fastOpts())
	if _, err := c.BlockCount(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Errorf("%d calls", calls.Load())
	}
	// Out of retries: the transport error comes back.
	calls.Store(-10)
	_, err := c.BlockCount(testCtx(t))
	if !errors.Is(err, ErrTransport) {
		t.Errorf("err %v", err)
	}
}

func httpNodeHandler(n *fakeNode) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		body, _ = readAll(r)
		_, _ = w.Write(n.serve(body))
	}
}

func readAll(r *http.Request) ([]byte, error) {
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		k, err := r.Body.Read(buf)
		sb.Write(buf[:k])
		if err != nil {
			return []byte(sb.String()), nil
		}
	}
}

func TestIPCReconnectsAfterADroppedConnection(t *testing.T) {
	n := newFakeNode(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	var server sync.WaitGroup // the server's goroutines end before the test does
	defer server.Wait()
	defer l.Close()
	server.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			server.Go(func() {
				defer c.Close()
				first := conns.Add(1) == 1
				for {
					body, err := readIPCRequest(c)
					if err != nil {
						return
					}
					if first {
						return // drop the connection without answering
					}
					answer := n.serve(body)
					_, _ = c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(answer))), answer...))
				}
			})
		}
	})
	tr, err := NewIPC("tcp", l.Addr().String(), IPCLegacy)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(tr, fastOpts())
	defer c.Close()
	for i := 0; i < 3; i++ { // one connection serves several requests
		if _, err := c.BlockCount(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if conns.Load() != 2 {
		t.Errorf("%d connections", conns.Load())
	}
}

func TestAnswersAreBounded(t *testing.T) {
	// IPC: a length over the bound is refused before reading the body.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The server holds the connection open until the client has its
	// answer (so the client sees the length, not an early EOF), and is
	// done before the test returns.
	clientDone := make(chan struct{})
	var server sync.WaitGroup
	defer server.Wait()
	server.Go(func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := readIPCRequest(c); err == nil {
			_, _ = c.Write([]byte{0xff, 0xff, 0xff, 0xff})
		}
		<-clientDone
	})
	tr, err := NewIPC("tcp", l.Addr().String(), IPCLegacy)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(tr, fastOpts())
	defer c.Close()
	_, err = c.BlockCount(testCtx(t))
	close(clientDone)
	if !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("ipc: %v", err)
	}
	// HTTP.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"count": "` + strings.Repeat("1", 2000) + `"}`))
	}))
	defer srv.Close()
	hc := NewClient(NewHTTP(srv.URL, HTTPOptions{MaxResponse: 1000}), fastOpts())
	if _, err := hc.BlockCount(testCtx(t)); !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("http: %v", err)
	}
}

func TestNewIPCValidates(t *testing.T) {
	if _, err := NewIPC("udp", "x", IPCLegacy); err == nil {
		t.Error("udp accepted")
	}
	if _, err := NewIPC("tcp", "x", 3); err == nil {
		t.Error("encoding 3 accepted")
	}
	if NewHTTP("", HTTPOptions{}).url != DefaultRPCURL {
		t.Error("default URL")
	}
}

func TestBlockInfoRefusesLies(t *testing.T) {
	n := newFakeNode(t)
	c, _ := newClients(t, n)
	other := nano.Hash{9}
	// The fixture's block served for another hash.
	n.blocks[other] = MustFixture(t, "rpc_block_info_response.json")
	if _, err := c.BlockInfo(testCtx(t), other); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("wrong block: %v", err)
	}
	// block_account or balance disagreeing with the block.
	for field, value := range map[string]string{"block_account": acct1, "balance": "1"} {
		var m map[string]any
		_ = json.Unmarshal(MustFixture(t, "rpc_block_info_response.json"), &m)
		m[field] = value
		n.blocks[MustHash(t, hashBlockInfo)], _ = json.Marshal(m)
		if _, err := c.BlockInfo(testCtx(t), MustHash(t, hashBlockInfo)); !errors.Is(err, ErrInconsistent) {
			t.Errorf("%s: %v", field, err)
		}
	}
	// A legacy block is refused.
	n.blocks[other] = []byte(`{"contents": "{\"type\": \"send\"}"}`)
	if _, err := c.BlockInfo(testCtx(t), other); !errors.Is(err, ErrBadResponse) || !errors.Is(err, nano.ErrNotStateBlock) {
		t.Errorf("legacy: %v", err)
	}
	// blocks_info naming a block not asked for.
	n.handle("blocks_info", func(map[string]any) []byte {
		return []byte(`{"blocks": {"` + hashBlockInfo + `": ` + string(MustFixture(t, "rpc_block_info_response.json")) + `}}`)
	})
	if _, err := c.BlocksInfo(testCtx(t), []nano.Hash{other}); !errors.Is(err, ErrInconsistent) {
		t.Errorf("blocks_info: %v", err)
	}
	got, err := c.BlocksInfo(testCtx(t), []nano.Hash{MustHash(t, hashBlockInfo), other})
	if err != nil || len(got) != 1 {
		t.Errorf("blocks_info: %v %v", got, err)
	}
}

func TestReceivable(t *testing.T) {
	n := newFakeNode(t)
	c, _ := newClients(t, n)
	acct := MustAccount(t, acct1)
	// The node's "" for an empty list.
	got, err := c.Receivable(testCtx(t), acct, 5, nano.Amount{})
	if err != nil || len(got) != 0 {
		t.Fatalf("%v %v", got, err)
	}
	r := n.requestsFor("receivable")[0]
	if r["count"] != "5" || r["source"] != "true" || r["account"] != acct1 || r["threshold"] != nil {
		t.Errorf("request %v", r)
	}
	// source=true shape, and the fallback to "pending" on an old node.
	n.handle("receivable", func(map[string]any) []byte { return nodeError("Unknown command") })
	n.handle("pending", func(map[string]any) []byte {
		return []byte(`{
    "blocks": {
        "000D1BAEC8EC208142C99059B393051BAC8380F9B5A2E6B2489A277D81789F3F": {
            "amount": "6000000000000000000000000000000",
            "source": "nano_3dcfozsmekr1tr9skf1oa5wbgmxt81qepfdnt7zicq5x3hk65fg4fqj58mbr"
        },
        "142A538F36833D1CC78B94E11C766F75818F8B940771335C6C1B8AB880C5BB1D": {
            "amount": "106370018000000000000000000000000",
            "source": "nano_13ezf4od79h1tgj9aiu4djzcmmguendtjfuhwfukhuucboua8cpoihmh8byo"
        }
    }
}`)
	})
	threshold := nano.AmountFromUint64(1000)
	got, err = c.Receivable(testCtx(t), acct, 5, threshold)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Hash.String() != "142A538F36833D1CC78B94E11C766F75818F8B940771335C6C1B8AB880C5BB1D" ||
		!got[0].HasSource || got[0].Source.Address() != "nano_13ezf4od79h1tgj9aiu4djzcmmguendtjfuhwfukhuucboua8cpoihmh8byo" ||
		got[1].Amount.String() != "6000000000000000000000000000000" {
		t.Errorf("%+v", got)
	}
	if p := n.requestsFor("pending"); len(p) != 1 || p[0]["threshold"] != "1000" {
		t.Errorf("pending requests %v", p)
	}
	// The other shapes.
	for body, want := range map[string]int{
		`{"blocks": ["142A538F36833D1CC78B94E11C766F75818F8B940771335C6C1B8AB880C5BB1D"]}`:         1,
		`{"blocks": {"142A538F36833D1CC78B94E11C766F75818F8B940771335C6C1B8AB880C5BB1D": "5000"}}`: 1,
	} {
		n.handle("pending", func(map[string]any) []byte { return []byte(body) })
		got, err := c.Receivable(testCtx(t), acct, 5, nano.Amount{})
		if err != nil || len(got) != want {
			t.Errorf("%s: %v %v", body, got, err)
		}
	}
	// More than asked for, or below the threshold: refused.
	n.handle("pending", func(map[string]any) []byte {
		return []byte(`{"blocks": {"142A538F36833D1CC78B94E11C766F75818F8B940771335C6C1B8AB880C5BB1D": "5"}}`)
	})
	if _, err := c.Receivable(testCtx(t), acct, 5, threshold); !errors.Is(err, ErrInconsistent) {
		t.Errorf("below threshold: %v", err)
	}
}

func TestProcess(t *testing.T) {
	n := newFakeNode(t)
	c, _ := newClients(t, n)
	pb, err := nano.ParseBlockJSON(MustFixture(t, "rpc_block_hash_request.json"))
	if err != nil {
		t.Fatal(err)
	}
	b := pb.Block
	h, err := c.Process(testCtx(t), b, nano.SubtypeSend)
	if err != nil || h.String() != hashBlockInfo {
		t.Fatalf("%s %v", h, err)
	}
	req := n.requestsFor("process")[0]
	if req["json_block"] != "true" || req["subtype"] != "send" {
		t.Errorf("request %v", req)
	}
	if _, ok := req["block"].(map[string]any); !ok {
		t.Errorf("block is not an object: %v", req["block"])
	}
	// An answer naming another hash is refused.
	n.handle("process", func(map[string]any) []byte { return []byte(`{"hash": "` + hashCallbackSend + `"}`) })
	if _, err := c.Process(testCtx(t), b, nano.SubtypeSend); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("wrong hash: %v", err)
	}
	// "Old block" for a block the node has is success.
	n.handle("process", func(map[string]any) []byte { return nodeError("Old block") })
	if h, err := c.Process(testCtx(t), b, nano.SubtypeSend); err != nil || h.String() != hashBlockInfo {
		t.Errorf("old block: %s %v", h, err)
	}
	// …and an error for one it does not have.
	other := testBlock(4, nano.Hash{4}, 1, nano.Hash{})
	if _, err := c.Process(testCtx(t), other, nano.SubtypeSend); !errors.Is(err, ErrOldBlock) {
		t.Errorf("old block not found: %v", err)
	}
}

func TestProcessRetryAfterLostAnswer(t *testing.T) {
	// The first attempt reaches the node but its answer is lost; the retry
	// hears "Old block"; block_info finds the block: success.
	n := newFakeNode(t)
	pb, _ := nano.ParseBlockJSON(MustFixture(t, "rpc_block_hash_request.json"))
	var attempts atomic.Int32
	n.handle("process", func(map[string]any) []byte { return nodeError("Old block") })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := readAll(r)
		answer := n.serve(body)
		if strings.Contains(string(body), `"process"`) && attempts.Add(1) == 1 {
			http.Error(w, "gateway timeout", http.StatusGatewayTimeout)
			return
		}
		_, _ = w.Write(answer)
	}))
	defer srv.Close()
	c := NewClient(NewHTTP(srv.URL, HTTPOptions{}), fastOpts())
	if _, err := c.Process(testCtx(t), pb.Block, nano.SubtypeSend); err != nil {
		t.Fatal(err)
	}
	if attempts.Load() != 2 {
		t.Errorf("%d attempts", attempts.Load())
	}
}

func TestWorkRPCs(t *testing.T) {
	n := newFakeNode(t)
	c, _ := newClients(t, n)
	root := nano.Hash{5}
	const low = 0xff00000000000000
	r, err := nano.GenerateWork(testCtx(t), root, low, nano.WorkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	value := nano.WorkValue(root, r.Work)
	n.handle("work_generate", func(req map[string]any) []byte {
		if req["hash"] != root.String() {
			t.Errorf("work_generate %v", req)
		}
		return []byte(`{"work": "` + r.Work.String() + `", "difficulty": "` + hex16(value) + `", "multiplier": "1.5", "hash": "` + root.String() + `"}`)
	})
	w, err := c.WorkGenerate(testCtx(t), root, low)
	if err != nil || w != r.Work {
		t.Fatalf("%s %v", w, err)
	}
	if d := n.requestsFor("work_generate")[0]["difficulty"]; d != "ff00000000000000" {
		t.Errorf("difficulty sent as %v", d)
	}
	// The same answer is refused at a threshold it does not meet.
	if _, err := c.WorkGenerate(testCtx(t), root, value+1); !errors.Is(err, ErrInvalidWork) {
		t.Errorf("invalid work: %v", err)
	}
	n.handle("work_validate", func(req map[string]any) []byte {
		return []byte(`{"valid": "1", "valid_all": "0", "valid_receive": "1", "difficulty": "` + hex16(value) + `", "multiplier": "1.0"}`)
	})
	v, err := c.WorkValidate(testCtx(t), root, r.Work, low)
	if err != nil || !v.Valid || v.ValidAll || !v.ValidReceive || v.Value != value {
		t.Errorf("%+v %v", v, err)
	}
	n.handle("work_validate", func(req map[string]any) []byte {
		return []byte(`{"valid": "1", "difficulty": "ffffffffffffffff"}`)
	})
	if _, err := c.WorkValidate(testCtx(t), root, r.Work, low); !errors.Is(err, ErrInconsistent) {
		t.Errorf("lying work_validate: %v", err)
	}
	n.handle("work_cancel", func(req map[string]any) []byte { return []byte(`{"success": ""}`) })
	if err := c.WorkCancel(testCtx(t), root); err != nil {
		t.Error(err)
	}
	n.handle("active_difficulty", func(req map[string]any) []byte {
		return []byte(`{"network_minimum": "fffffff800000000", "network_current": "fffffff85d9d8a1c", "multiplier": "1.05", "network_receive_minimum": "fffffe0000000000", "network_receive_current": "fffffe1000000000"}`)
	})
	d, err := c.ActiveDifficulty(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Raise(nano.ThresholdSend, nano.SubtypeChange); got < 0xfffffff85d9d8a1c {
		t.Errorf("send raised to %016x", got)
	}
	if got := d.Raise(nano.ThresholdReceive, nano.SubtypeOpen); got < 0xfffffe1000000000 || got > 0xfffffe1100000000 {
		t.Errorf("receive raised to %016x", got)
	}
}

func hex16(v uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// TestIPCPreambleEncoding checks the preamble NewIPC's transport puts
// before each request, over a real Unix socket: 'N', the encoding it was
// given (1, or 2 for legacy RPC allowing unsafe actions), 0, 0.
func TestIPCPreambleEncoding(t *testing.T) {
	for _, enc := range []byte{IPCLegacy, IPCLegacyUnsafe} {
		dir := t.TempDir()
		l, err := net.Listen("unix", dir+"/nano.sock")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan [4]byte, 2)
		var server sync.WaitGroup
		server.Go(func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			for {
				var pre [8]byte
				if _, err := io.ReadFull(c, pre[:]); err != nil {
					return
				}
				got <- [4]byte(pre[:4])
				if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(pre[4:]))); err != nil {
					return
				}
				answer := []byte(`{"count": "1"}`)
				if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(answer))), answer...)); err != nil {
					return
				}
			}
		})
		tr, err := NewIPC("unix", l.Addr().String(), enc)
		if err != nil {
			t.Fatal(err)
		}
		c := NewClient(tr, fastOpts())
		for range 2 {
			if _, err := c.BlockCount(testCtx(t)); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
		l.Close()
		server.Wait()
		close(got)
		var n int
		for pre := range got {
			n++
			if pre != [4]byte{'N', enc, 0, 0} {
				t.Errorf("encoding %d: preamble % x", enc, pre)
			}
		}
		if n != 2 {
			t.Errorf("encoding %d: %d requests seen", enc, n)
		}
	}
}
