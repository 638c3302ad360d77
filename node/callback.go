package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// MaxCallbackBody bounds an HTTP callback body (64 KiB); the node's are
// about 1 KiB.
const MaxCallbackBody = 64 << 10

// Callback is an HTTP callback body as the node posts it for a confirmed
// block: the node's claims, checked by ParseCallback only for their form
// (Block hashes to Hash and belongs to Account).
type Callback struct {
	Account nano.PublicKey
	Hash    nano.Hash
	Block   nano.StateBlock
	Amount  nano.Amount  // what the block moved, in raw
	IsSend  bool         // "is_send": "true"
	Subtype nano.Subtype // "subtype"; SubtypeUnknown when absent
}

// callbackKeys are the keys a callback body may hold, and whether each
// is required.
var callbackKeys = map[string]bool{
	"account": true, "hash": true, "block": true, "amount": true,
	"is_send": false, "subtype": false,
}

// ParseCallback parses an HTTP callback body strictly: one JSON object
// holding "account" (an address), "hash" (64 hex digits), "block" (a JSON
// string holding one state block object, signed and with work) and
// "amount" (decimal raw), and optionally "is_send" ("true" or "false")
// and "subtype" ("send", "receive", "open", "change" or "epoch"); every
// value a JSON string, no other key, no key twice, nothing after the
// object, at most MaxCallbackBody bytes. A block that does not hash to
// "hash" is refused with an error wrapping ErrHashMismatch; one of
// another account than "account", or an "is_send" that contradicts
// "subtype", with ErrInconsistent; anything else with ErrBadResponse.
// It returns the zero Callback with an error, and never panics.
func ParseCallback(data []byte) (Callback, error) {
	if len(data) > MaxCallbackBody {
		return Callback{}, fmt.Errorf("node: callback: %w: body over %d bytes", ErrBadResponse, MaxCallbackBody)
	}
	obj, err := stringObject(data)
	if err != nil {
		return Callback{}, fmt.Errorf("node: callback: %w: %v", ErrBadResponse, err)
	}
	for k := range obj {
		if _, ok := callbackKeys[k]; !ok {
			return Callback{}, fmt.Errorf("node: callback: %w: unknown field %q", ErrBadResponse, k)
		}
	}
	for k, required := range callbackKeys {
		if _, ok := obj[k]; required && !ok {
			return Callback{}, fmt.Errorf("node: callback: %w: field %q is missing", ErrBadResponse, k)
		}
	}
	f := fields{action: "callback"}
	get := func(k string) *string {
		if v, ok := obj[k]; ok {
			return &v
		}
		return nil
	}
	cb := Callback{
		Account: f.account("account", get("account")),
		Hash:    f.hash("hash", get("hash")),
		Amount:  f.amount("amount", get("amount")),
	}
	if f.err != nil {
		return Callback{}, f.err
	}
	if v := get("is_send"); v != nil {
		if *v != "true" && *v != "false" {
			return Callback{}, fmt.Errorf("node: callback: %w: field \"is_send\": %q is not \"true\" or \"false\"", ErrBadResponse, *v)
		}
		cb.IsSend = *v == "true"
	}
	if v := get("subtype"); v != nil {
		st, err := nano.ParseSubtype(*v)
		if err != nil || st == nano.SubtypeUnknown {
			return Callback{}, fmt.Errorf("node: callback: %w: field \"subtype\": %q is not a block subtype", ErrBadResponse, *v)
		}
		cb.Subtype = st
	}
	pb, err := nano.ParseBlockJSON([]byte(obj["block"]))
	switch {
	case err != nil:
		return Callback{}, fmt.Errorf("node: callback: %w: field \"block\": %w", ErrBadResponse, err)
	case pb.Form != nano.FormBlock:
		return Callback{}, fmt.Errorf("node: callback: %w: field \"block\" is not a block object", ErrBadResponse)
	case !pb.HasSignature || !pb.HasWork:
		return Callback{}, fmt.Errorf("node: callback: %w: the block has no signature or no work", ErrBadResponse)
	}
	cb.Block = pb.Block
	if got := cb.Block.Hash(); got != cb.Hash || pb.HasClaimedHash && pb.ClaimedHash != cb.Hash {
		return Callback{}, fmt.Errorf("node: callback %s: %w: the block hashes to %s", cb.Hash, ErrHashMismatch, got)
	}
	if cb.Account != cb.Block.Account {
		return Callback{}, fmt.Errorf("node: callback %s: %w: \"account\" is not the block's account", cb.Hash, ErrInconsistent)
	}
	if cb.Subtype != nano.SubtypeUnknown && cb.IsSend != (cb.Subtype == nano.SubtypeSend) {
		return Callback{}, fmt.Errorf("node: callback %s: %w: \"is_send\" contradicts \"subtype\"", cb.Hash, ErrInconsistent)
	}
	return cb, nil
}

