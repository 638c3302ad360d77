package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/node"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// ipcPreambles serves the node's IPC framing on a Unix socket in a fresh
// directory and records the encoding byte of every request's preamble;
// each request is answered with a block_count answer. It returns the
// socket's path and a function returning the encodings seen so far.
func ipcPreambles(t *testing.T) (path string, seen func() []byte) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "node.ipc")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		encodings []byte
		wg        sync.WaitGroup
	)
	t.Cleanup(func() { l.Close(); wg.Wait() })
	answer := []byte(`{"count": "1", "unchecked": "0", "cemented": "1"}`)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				for {
					var hdr [8]byte
					if _, err := io.ReadFull(c, hdr[:]); err != nil {
						return
					}
					mu.Lock()
					encodings = append(encodings, hdr[1])
					mu.Unlock()
					if hdr[0] != 'N' || hdr[2] != 0 || hdr[3] != 0 {
						return // as the node does with an invalid preamble
					}
					if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(hdr[4:]))); err != nil {
						return
					}
					if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(answer))), answer...)); err != nil {
						return
					}
				}
			})
		}
	})
	return path, func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return append([]byte(nil), encodings...)
	}
}

// TestIPCEncodingFromConfig reads node.ipc_encoding from a configuration
// file and checks the encoding byte the gateway's IPC transport then puts
// in every request's preamble, against a real Unix socket server.
func TestIPCEncodingFromConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		key  string // the ipc_encoding line, if any
		want byte
	}{
		{"default", "", 1},
		{"legacy RPC", "ipc_encoding = 1\n", 1},
		{"legacy RPC allowing unsafe actions", "ipc_encoding = 2\n", 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path, seen := ipcPreambles(t)
			cfg, err := ParseConfig([]byte(confMinimalGateway + "\n[node]\nrpc = \"ipc+unix://" + path + "\"\n" + tt.key))
			if err != nil {
				t.Fatal(err)
			}
			side, err := OpenNodeSide(context.Background(), cfg.Node, NodeSideOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer side.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for range 2 { // one connection, two requests: each carries the preamble
				if _, err := side.Client().BlockCount(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if got := seen(); len(got) != 2 || got[0] != tt.want || got[1] != tt.want {
				t.Errorf("preamble encodings %v, want %d twice", got, tt.want)
			}
		})
	}
}

// TestCallbackListener runs a NodeSide with [node.callback] from a
// configuration file that accepts callbacks from 192.0.2.0/24 only: a
// callback from loopback is refused with 403 and counted forbidden
// (without asking the node, which is not there); when Run ends, the
// listener is closed.
func TestCallbackListener(t *testing.T) { forEachStore(t, testCallbackListener) }

func testCallbackListener(t *testing.T, kind storeKind) {
	cfg, err := ParseConfig([]byte(confMinimalGateway + `
[node]
rpc = "http://127.0.0.1:1"

[node.callback]
listen = "127.0.0.1:7090"
path = "/cb"
allowed_sources = ["192.0.2.0/24"]
`))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan node.CallbackResult, 4)
	side, err := OpenNodeSide(context.Background(), cfg.Node, NodeSideOptions{
		CallbackListener: l,
		ObserveCallback:  func(r node.CallbackResult) { results <- r },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close()
	gwOut, gwIn, _, _ := fileMedium(t)
	acct := nano.PublicKey{1}
	gw, err := newTestStore(t, kind, "").open(Options{Out: gwOut, Reader: gwIn,
		Manifest: NewManifest(&pb.CustodyAccount{Wallet: "w", PublicKey: acct[:], Address: acct.Address()})})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- side.Run(ctx, gw) }()

	addr := side.CallbackAddr().String()
	body, err := os.ReadFile(filepath.Join("..", "testdata", "node", "http_callback_send.json"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr+"/cb", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status %d, want 403", resp.StatusCode)
	}
	if r := <-results; r != node.CallbackForbidden {
		t.Errorf("counted %s", r)
	}
	http.DefaultClient.CloseIdleConnections()

	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("the callback listener still accepts connections after Run returned")
	}
}

// TestCallbackListenAddressInUse: a listen address in use fails
// OpenNodeSide with the key named.
func TestCallbackListenAddressInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := NodeConfig{RPC: "http://127.0.0.1:1", Timeout: time.Second, Work: "cpu",
		Callback: &CallbackConfig{Listen: busy.Addr().String(), Path: "/"}}
	side, err := OpenNodeSide(context.Background(), cfg, NodeSideOptions{})
	if err == nil {
		side.Close()
		t.Fatal("opened a callback listener on an address in use")
	}
	if oe, ok := errors.AsType[*net.OpError](err); !ok || oe.Op != "listen" || !strings.HasPrefix(err.Error(), "node.callback.listen: ") {
		t.Errorf("error %v", err)
	}
}
