package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// LedgerOptions configure a Ledger.
type LedgerOptions struct {
	// Client talks to the node. Required.
	Client *Client
	// WS, if set, is used for confirmations and the active difficulty;
	// Publish adds each published block's account to its account set.
	WS *WS
	// Feed, if set, is where confirmations are awaited instead of WS's
	// own feed: the feed the WebSocket (WSOptions.Feed) and the HTTP
	// callback (CallbackHandler) both deliver to.
	Feed *ConfirmationFeed
	// Work generates proof of work; nil means NodeWork{Client}.
	Work WorkProvider
	// Precomputer, if set, holds work computed ahead: Head and Publish
	// start the work for the account's next block, and Publish uses it.
	// Its provider should be Work.
	Precomputer *Precomputer
	// Thresholds are the network's base work thresholds; the zero value
	// means the live network's.
	Thresholds WorkThresholds
	// PollInterval is the block_info polling period while awaiting a
	// confirmation; 0 means DefaultPollInterval.
	PollInterval time.Duration
	// HeadAttempts bounds how many times Head re-reads an account whose
	// frontier keeps moving; 0 means 5.
	HeadAttempts int
	// Permanent, if set, is wrapped around every error that retrying
	// cannot fix (see IsPermanent), so that a caller can branch on its
	// own sentinel (the gateway passes gateway.ErrPermanent).
	Permanent error
	// Rejected, if set, is wrapped around every error by which the node
	// refused a block given to Publish (see Rejection), the gaps included
	// (the gateway passes gateway.ErrBlockRejected).
	Rejected error
	// Log receives publication events; nil discards.
	Log *slog.Logger
}

// Ledger is the gateway's view of the Nano network through one node: it
// has the method set of gateway.Ledger (Head, Source, Publish,
// AwaitConfirmed). Every block it returns was re-hashed and cross-checked
// against what the node said about it; the cold side verifies them again.
type Ledger struct {
	opts      LedgerOptions
	confirmer *Confirmer

	// published holds the blocks this ledger has just published, while a
	// feed or WebSocket delivers confirmations: awaiting one of them
	// polls block_info only after the poll interval (the node cannot
	// have confirmed it before the subscription, and the feed keeps the
	// confirmations it delivered), not at once.
	pmu       sync.Mutex
	published *hashLRU
}

// publishedKept bounds how many just-published blocks a Ledger remembers.
const publishedKept = 4096

