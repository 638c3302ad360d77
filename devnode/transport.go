package devnode

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

// RPCHandler returns the HTTP RPC endpoint: every path, POST only, one
// JSON request per body.
func (n *Node) RPCHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodPost {
			w.Write(errorBody(msgOnlyPOST))
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestSize+1))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			w.Write(errorBody(msgUnableToParse))
			return
		}
		if len(body) > maxRequestSize {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			w.Write(errorBody(msgUnableToParse))
			return
		}
		w.Write(n.HandleRPC(r.Context(), body))
	})
}

// WebSocketHandler returns the WebSocket endpoint (any path).
func (n *Node) WebSocketHandler() http.Handler { return n.hub }

// IPC framing: every request is the preamble 'N', encoding, 0, 0, then a
// big-endian uint32 length and that many bytes of JSON; the response is a
// big-endian uint32 length and the JSON. Encoding 1 is legacy RPC and 2
// legacy RPC allowing unsafe actions; the devnode answers both alike.
const (
	ipcMagic          = 'N'
	ipcEncodingRPC    = 1
	ipcEncodingUnsafe = 2
	ipcIdleTimeout    = 5 * time.Minute
)

// errIPCFraming is a malformed IPC frame: the connection is closed.
var errIPCFraming = errors.New("devnode: malformed IPC frame")

// readIPCRequest reads one framed request. It returns io.EOF at a clean
// end of stream, errIPCFraming for a bad preamble or an oversized
// payload, and never allocates more than maxRequestSize.
func readIPCRequest(r io.Reader) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:1]); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(r, hdr[1:]); err != nil {
		return nil, errIPCFraming
	}
	if hdr[0] != ipcMagic || (hdr[1] != ipcEncodingRPC && hdr[1] != ipcEncodingUnsafe) || hdr[2] != 0 || hdr[3] != 0 {
		return nil, errIPCFraming
	}
	size := binary.BigEndian.Uint32(hdr[4:])
	if size > maxRequestSize {
		return nil, errIPCFraming
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, errIPCFraming
	}
	return body, nil
}

func writeIPCResponse(w io.Writer, body []byte) error {
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(body)), uint32(len(body)))
	_, err := w.Write(append(frame, body...))
	return err
}

// serveIPC answers requests on one connection until it ends or ctx is done.
func (n *Node) serveIPC(ctx context.Context, c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(ipcIdleTimeout))
		body, err := readIPCRequest(r)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				n.log.Debug("IPC connection closed", "err", err)
			}
			return
		}
		c.SetReadDeadline(time.Time{})
		if err := writeIPCResponse(c, n.HandleRPC(ctx, body)); err != nil {
			return
		}
	}
}

// ListenIPC listens on an IPC address: "unix:///path/to/socket" (a stale
// socket file is replaced) or "tcp://host:port".
func ListenIPC(spec string) (net.Listener, error) {
	u, err := url.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("devnode: IPC address %q: %w", spec, err)
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if u.Host != "" {
			path = u.Host + u.Path // unix://relative/path
		}
		if path == "" {
			return nil, fmt.Errorf("devnode: IPC address %q has no socket path", spec)
		}
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path)
		}
		return net.Listen("unix", path)
	case "tcp":
		if u.Host == "" {
			return nil, fmt.Errorf("devnode: IPC address %q has no host:port", spec)
		}
		return net.Listen("tcp", u.Host)
	}
	return nil, fmt.Errorf("devnode: IPC address %q: want unix:///path or tcp://host:port", spec)
}

// Serve answers RPC over HTTP on httpL, RPC over IPC on ipcL and the
// WebSocket API on wsL (any may be nil) until ctx is done; then it closes
// the listeners and connections and returns nil. It returns early with
// an error if a listener fails.
func (n *Node) Serve(ctx context.Context, httpL, ipcL, wsL net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	fail := func(err error) {
		errMu.Lock()
		if first == nil {
			first = err
		}
		errMu.Unlock()
		cancel()
	}
	serveHTTP := func(l net.Listener, h http.Handler, name string) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fail(fmt.Errorf("devnode: %s listener: %w", name, err))
			}
		}()
		go func() {
			defer wg.Done()
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer scancel()
			if srv.Shutdown(sctx) != nil {
				srv.Close()
			}
		}()
	}
	if httpL != nil {
		serveHTTP(httpL, n.RPCHandler(), "RPC")
	}
	if wsL != nil {
		serveHTTP(wsL, n.hub, "WebSocket")
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			n.hub.closeAll()
		}()
	}
	if ipcL != nil {
		var (
			connMu sync.Mutex
			conns  = make(map[net.Conn]struct{})
		)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for {
				c, err := ipcL.Accept()
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("devnode: IPC listener: %w", err))
					}
					return
				}
				connMu.Lock()
				conns[c] = struct{}{}
				connMu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					n.serveIPC(ctx, c)
					connMu.Lock()
					delete(conns, c)
					connMu.Unlock()
				}()
			}
		}()
		go func() {
			defer wg.Done()
			<-ctx.Done()
			ipcL.Close()
			connMu.Lock()
			for c := range conns {
				c.Close()
			}
			connMu.Unlock()
		}()
	}
	<-ctx.Done()
	wg.Wait()
	return first
}