// stringObject decodes one JSON object whose values are all strings,
// refusing a repeated key and anything after the object.
func stringObject(data []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil {
		return nil, err
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	obj := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("an object key is not a string")
		}
		if _, dup := obj[key]; dup {
			return nil, fmt.Errorf("field %q appears twice", key)
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, err
		}
		val, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("field %q is not a JSON string", key)
		}
		obj[key] = val
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return obj, nil
}

// CallbackResult is what became of one request to a CallbackHandler.
type CallbackResult string

// The results, each request counted under exactly one.
const (
	// CallbackVerified: a confirmation checked against the node and new
	// to the feed, which delivered it.
	CallbackVerified CallbackResult = "verified"
	// CallbackDuplicate: checked against the node, but the feed had it
	// already (from the WebSocket, or an earlier callback): nothing done.
	CallbackDuplicate CallbackResult = "duplicate"
	// CallbackIgnored: a block neither of an account of ours nor a send
	// to one (the node posts every block it confirms): not looked up.
	CallbackIgnored CallbackResult = "ignored"
	// CallbackRejected: not a callback (not a POST to the path, not
	// application/json, over the bound, not a strict callback body) or a
	// lie (its block does not hash to its hash or is not its account's,
	// the node does not have it, the node's block, amount or subtype
	// differ, its signature does not verify).
	CallbackRejected CallbackResult = "rejected"
	// CallbackForbidden: from an address outside the allowed sources.
	CallbackForbidden CallbackResult = "forbidden"
	// CallbackUnverified: true or not, it could not be checked now: the
	// node could not be asked or its answer was refused, the node does
	// not say the block is confirmed, or an epoch block (signed by the
	// epoch signer, not its account). The WebSocket and block_info
	// polling still cover the block.
	CallbackUnverified CallbackResult = "unverified"
)

// CallbackResults lists every CallbackResult, for metrics.
var CallbackResults = []CallbackResult{
	CallbackVerified, CallbackDuplicate, CallbackIgnored, CallbackRejected, CallbackForbidden, CallbackUnverified,
}

// LoopbackSources are the addresses a CallbackHandler accepts callbacks
// from by default: 127.0.0.0/8 and ::1.
var LoopbackSources = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// CallbackOptions configure a CallbackHandler. The zero value gives the
// defaults.
type CallbackOptions struct {
	// Sources are the addresses callbacks are accepted from (IPv4-mapped
	// IPv6 addresses count as IPv4); nil means LoopbackSources.
	Sources []netip.Prefix
	// Path is the only request path served; "" serves every path.
	Path string
	// Ours reports whether blocks of an account, and sends to it, matter;
	// nil means every account's do.
	Ours func(nano.PublicKey) bool
	// MaxBody bounds a body; 0 means MaxCallbackBody.
	MaxBody int64
	// Timeout bounds the node queries checking one callback; 0 means 10 s.
	Timeout time.Duration
	// Log receives refused callbacks; nil discards.
	Log *slog.Logger
	// Observe, if set, is told the result of every request (for metrics).
	Observe func(CallbackResult)
}

// CallbackStats counts requests by result; Received is their sum.
type CallbackStats struct {
	Received, Verified, Duplicate, Ignored, Rejected, Forbidden, Unverified uint64
}