// NewLedger returns a Ledger.
func NewLedger(opts LedgerOptions) (*Ledger, error) {
	if opts.Client == nil {
		return nil, errors.New("node: a ledger needs a client")
	}
	if opts.Work == nil {
		opts.Work = NodeWork{Client: opts.Client}
	}
	if opts.HeadAttempts <= 0 {
		opts.HeadAttempts = 5
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Ledger{
		opts:      opts,
		confirmer: &Confirmer{Client: opts.Client, Feed: opts.Feed, WS: opts.WS, PollInterval: opts.PollInterval, Log: opts.Log},
		published: newHashLRU(publishedKept),
	}, nil
}

// wrap marks permanent errors with opts.Permanent, and the node's
// refusals of a block with opts.Rejected.
func (l *Ledger) wrap(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := Rejection(err); ok && l.opts.Rejected != nil {
		err = fmt.Errorf("%w: %w", l.opts.Rejected, err)
	}
	if l.opts.Permanent != nil && IsPermanent(err) {
		err = fmt.Errorf("%w: %w", l.opts.Permanent, err)
	}
	return err
}

// Head returns the account's head block, or nil for an account the node
// has no entry for. It reads account_info, then block_info of the
// frontier, then account_info again, and starts over (up to HeadAttempts
// times) if the frontier moved in between, so that the block returned was
// the frontier throughout. The frontier block must belong to the account
// and carry account_info's balance (ErrInconsistent otherwise).
func (l *Ledger) Head(ctx context.Context, account nano.PublicKey) (*nano.StateBlock, error) {
	var lastErr error
	for attempt := 0; attempt < l.opts.HeadAttempts; attempt++ {
		before, err := l.opts.Client.AccountInfo(ctx, account)
		if errors.Is(err, ErrAccountNotFound) {
			l.precompute(account, nano.PublicKey(account))
			return nil, nil
		}
		if err != nil {
			return nil, l.wrap(err)
		}
		bi, err := l.opts.Client.BlockInfo(ctx, before.Frontier)
		if err != nil {
			if errors.Is(err, ErrBlockNotFound) {
				lastErr = err
				continue // rolled back or replaced between the two reads
			}
			return nil, l.wrap(err)
		}
		after, err := l.opts.Client.AccountInfo(ctx, account)
		if err != nil {
			return nil, l.wrap(err)
		}
		if after.Frontier != before.Frontier {
			lastErr = nil
			continue
		}
		if bi.Block.Account != account {
			return nil, l.wrap(fmt.Errorf("node: head of %s: %w: the frontier %s belongs to %s", account.Address(), ErrInconsistent, before.Frontier, bi.Block.Account.Address()))
		}
		if bi.Block.Balance != after.Balance {
			return nil, l.wrap(fmt.Errorf("node: head of %s: %w: account_info's balance is not the frontier's", account.Address(), ErrInconsistent))
		}
		l.precompute(account, nano.PublicKey(bi.Hash))
		head := bi.Block
		return &head, nil
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return nil, fmt.Errorf("node: head of %s: %w: the frontier moved on each of %d reads", account.Address(), ErrInconsistent, l.opts.HeadAttempts)
}

// precompute starts the work for the account's next block over root (the
// frontier hash, or the account key before the open block) at the
// highest threshold the next block may need.
func (l *Ledger) precompute(account nano.PublicKey, root nano.PublicKey) {
	if l.opts.Precomputer == nil {
		return
	}
	subtype := nano.SubtypeSend // the dearest; it also serves a receive or change
	if root == account {
		subtype = nano.SubtypeOpen
	}
	l.opts.Precomputer.Precompute(nano.Hash(root), l.threshold(subtype))
}

func (l *Ledger) threshold(s nano.Subtype) uint64 {
	var d DifficultySource
	if l.opts.WS != nil {
		d = l.opts.WS
	}
	return Threshold(s, l.opts.Thresholds, d)
}

// Source returns the send block with hash h and the block before it on
// its account's chain, both fetched by hash and re-hashed. A block that
// is not a send (no previous, or a balance not below the previous one) is
// refused with ErrInconsistent.
func (l *Ledger) Source(ctx context.Context, h nano.Hash) (src, prev nano.StateBlock, err error) {
	s, err := l.opts.Client.BlockInfo(ctx, h)
	if err != nil {
		return nano.StateBlock{}, nano.StateBlock{}, l.wrap(err)
	}
	if s.Block.IsOpen() {
		return nano.StateBlock{}, nano.StateBlock{}, l.wrap(fmt.Errorf("node: source %s: %w: an open block is not a send", h, ErrInconsistent))
	}
	p, err := l.opts.Client.BlockInfo(ctx, s.Block.Previous)
	if err != nil {
		return nano.StateBlock{}, nano.StateBlock{}, l.wrap(err)
	}
	if p.Block.Account != s.Block.Account {
		return nano.StateBlock{}, nano.StateBlock{}, l.wrap(fmt.Errorf("node: source %s: %w: its previous belongs to another account", h, ErrInconsistent))
	}
	if s.Block.Balance.Cmp(p.Block.Balance) >= 0 {
		return nano.StateBlock{}, nano.StateBlock{}, l.wrap(fmt.Errorf("node: source %s: %w: not a send (the balance did not fall)", h, ErrInconsistent))
	}
	return s.Block, p.Block, nil
}

// Publish attaches proof of work to b (keeping b's own work if it already
// meets the threshold; otherwise precomputed work, or work from the
// provider) and publishes it with process and subtype. It returns the
// block as published. Publishing the same block twice is harmless:
// Client.Process treats "Old block" for a block the node has as success.
func (l *Ledger) Publish(ctx context.Context, b nano.StateBlock, subtype nano.Subtype) (nano.StateBlock, error) {
	root := b.Root()
	threshold := l.threshold(subtype)
	if !nano.ValidateWork(root, b.Work, threshold) {
		var (
			w   nano.Work
			err error
		)
		if l.opts.Precomputer != nil {
			w, err = l.opts.Precomputer.Get(ctx, root, threshold)
		} else {
			w, err = l.opts.Work.Generate(ctx, root, threshold)
		}
		if err != nil {
			return nano.StateBlock{}, fmt.Errorf("node: publish %s: work: %w", b.Hash(), err)
		}
		if !nano.ValidateWork(root, w, threshold) {
			return nano.StateBlock{}, fmt.Errorf("node: publish %s: %w", b.Hash(), ErrInvalidWork)
		}
		b.Work = w
	}
	notified := l.confirmer.notified() // confirmations will be delivered as they happen
	if l.opts.WS != nil {
		// Before publishing, so that the confirmation cannot come first;
		// briefly, because polling covers a WebSocket that does not answer.
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := l.opts.WS.AddAccounts(wctx, b.Account); err != nil {
			l.opts.Log.Warn("node: could not add the account to the websocket filter; relying on polling", "err", err)
			notified = false
		}
		cancel()
	}
	hash, err := l.opts.Client.Process(ctx, b, subtype)
	if err != nil {
		return nano.StateBlock{}, l.wrap(err)
	}
	l.opts.Log.Info("node: published", "hash", hash, "subtype", subtype)
	if notified {
		l.pmu.Lock()
		l.published.add(hash)
		l.pmu.Unlock()
	}
	l.precompute(b.Account, nano.PublicKey(hash))
	return b, nil
}

// AwaitConfirmed returns when the node reports the block confirmed (in
// the feed, over the WebSocket, or by polling block_info). For a block
// this ledger has just published, with a feed or WebSocket, the first
// poll comes after the poll interval; for any other, at once (a block
// confirmed while the gateway was down is found without waiting).
func (l *Ledger) AwaitConfirmed(ctx context.Context, hash nano.Hash) error {
	l.pmu.Lock()
	fresh := l.published.remove(hash)
	l.pmu.Unlock()
	return l.wrap(l.confirmer.await(ctx, hash, fresh))
}
