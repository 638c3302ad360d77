package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// IPC encodings (the second byte of the preamble).
const (
	// IPCLegacy is legacy RPC JSON (node V18+).
	IPCLegacy byte = 1
	// IPCLegacyUnsafe is legacy RPC JSON allowing the unsafe actions the
	// node's configuration permits (node V19+).
	IPCLegacyUnsafe byte = 2
)

// ipcPreambleLead is the first preamble byte.
const ipcPreambleLead = 'N'

// IPC is the node's IPC interface over TCP or a Unix socket. Each request
// is the preamble 'N' ENCODING 0 0, then a 32-bit big-endian length and
// the JSON; each answer is a 32-bit big-endian length and the JSON. One
// connection is reused for every request, one request at a time; after
// any error it is closed and the next request dials again.
type IPC struct {
	network, addr string
	encoding      byte
	max           uint32
	dialer        net.Dialer

	sem  chan struct{} // holds the connection: one request at a time
	conn net.Conn      // guarded by sem
}

// NewIPC returns an IPC transport for the node at addr. network is "tcp",
// "tcp4", "tcp6" or "unix"; encoding is IPCLegacy or IPCLegacyUnsafe. It
// does not dial: the first request does.
func NewIPC(network, addr string, encoding byte) (*IPC, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, fmt.Errorf("node: ipc: network %q is not tcp, tcp4, tcp6 or unix", network)
	}
	if encoding != IPCLegacy && encoding != IPCLegacyUnsafe {
		return nil, fmt.Errorf("node: ipc: encoding %d is not legacy RPC (1) or legacy RPC allowing unsafe actions (2)", encoding)
	}
	if addr == "" {
		return nil, errors.New("node: ipc: no address")
	}
	return &IPC{network: network, addr: addr, encoding: encoding, max: DefaultMaxResponse, sem: make(chan struct{}, 1)}, nil
}

// SetMaxResponse bounds an answer's length (default DefaultMaxResponse).
// Call it before the first request.
func (t *IPC) SetMaxResponse(n uint32) {
	if n > 0 {
		t.max = n
	}
}

// Do sends request and reads its answer.
func (t *IPC) Do(ctx context.Context, request []byte) ([]byte, error) {
	if uint64(len(request)) > 1<<32-1 {
		return nil, errors.New("node: ipc: request over 4 GiB")
	}
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("node: ipc: %w: %w", ErrTransport, ctx.Err())
	}
	defer func() { <-t.sem }()

	if t.conn == nil {
		conn, err := t.dialer.DialContext(ctx, t.network, t.addr)
		if err != nil {
			return nil, fmt.Errorf("node: ipc: %w: %w", ErrTransport, err)
		}
		t.conn = conn
	}
	conn := t.conn
	// Deadlines follow the context, and a cancelled context unblocks the
	// read or write at once.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	answer, err := t.exchange(conn, request)
	stop()
	if err != nil {
		_ = conn.Close()
		t.conn = nil
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return nil, err
	}
	return answer, nil
}

func (t *IPC) exchange(conn net.Conn, request []byte) ([]byte, error) {
	msg := make([]byte, 0, 8+len(request))
	msg = append(msg, ipcPreambleLead, t.encoding, 0, 0)
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(request)))
	msg = append(msg, request...)
	if _, err := conn.Write(msg); err != nil {
		return nil, fmt.Errorf("node: ipc: %w: write: %w", ErrTransport, err)
	}
	return readIPCFrame(conn, t.max)
}

// readIPCFrame reads one length-prefixed answer: a 32-bit big-endian
// length, then that many bytes. A length over max is refused before
// anything is allocated for the body.
func readIPCFrame(r io.Reader, max uint32) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("node: ipc: %w: reading the length: %w", ErrTransport, err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > max {
		return nil, fmt.Errorf("node: ipc: %w: %d bytes announced, limit %d", ErrResponseTooLarge, n, max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("node: ipc: %w: reading %d bytes: %w", ErrTransport, n, err)
	}
	return body, nil
}

// Close closes the connection, if one is open. A later request dials again.
func (t *IPC) Close() error {
	t.sem <- struct{}{}
	defer func() { <-t.sem }()
	if t.conn == nil {
		return nil
	}
	err := t.conn.Close()
	t.conn = nil
	return err
}

// String names the transport's endpoint.
func (t *IPC) String() string {
	return fmt.Sprintf("ipc %s %s (encoding %d)", t.network, t.addr, t.encoding)
}
