package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// fixtureDir holds the real node payloads shared by the whole module.
const fixtureDir = "../testdata/node"

// The hashes the fixtures must yield.
const (
	hashBlockInfo    = "DC8EC06D1F32F97BD69BF59E3297563BD23779F72176A4FF553CFF52309C337E"
	hashCallbackRecv = "B785D56473DE6330AC9A2071F19BD44BCAF1DE5C200A826B4BBCC85E588620FB"
	hashCallbackSend = "82D68AE43E3E04CBBF9ED150999A347C2ABBE74B38D6E506C18DF7B1994E06C2"
	hashWSConfirm    = "0E889F83E28152A70E87B92D846CA3D8966F3AEEC65E11B25F7B4E6760C57CA3"
)

// MustFixture returns a fixture file's bytes.
func MustFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// MustHash parses a hash.
func MustHash(t testing.TB, s string) nano.Hash {
	t.Helper()
	h, err := nano.ParseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// MustAccount parses an account.
func MustAccount(t testing.TB, s string) nano.PublicKey {
	t.Helper()
	k, err := nano.ParseAccount(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// nodeError prints an error answer as the node does (a pretty-printed
// property tree).
func nodeError(msg string) []byte {
	b, _ := json.MarshalIndent(map[string]string{"error": msg}, "", "    ")
	return append(b, '\n')
}

// fakeNode answers RPC requests with exact wire-format bodies: fixture
// files and bodies built from blocks the test registers. It models no
// node behaviour beyond what each test programs.
type fakeNode struct {
	t  testing.TB
	mu sync.Mutex
	// blocks are block_info answers by hash.
	blocks map[nano.Hash][]byte
	// accounts are account_info answers by account; a queue whose last
	// element repeats.
	accounts map[nano.PublicKey][][]byte
	// handlers override the answer to an action.
	handlers map[string]func(req map[string]any) []byte
	requests []map[string]any
	raw      [][]byte
}

func newFakeNode(t testing.TB) *fakeNode {
	n := &fakeNode{
		t:        t,
		blocks:   map[nano.Hash][]byte{},
		accounts: map[nano.PublicKey][][]byte{},
		handlers: map[string]func(map[string]any) []byte{},
	}
	n.blocks[MustHash(t, hashBlockInfo)] = MustFixture(t, "rpc_block_info_response.json")
	n.accounts[MustAccount(t, "nano_3qb1qckpady6njewfotrdrcgakrgbfh7ytqfrd9r8txsx7d91b9pu6z1ixrg")] = [][]byte{MustFixture(t, "rpc_account_info_response.json")}
	return n
}

// handle sets the answer to an action.
func (n *fakeNode) handle(action string, f func(req map[string]any) []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.handlers[action] = f
}

// addBlock registers a block_info answer for b built as the node prints
// it ("contents" a JSON string), with confirmed and amount as given.
func (n *fakeNode) addBlock(b nano.StateBlock, amount nano.Amount, confirmed string) nano.Hash {
	h := b.Hash()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocks[h] = blockInfoBody(n.t, b, amount, confirmed)
	return h
}

func blockInfoBody(t testing.TB, b nano.StateBlock, amount nano.Amount, confirmed string) []byte {
	t.Helper()
	contents, err := json.MarshalIndent(b, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	resp := map[string]string{
		"block_account":   b.Account.Address(),
		"amount":          amount.String(),
		"balance":         b.Balance.String(),
		"height":          "2",
		"local_timestamp": "0",
		"contents":        string(contents) + "\n",
	}
	if confirmed != "" {
		resp["confirmed"] = confirmed
	}
	out, err := json.MarshalIndent(resp, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// requestsFor returns the recorded requests with this action.
func (n *fakeNode) requestsFor(action string) []map[string]any {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []map[string]any
	for _, r := range n.requests {
		if r["action"] == action {
			out = append(out, r)
		}
	}
	return out
}

// serve answers one request body.
func (n *fakeNode) serve(body []byte) []byte {
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		return nodeError("Unable to parse JSON")
	}
	n.mu.Lock()
	n.requests = append(n.requests, req)
	n.raw = append(n.raw, bytes.Clone(body))
	action, _ := req["action"].(string)
	h := n.handlers[action]
	n.mu.Unlock()
	if h != nil {
		return h(req)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch action {
	case "account_info":
		k, err := nano.ParseAccount(str(req["account"]))
		if err != nil {
			return nodeError("Bad account number")
		}
		q := n.accounts[k]
		if len(q) == 0 {
			return nodeError("Account not found")
		}
		if len(q) > 1 {
			n.accounts[k] = q[1:]
		}
		return q[0]
	case "block_info":
		h, err := nano.ParseHash(str(req["hash"]))
		if err != nil {
			return nodeError("Invalid block hash")
		}
		if b, ok := n.blocks[h]; ok {
			return b
		}
		return nodeError("Block not found")
	case "process":
		pb, err := nano.ParseBlockJSON(body)
		if err != nil {
			return nodeError("Block is invalid")
		}
		h := pb.Block.Hash()
		return []byte(`{"hash": "` + h.String() + `"}`)
	case "block_count":
		return []byte("{\n    \"count\": \"1000\",\n    \"unchecked\": \"10\",\n    \"cemented\": \"25\"\n}\n")
	case "version":
		return []byte(`{"rpc_version": "1", "store_version": "21", "protocol_version": "19", "node_vendor": "Nano V25.1", "store_vendor": "LMDB 0.9.70", "network": "live", "network_identifier": "991CF190094C00F0B68E2E5F75F6BEE95A2E0BD93CEAA4A6734DB9F19B728948", "build_info": "test"}`)
	case "receivable", "pending":
		return []byte(`{"blocks": ""}`)
	}
	return nodeError("Unknown command")
}

func str(v any) string { s, _ := v.(string); return s }

// httpNode serves n over HTTP.
func httpNode(t testing.TB, n *fakeNode) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(n.serve(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// ipcListener serves n over the IPC framing on network ("tcp" or "unix")
// and returns the address. Each request must carry the preamble.
func ipcListener(t testing.TB, n *fakeNode, network string) string {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		dir, err := os.MkdirTemp("", "ipc")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		addr = filepath.Join(dir, "nano.sock")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				for {
					body, err := readIPCRequest(c)
					if err != nil {
						return
					}
					answer := n.serve(body)
					out := binary.BigEndian.AppendUint32(nil, uint32(len(answer)))
					if _, err := c.Write(append(out, answer...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

var errPreamble = errors.New("bad preamble")

// readIPCRequest reads one IPC request as the node's server does:
// 'N' ENCODING 0 0, be32 length, JSON.
func readIPCRequest(r io.Reader) ([]byte, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, err
	}
	if pre[0] != 'N' || (pre[1] != 1 && pre[1] != 2) || pre[2] != 0 || pre[3] != 0 {
		return nil, errPreamble
	}
	n := binary.BigEndian.Uint32(pre[4:])
	if n > 1<<20 {
		return nil, errPreamble
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return body, err
}

// newClients returns a Client over HTTP and one over IPC (TCP) to the
// same node.
func newClients(t testing.TB, n *fakeNode) (httpc, ipcc *Client) {
	t.Helper()
	srv := httpNode(t, n)
	httpc = NewClient(NewHTTP(srv.URL, HTTPOptions{}), fastOpts())
	tr, err := NewIPC("tcp", ipcListener(t, n, "tcp"), IPCLegacy)
	if err != nil {
		t.Fatal(err)
	}
	ipcc = NewClient(tr, fastOpts())
	t.Cleanup(func() { httpc.Close(); ipcc.Close() })
	return httpc, ipcc
}

func fastOpts() ClientOptions {
	return ClientOptions{Timeout: hangLimit, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangLimit)
	t.Cleanup(cancel)
	return ctx
}

// hangLimit bounds a test's wait for something that must happen: long
// enough that only a hang reaches it on a loaded machine, never a timing
// assertion.
const hangLimit = 20 * time.Second

// eventually polls cond until it holds, failing the test after hangLimit.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testBlock returns a state block of a fresh account (unsigned: nothing
// here checks signatures).
func testBlock(seed byte, previous nano.Hash, balance uint64, link nano.Hash) nano.StateBlock {
	var k nano.PrivateKey
	k[0] = seed
	return nano.StateBlock{
		Account:        k.PublicKey(),
		Previous:       previous,
		Representative: k.PublicKey(),
		Balance:        nano.AmountFromUint64(balance),
		Link:           link,
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// runtimeGoexit ends a server script whose connection is gone.
func runtimeGoexit() { runtime.Goexit() }
