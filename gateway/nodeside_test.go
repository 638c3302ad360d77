package gateway

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
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
