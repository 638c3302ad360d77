package devnode

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// served starts n on fresh listeners and returns their addresses.
type served struct {
	rpcURL  string
	ipcPath string
	wsURL   string
}

func serve(t *testing.T, n *Node) served {
	t.Helper()
	httpL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wsL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "node.ipc")
	ipcL, err := ListenIPC("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx, httpL, ipcL, wsL) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return served{rpcURL: "http://" + httpL.Addr().String(), ipcPath: sock, wsURL: "ws://" + wsL.Addr().String()}
}

func httpRPC(t *testing.T, url string, body []byte) []byte {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ipcCall sends one framed request on c and reads the framed response.
func ipcCall(t *testing.T, c net.Conn, encoding byte, body []byte) []byte {
	t.Helper()
	frame := []byte{'N', encoding, 0, 0}
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(body)))
	if _, err := c.Write(append(frame, body...)); err != nil {
		t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHTTPAndIPCIdentical(t *testing.T) {
	n, sendHash, a := chainNode(t)
	s := serve(t, n)
	conn, err := net.Dial("unix", s.ipcPath)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	gen := genesisTestKey(n)
	bad := sendFrom(t, n, gen, a.pub, raw(1))
	bad.Signature[5] ^= 0x40
	badReq, _ := nano.ProcessRequest(&bad, nano.SubtypeSend, true)

	requests := [][]byte{
		fixture(t, "rpc_block_hash_request.json"),
		[]byte(`{"action":"account_info","account":"` + a.pub.Address() + `","representative":"true","weight":"true","receivable":"true"}`),
		[]byte(`{"action":"account_info","account":"` + GenesisAddress + `"}`),
		[]byte(`{"action":"block_info","hash":"` + sendHash.String() + `"}`),
		[]byte(`{"action":"block_info","json_block":"true","hash":"` + sendHash.String() + `"}`),
		[]byte(`{"action":"blocks_info","hashes":["` + sendHash.String() + `"],"source":"true"}`),
		[]byte(`{"action":"account_balance","account":"` + a.pub.Address() + `"}`),
		[]byte(`{"action":"receivable","account":"` + a.pub.Address() + `"}`),
		[]byte(`{"action":"pending","account":"` + GenesisAddress + `","source":"true"}`),
		[]byte(`{"action":"block_count"}`),
		[]byte(`{"action":"version"}`),
		[]byte(`{"action":"work_validate","hash":"` + sendHash.String() + `","work":"0000000000000000"}`),
		[]byte(`{"action":"work_cancel","hash":"` + sendHash.String() + `"}`),
		[]byte(`{"action":"nonsense"}`),
		[]byte(`{"action":"block_info","hash":"zz"}`),
		[]byte(`garbage`),
		badReq,
	}
	for i, req := range requests {
		h := httpRPC(t, s.rpcURL, req)
		for _, enc := range []byte{1, 2} {
			ipc := ipcCall(t, conn, enc, req) // one connection carries every request
			if !bytes.Equal(h, ipc) {
				t.Errorf("request %d (%s): HTTP %s, IPC(%d) %s", i, req, h, enc, ipc)
			}
		}
	}
	// A good process through IPC, then the same block through HTTP is old.
	// With the subtype, the node's subtype check (against the account's
	// balance, which now includes the send) answers first.
	good := sendFrom(t, n, gen, a.pub, raw(1))
	goodReq, _ := nano.ProcessRequest(&good, nano.SubtypeSend, false)
	if out := ipcCall(t, conn, 1, goodReq); !strings.Contains(string(out), good.Hash().String()) {
		t.Fatalf("IPC process: %s", out)
	}
	if out := httpRPC(t, s.rpcURL, goodReq); string(out) != `{"error":"Invalid block balance for given subtype"}` {
		t.Fatalf("HTTP process again with subtype: %s", out)
	}
	plainReq, _ := nano.ProcessRequest(&good, nano.SubtypeUnknown, false)
	if out := httpRPC(t, s.rpcURL, plainReq); string(out) != `{"error":"Old block"}` {
		t.Fatalf("HTTP process again: %s", out)
	}
	// GET is refused as the node refuses it.
	resp, err := http.Get(s.rpcURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != `{"error":"Can only POST requests"}` {
		t.Fatalf("GET: %s", body)
	}
}

func TestIPCTCPAndBadFrames(t *testing.T) {
	n := newTestNode(t, Options{})
	l, err := ListenIPC("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx, nil, l, nil) }()
	defer func() {
		cancel()
		<-done
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out map[string]any
	json.Unmarshal(ipcCall(t, c, 2, []byte(`{"action":"block_count"}`)), &out)
	if out["count"] != "1" {
		t.Fatalf("%v", out)
	}
	for _, frame := range [][]byte{
		{'X', 1, 0, 0, 0, 0, 0, 2, '{', '}'},                // bad magic
		{'N', 3, 0, 0, 0, 0, 0, 2, '{', '}'},                // flatbuffers encoding: not served
		{'N', 1, 0, 1, 0, 0, 0, 2, '{', '}'},                // reserved byte set
		{'N', 1, 0, 0, 0xff, 0xff, 0xff, 0xff, '{', '}'},    // 4 GiB payload
		{'N', 1, 0, 0, 0, 0x10, 0, 1, '{'},                  // over the size limit
		{'N', 1, 0, 0, 0, 0, 0, 9, '{', '"', 'a', '"', ':'}, // truncated payload
	} {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(frame)
		if cw, ok := c.(*net.TCPConn); ok {
			cw.CloseWrite()
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || len(got) != 0 {
			t.Errorf("frame %x: got %q, %v; want the connection closed without an answer", frame, got, err)
		}
	}
}

func TestReadIPCRequest(t *testing.T) {
	frame := []byte{'N', 1, 0, 0, 0, 0, 0, 2, '{', '}', 'N', 2, 0, 0, 0, 0, 0, 0}
	r := bytes.NewReader(frame)
	for _, want := range []string{"{}", ""} {
		got, err := readIPCRequest(r)
		if err != nil || string(got) != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
	if _, err := readIPCRequest(r); !errors.Is(err, io.EOF) {
		t.Fatalf("at the end: %v", err)
	}
}

func TestListenIPCErrors(t *testing.T) {
	for _, spec := range []string{"http://x", "unix://", "tcp://", "::bad"} {
		if l, err := ListenIPC(spec); err == nil {
			l.Close()
			t.Errorf("%q accepted", spec)
		}
	}
}
