package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// ClientOptions tune a Client. The zero value gives the defaults.
type ClientOptions struct {
	// Timeout bounds each attempt of a call; 0 means 15 s.
	Timeout time.Duration
	// WorkTimeout bounds each attempt of work_generate; 0 means 5 min.
	WorkTimeout time.Duration
	// Retries is how many times a call is repeated after a transport
	// failure (never after a node-level error); 0 means 2, negative means
	// none.
	Retries int
	// RetryMin and RetryMax bound the exponential backoff between
	// attempts; 0 means 100 ms and 2 s.
	RetryMin, RetryMax time.Duration
	// Log receives a line per retried attempt; nil discards.
	Log *slog.Logger
}

func (o *ClientOptions) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	if o.WorkTimeout <= 0 {
		o.WorkTimeout = 5 * time.Minute
	}
	switch {
	case o.Retries == 0:
		o.Retries = 2
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 2 * time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Client is an RPC client of a Nano node (or of a work server, which
// speaks the same JSON). It is safe for concurrent use.
type Client struct {
	t    Transport
	opts ClientOptions
}

// NewClient returns a client that sends its requests over t.
func NewClient(t Transport, opts ClientOptions) *Client {
	opts.defaults()
	return &Client{t: t, opts: opts}
}

// Close closes the transport.
func (c *Client) Close() error { return c.t.Close() }

// call sends req (a JSON object with an "action") and decodes the answer
// into out, after checking it for an {"error": ...} answer. Transport
// failures are retried with backoff; node-level errors never are.
func (c *Client) call(ctx context.Context, action string, req any, out any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("node: %s: encoding the request: %w", action, err)
	}
	return c.callRaw(ctx, action, body, c.opts.Timeout, out)
}

func (c *Client) callRaw(ctx context.Context, action string, body []byte, timeout time.Duration, out any) error {
	answer, err := c.roundTrip(ctx, action, body, timeout)
	if err != nil {
		return err
	}
	if err := checkNodeError(action, answer); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("node: %s: %w: %v", action, ErrBadResponse, err)
	}
	return nil
}

// roundTrip performs the attempts.
func (c *Client) roundTrip(ctx context.Context, action string, body []byte, timeout time.Duration) ([]byte, error) {
	delay := c.opts.RetryMin
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		answer, err := c.t.Do(actx, body)
		cancel()
		if err == nil {
			return answer, nil
		}
		if !isRetryable(err) || attempt >= c.opts.Retries || ctx.Err() != nil {
			return nil, fmt.Errorf("node: %s: %w", action, err)
		}
		c.opts.Log.Debug("node: retrying", "action", action, "attempt", attempt+1, "err", err)
		// Full jitter: wait a random time up to the current delay.
		wait := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("node: %s: %w (%w)", action, err, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, c.opts.RetryMax)
	}
}

// checkNodeError returns a *NodeError when answer is {"error": "..."}.
// An answer that is not a JSON object is a malformed response.
func checkNodeError(action string, answer []byte) error {
	var probe struct {
		Error *string `json:"error"`
	}
	trimmed := bytes.TrimSpace(answer)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return fmt.Errorf("node: %s: %w: not a JSON object", action, ErrBadResponse)
	}
	if err := json.Unmarshal(trimmed, &probe); err != nil {
		return fmt.Errorf("node: %s: %w: %v", action, ErrBadResponse, err)
	}
	if probe.Error != nil {
		return newNodeError(action, *probe.Error)
	}
	return nil
}
