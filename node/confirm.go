package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// DefaultPollInterval is how often AwaitConfirmation polls block_info: the
// integration guide's five seconds.
const DefaultPollInterval = 5 * time.Second

// Confirmer follows blocks to confirmation: through the node's
// notifications (a ConfirmationFeed fed by the WebSocket and the HTTP
// callback, or a WebSocket) when it has them, and by polling block_info's
// "confirmed" in any case, because their delivery is not guaranteed.
type Confirmer struct {
	Client *Client
	// Feed, if set, delivers confirmations as they happen, from every
	// path that feeds it; it takes precedence over WS.
	Feed *ConfirmationFeed
	// WS, if set (and Feed is not), delivers confirmations as they
	// happen. Its account set must include the block's account for them
	// to arrive.
	WS *WS
	// PollInterval is the block_info polling period; 0 means
	// DefaultPollInterval.
	PollInterval time.Duration
	// Log receives polling failures; nil discards.
	Log *slog.Logger
}

// AwaitConfirmation returns nil once the node reports h confirmed, either
// in the feed (or on the WebSocket) or through block_info (polled at once and then every
// PollInterval). A block the node does not have yet and transport
// failures are waited out; it returns when ctx is done, or at once with
// the error when the node's block_info answer is refused (ErrHashMismatch,
// ErrInconsistent).
func (c *Confirmer) AwaitConfirmation(ctx context.Context, h nano.Hash) error {
	return c.await(ctx, h, false)
}

// notified reports whether confirmations arrive as they happen (a feed or
// a WebSocket), so that polling is only the fallback.
func (c *Confirmer) notified() bool { return c.Feed != nil || c.WS != nil }

// await is AwaitConfirmation; with late, the first block_info poll comes
// after the poll interval rather than at once.
func (c *Confirmer) await(ctx context.Context, h nano.Hash, late bool) error {
	interval := c.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	var first time.Duration
	if late {
		first = interval
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var confirmed <-chan struct{}
	switch {
	case c.Feed != nil:
		ch, cancel := c.Feed.WaitConfirmed(h)
		defer cancel()
		confirmed = ch
	case c.WS != nil:
		ch, cancel := c.WS.WaitConfirmed(h)
		defer cancel()
		confirmed = ch
	}
	poll := time.NewTimer(first)
	defer poll.Stop()
	for {
		select {
		case <-confirmed:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("node: awaiting confirmation of %s: %w", h, ctx.Err())
		case <-poll.C:
		}
		bi, err := c.Client.BlockInfo(ctx, h)
		switch {
		case err == nil && bi.Confirmed:
			return nil
		case errors.Is(err, ErrHashMismatch), errors.Is(err, ErrInconsistent):
			return err
		case err != nil && ctx.Err() == nil:
			log.Debug("node: confirmation poll failed", "hash", h, "err", err)
		}
		poll.Reset(interval)
	}
}