// CallbackHandler receives the node's HTTP callback: a POST of a JSON
// body (ParseCallback) per confirmed block. Every body is an untrusted
// hint. A request from outside the allowed sources is refused before
// anything is read; a body is parsed strictly; a block neither of nor to
// an account of ours is ignored; any other is fetched from the node by
// hash with block_info and must equal the body's (block, amount,
// subtype), carry its account's valid signature and be confirmed before
// it is delivered to the ConfirmationFeed, which drops it if another path
// brought it first. Nothing else is done with a body: what the feed
// delivers is acted on by its reader.
type CallbackHandler struct {
	client *Client
	feed   *ConfirmationFeed
	opts   CallbackOptions

	received, verified, duplicate, ignored, rejected, forbidden, unverified atomic.Uint64
}

// NewCallbackHandler returns a handler that checks callbacks with client
// and delivers confirmations to feed.
func NewCallbackHandler(client *Client, feed *ConfirmationFeed, opts CallbackOptions) *CallbackHandler {
	if opts.Sources == nil {
		opts.Sources = LoopbackSources
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = MaxCallbackBody
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &CallbackHandler{client: client, feed: feed, opts: opts}
}

// Stats returns the counters.
func (h *CallbackHandler) Stats() CallbackStats {
	return CallbackStats{
		Received: h.received.Load(), Verified: h.verified.Load(), Duplicate: h.duplicate.Load(), Ignored: h.ignored.Load(),
		Rejected: h.rejected.Load(), Forbidden: h.forbidden.Load(), Unverified: h.unverified.Load(),
	}
}

func (h *CallbackHandler) count(r CallbackResult) {
	h.received.Add(1)
	switch r {
	case CallbackVerified:
		h.verified.Add(1)
	case CallbackDuplicate:
		h.duplicate.Add(1)
	case CallbackIgnored:
		h.ignored.Add(1)
	case CallbackRejected:
		h.rejected.Add(1)
	case CallbackForbidden:
		h.forbidden.Add(1)
	default:
		h.unverified.Add(1)
	}
	if h.opts.Observe != nil {
		h.opts.Observe(r)
	}
}

// allowed reports whether the request's peer address is an allowed
// source.
func (h *CallbackHandler) allowed(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range h.opts.Sources {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ServeHTTP handles one callback. It answers 403 to a request from
// outside the allowed sources, 404 to another path, 405 to anything but
// a POST, 415 to a body that is not application/json, 413 to one over
// the bound, 400 to one that is not a callback body, 503 when the block
// could not be checked now (CallbackUnverified), and 200 otherwise — to a
// lie as to the truth: the sender learns nothing.
func (h *CallbackHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.allowed(r.RemoteAddr) {
		h.opts.Log.Warn("node: callback refused: not from an allowed source", "remote", r.RemoteAddr)
		h.count(CallbackForbidden)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	refuse := func(code int, why string) {
		h.opts.Log.Warn("node: callback refused: "+why, "remote", r.RemoteAddr)
		h.count(CallbackRejected)
		http.Error(w, why, code)
	}
	if h.opts.Path != "" && r.URL.Path != h.opts.Path {
		refuse(http.StatusNotFound, "not the callback path")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(http.StatusMethodNotAllowed, "POST only")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		refuse(http.StatusUnsupportedMediaType, "the body is not application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			refuse(http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		refuse(http.StatusBadRequest, "unreadable body")
		return
	}
	cb, err := ParseCallback(body)
	if err != nil {
		h.opts.Log.Warn("node: callback refused", "remote", r.RemoteAddr, "err", err)
		h.count(CallbackRejected)
		if errors.Is(err, ErrBadResponse) {
			http.Error(w, "not a callback body", http.StatusBadRequest)
		}
		return // a lie about its own block: 200
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	result := h.check(ctx, cb)
	h.count(result)
	if result == CallbackUnverified {
		http.Error(w, "not verified now", http.StatusServiceUnavailable)
	}
}

// ours reports whether k's blocks matter.
func (h *CallbackHandler) ours(k nano.PublicKey) bool { return h.opts.Ours == nil || h.opts.Ours(k) }

// check compares a parsed callback with the node's ledger and, when it
// holds, delivers it to the feed.
func (h *CallbackHandler) check(ctx context.Context, cb Callback) CallbackResult {
	log := h.opts.Log.With("hash", cb.Hash.String())
	b := cb.Block
	if !h.ours(b.Account) && !h.ours(nano.PublicKey(b.Link)) {
		return CallbackIgnored
	}
	bi, err := h.client.BlockInfo(ctx, cb.Hash)
	switch {
	case errors.Is(err, ErrBlockNotFound):
		log.Warn("node: forged callback: the node does not have the block")
		return CallbackRejected
	case err != nil:
		log.Warn("node: callback not verified", "err", err)
		return CallbackUnverified
	case bi.Block != b:
		log.Warn("node: forged callback: the node's block differs")
		return CallbackRejected
	case bi.Amount != cb.Amount:
		log.Warn("node: forged callback: the node's amount differs", "amount", cb.Amount.String(), "node", bi.Amount.String())
		return CallbackRejected
	}
	subtype := bi.Subtype
	if subtype == nano.SubtypeUnknown && h.opts.Ours != nil && h.ours(nano.PublicKey(b.Link)) && !nano.IsEpochLink(b.Link) {
		// A node that does not print the subtype: whether the block is a
		// send to one of ours (what makes someone else's block ours, and
		// what auto-receive acts on) is learnt from the block before it.
		st, err := h.subtypeOf(ctx, b)
		switch {
		case err == nil:
			subtype = st
		case !h.ours(b.Account):
			log.Warn("node: callback not verified: its subtype", "err", err)
			return CallbackUnverified
		}
	}
	if cb.Subtype != nano.SubtypeUnknown && subtype != nano.SubtypeUnknown && !sameSubtype(cb.Subtype, subtype) {
		log.Warn("node: forged callback: the node's subtype differs", "subtype", cb.Subtype.String(), "node", subtype.String())
		return CallbackRejected
	}
	if subtype == nano.SubtypeEpoch || nano.IsEpochLink(b.Link) {
		log.Info("node: callback not verified: an epoch block (signed by the epoch signer)")
		return CallbackUnverified
	}
	if !nano.Verify(b.Account, cb.Hash[:], b.Signature) {
		log.Warn("node: forged callback: the block's signature does not verify")
		return CallbackRejected
	}
	if !h.ours(b.Account) && subtype != nano.SubtypeSend {
		return CallbackIgnored
	}
	if !bi.Confirmed {
		log.Info("node: callback not verified: the node does not say the block is confirmed")
		return CallbackUnverified
	}
	if !h.feed.Deliver(Confirmation{Hash: cb.Hash, Account: b.Account, Amount: bi.Amount, Block: b, Subtype: subtype}) {
		return CallbackDuplicate
	}
	return CallbackVerified
}

// subtypeOf classifies b with the balance of the block before it.
func (h *CallbackHandler) subtypeOf(ctx context.Context, b nano.StateBlock) (nano.Subtype, error) {
	var prev nano.Amount
	if !b.IsOpen() {
		p, err := h.client.BlockInfo(ctx, b.Previous)
		if err != nil {
			return nano.SubtypeUnknown, err
		}
		if p.Block.Account != b.Account {
			return nano.SubtypeUnknown, fmt.Errorf("node: %w: the previous block of %s is another account's", ErrInconsistent, b.Hash())
		}
		prev = p.Block.Balance
	}
	return b.Subtype(prev)
}

// sameSubtype compares a callback's subtype with the node's: the node's
// callback calls an open block "receive".
func sameSubtype(claimed, actual nano.Subtype) bool {
	if actual == nano.SubtypeOpen {
		actual = nano.SubtypeReceive
	}
	if claimed == nano.SubtypeOpen {
		claimed = nano.SubtypeReceive
	}
	return claimed == actual
}
