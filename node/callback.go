package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// CallbackEvent is a block announced by the node's HTTP callback and
// verified against the node's ledger: Block is the block as block_info
// returned it (it hashes to Hash) and equals the block in the callback
// body. Amount, Subtype and Confirmed are block_info's claims.
type CallbackEvent struct {
	Hash      nano.Hash
	Block     nano.StateBlock
	Account   nano.PublicKey
	Amount    nano.Amount
	Subtype   nano.Subtype
	Confirmed bool
}

// CallbackOptions configure a CallbackHandler. The zero value gives the
// defaults.
type CallbackOptions struct {
	// MaxBody bounds a callback body; 0 means 64 KiB.
	MaxBody int64
	// Buffer is the capacity of the Events channel; 0 means 256. Events
	// that do not fit are dropped and counted.
	Buffer int
	// Timeout bounds the block_info check of one callback; 0 means 10 s.
	Timeout time.Duration
	// Log receives refused callbacks; nil discards.
	Log *slog.Logger
}

// CallbackStats counts callbacks by outcome.
type CallbackStats struct {
	Received   uint64 // requests
	Verified   uint64 // events emitted (or dropped for a full channel)
	Forged     uint64 // the body lies: its block does not hash to its hash, the node does not have it, or the node's block or amount differs
	Malformed  uint64 // not a callback body (or too large, or not a POST)
	Unverified uint64 // the node could not be asked, or its answer was refused
	Dropped    uint64 // verified events dropped because the channel was full
}

// CallbackHandler receives the node's HTTP callback (POST of a JSON body
// per block: "account", "hash", "block" as a JSON string, "amount", and
// for sends "is_send" and "subtype"). Bodies are untrusted: one is acted
// on only after the block is fetched from the node by hash with
// block_info and found equal to the body's block; then a CallbackEvent is
// emitted. A forged body produces no event and is counted.
type CallbackHandler struct {
	client *Client
	opts   CallbackOptions
	events chan CallbackEvent

	received, verified, forged, malformed, unverified, dropped atomic.Uint64
}

// NewCallbackHandler returns a handler that checks callbacks with client.
func NewCallbackHandler(client *Client, opts CallbackOptions) *CallbackHandler {
	if opts.MaxBody <= 0 {
		opts.MaxBody = 64 << 10
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 256
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &CallbackHandler{client: client, opts: opts, events: make(chan CallbackEvent, opts.Buffer)}
}

// Events returns the channel verified events are delivered on.
func (h *CallbackHandler) Events() <-chan CallbackEvent { return h.events }

// Stats returns the counters.
func (h *CallbackHandler) Stats() CallbackStats {
	return CallbackStats{
		Received: h.received.Load(), Verified: h.verified.Load(), Forged: h.forged.Load(),
		Malformed: h.malformed.Load(), Unverified: h.unverified.Load(), Dropped: h.dropped.Load(),
	}
}

// ServeHTTP handles one callback. It answers 200 to a body it verified or
// found forged (the sender learns nothing either way), 400 to a malformed
// body, 405 to anything but a POST, 413 to a body over the bound, and 503
// when the node could not be asked.
func (h *CallbackHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.received.Add(1)
	if r.Method != http.MethodPost {
		h.malformed.Add(1)
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	if err != nil {
		h.malformed.Add(1)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	switch ev, outcome := h.check(ctx, body); outcome {
	case outcomeVerified:
		h.verified.Add(1)
		select {
		case h.events <- ev:
		default:
			h.dropped.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	case outcomeForged:
		h.forged.Add(1)
		w.WriteHeader(http.StatusOK)
	case outcomeMalformed:
		h.malformed.Add(1)
		http.Error(w, "not a callback body", http.StatusBadRequest)
	default:
		h.unverified.Add(1)
		http.Error(w, "node unavailable", http.StatusServiceUnavailable)
	}
}

type callbackOutcome int

const (
	outcomeVerified callbackOutcome = iota
	outcomeForged
	outcomeMalformed
	outcomeUnverified
)

// check parses a callback body and compares it with the node's ledger.
func (h *CallbackHandler) check(ctx context.Context, body []byte) (CallbackEvent, callbackOutcome) {
	pb, err := nano.ParseBlockJSON(body)
	if err != nil || !pb.HasClaimedHash {
		h.opts.Log.Warn("node: callback refused: not a callback body", "err", err)
		return CallbackEvent{}, outcomeMalformed
	}
	var extra struct {
		Account *string `json:"account"`
		Amount  *string `json:"amount"`
	}
	if err := json.Unmarshal(body, &extra); err != nil {
		return CallbackEvent{}, outcomeMalformed
	}
	f := fields{action: "callback"}
	var account nano.PublicKey
	if extra.Account != nil {
		account = f.account("account", extra.Account)
	}
	var amount nano.Amount
	if extra.Amount != nil {
		amount = f.amount("amount", extra.Amount)
	}
	if f.err != nil {
		h.opts.Log.Warn("node: callback refused", "err", f.err)
		return CallbackEvent{}, outcomeMalformed
	}
	hash := pb.ClaimedHash
	if pb.Block.Hash() != hash || (extra.Account != nil && account != pb.Block.Account) {
		h.opts.Log.Warn("node: forged callback: the body's block is not its hash or account", "hash", hash)
		return CallbackEvent{}, outcomeForged
	}
	bi, err := h.client.BlockInfo(ctx, hash)
	switch {
	case errors.Is(err, ErrBlockNotFound):
		h.opts.Log.Warn("node: forged callback: the node does not have the block", "hash", hash)
		return CallbackEvent{}, outcomeForged
	case err != nil:
		h.opts.Log.Warn("node: callback not verified", "hash", hash, "err", err)
		return CallbackEvent{}, outcomeUnverified
	}
	if bi.Block != pb.Block || (extra.Amount != nil && bi.Amount != amount) {
		h.opts.Log.Warn("node: forged callback: the node's block differs", "hash", hash)
		return CallbackEvent{}, outcomeForged
	}
	return CallbackEvent{
		Hash: hash, Block: bi.Block, Account: bi.Block.Account,
		Amount: bi.Amount, Subtype: bi.Subtype, Confirmed: bi.Confirmed,
	}, outcomeVerified
}
