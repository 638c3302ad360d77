package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// DefaultRPCURL is the node's default RPC address.
const DefaultRPCURL = "http://[::1]:7076"

// DefaultMaxResponse bounds every RPC answer (16 MiB).
const DefaultMaxResponse = 16 << 20

// Transport carries one JSON request to the node and returns its JSON
// answer.
//
// Do returns an error wrapping ErrTransport when the request may not have
// reached the node or its answer was lost; the Client retries those. It
// returns an error wrapping ErrResponseTooLarge for an answer over the
// transport's bound; any other error is final. Do must be safe for
// concurrent use.
type Transport interface {
	Do(ctx context.Context, request []byte) ([]byte, error)
	Close() error
}

// HTTPOptions configure an HTTP transport. The zero value is usable.
type HTTPOptions struct {
	// Client sends the requests; nil means a client that follows no
	// redirects. Per-call timeouts come from the context.
	Client *http.Client
	// MaxResponse bounds an answer's length; 0 means DefaultMaxResponse.
	MaxResponse int64
	// Header is added to every request (for example an API key a proxy
	// in front of the node wants).
	Header http.Header
}

// HTTP is the node's JSON-over-HTTP RPC: every request is a POST of one
// JSON object to the RPC URL.
type HTTP struct {
	url    string
	client *http.Client
	max    int64
	header http.Header
}

// NewHTTP returns an HTTP transport for the RPC server at url ("" means
// DefaultRPCURL).
func NewHTTP(url string, opts HTTPOptions) *HTTP {
	if url == "" {
		url = DefaultRPCURL
	}
	t := &HTTP{url: url, client: opts.Client, max: opts.MaxResponse, header: opts.Header.Clone()}
	if t.client == nil {
		t.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if t.max <= 0 {
		t.max = DefaultMaxResponse
	}
	return t
}

// Do posts request and returns the answer's body.
func (t *HTTP) Do(ctx context.Context, request []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(request))
	if err != nil {
		return nil, fmt.Errorf("node: http: %w", err)
	}
	for k, vs := range t.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("node: http: %w: %w", ErrTransport, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("node: http: %w: status %d", ErrTransport, resp.StatusCode)
	}
	if resp.ContentLength > t.max {
		return nil, fmt.Errorf("node: http: %w: %d bytes announced, limit %d", ErrResponseTooLarge, resp.ContentLength, t.max)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, t.max+1))
	if err != nil {
		return nil, fmt.Errorf("node: http: %w: reading the answer: %w", ErrTransport, err)
	}
	if int64(len(body)) > t.max {
		return nil, fmt.Errorf("node: http: %w: over %d bytes", ErrResponseTooLarge, t.max)
	}
	return body, nil
}

// Close releases idle connections.
func (t *HTTP) Close() error {
	t.client.CloseIdleConnections()
	return nil
}

// String returns the transport's URL.
func (t *HTTP) String() string { return "http " + strconv.Quote(t.url) }

// isRetryable reports whether a transport error may be retried.
func isRetryable(err error) bool { return errors.Is(err, ErrTransport) }
