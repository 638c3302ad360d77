package devnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// DevSeedHex is the development seed the genesis key is derived from
// (index 0): 32 zero bytes. It is public by design; anything it controls
// is worthless, and the devnode must never hold real value.
const DevSeedHex = "0000000000000000000000000000000000000000000000000000000000000000"

// GenesisAddress is the genesis account: DeriveKey(DevSeedHex, 0). Its
// private key is 9F0E444C69F77A49BD0BE89DB92C38FE713E0963165CCA12FAF5712D7657120F.
const GenesisAddress = "nano_3i1aq1cchnmbn9x5rsbap8b15akfh7wj7pwskuzi7ahz8oq6cobd99d4r3b7"

// Defaults.
const (
	// DefaultWorkThreshold is the send/change threshold: one nonce in 256 meets it.
	DefaultWorkThreshold uint64 = 0xff00000000000000
	// DefaultReceiveWorkThreshold is the receive/open/epoch threshold: one nonce in 16.
	DefaultReceiveWorkThreshold uint64 = 0xf000000000000000
	// DefaultConfirmDelay is how long a processed block waits to be confirmed.
	DefaultConfirmDelay = 200 * time.Millisecond
	// maxRequestSize bounds an RPC request (HTTP body or IPC payload).
	maxRequestSize = 1 << 20
)

// Options configure a Node. The zero value is an in-memory ledger with the
// default thresholds and delay.
type Options struct {
	// StatePath, when set, keeps the ledger in this bbolt file as well and
	// replays it at start.
	StatePath string
	// WorkThreshold is the work threshold for send and change blocks;
	// 0 selects DefaultWorkThreshold.
	WorkThreshold uint64
	// ReceiveWorkThreshold is the threshold for receive, open and epoch
	// blocks; 0 selects DefaultReceiveWorkThreshold.
	ReceiveWorkThreshold uint64
	// DisableWork accepts any work value (the CLI's --work-threshold 0).
	DisableWork bool
	// ConfirmDelay is the time between processing a block and confirming
	// it; 0 selects DefaultConfirmDelay and a negative value confirms at once.
	ConfirmDelay time.Duration
	// DropProbability drops each confirmation notification (WebSocket and
	// callback) with this probability; the block is still confirmed.
	DropProbability float64
	// DropFirst drops the next n notifications.
	DropFirst int
	// Duplicate sends every notification twice.
	Duplicate bool
	// CallbackURL, when set, receives an HTTP POST for every confirmed
	// block, as a node's HTTP callback does.
	CallbackURL string
	// EpochSigner signs epoch blocks; zero selects the genesis key.
	EpochSigner nano.PublicKey
	// RandSeed seeds the drop decisions; 0 picks a random seed.
	RandSeed uint64
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
}

// Node is a development ledger node. Create it with New; it confirms
// blocks in the background until Close.
type Node struct {
	opts    Options
	log     *slog.Logger
	delay   time.Duration
	genesis nano.PublicKey
	genKey  *nano.SigningKey
	genHash nano.Hash

	mu        sync.Mutex
	led       *ledger
	st        *store
	queue     []queued
	confirmed chan struct{} // closed and replaced at every confirmation
	held      bool          // tests: confirmations wait until released (holdConfirmations)

	notifyMu  sync.Mutex
	dropP     float64
	dropFirst int
	dup       bool
	rng       *rand.Rand

	hub  *hub
	cb   *callbacker
	work *workRegistry

	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	closeOne sync.Once
	started  time.Time
}

type queued struct {
	hash      nano.Hash
	processed time.Time
	due       time.Time
}

// devKey returns the genesis private key.
func devKey() nano.PrivateKey {
	var seed nano.Seed
	return nano.DeriveKey(&seed, 0)
}

// New creates a node with its genesis account open and, with a state
// file, the stored blocks replayed.
func New(opts Options) (*Node, error) {
	if opts.WorkThreshold == 0 {
		opts.WorkThreshold = DefaultWorkThreshold
	}
	if opts.ReceiveWorkThreshold == 0 {
		opts.ReceiveWorkThreshold = DefaultReceiveWorkThreshold
	}
	delay := opts.ConfirmDelay
	switch {
	case delay == 0:
		delay = DefaultConfirmDelay
	case delay < 0:
		delay = 0
	}
	if opts.DropProbability < 0 || opts.DropProbability > 1 {
		return nil, fmt.Errorf("devnode: drop probability %v is not between 0 and 1", opts.DropProbability)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	k := devKey()
	n := &Node{
		opts:      opts,
		log:       log,
		delay:     delay,
		genKey:    nano.NewSigningKey(&k),
		confirmed: make(chan struct{}),
		dropP:     opts.DropProbability,
		dropFirst: opts.DropFirst,
		dup:       opts.Duplicate,
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		work:      newWorkRegistry(),
		started:   time.Now(),
	}
	k.Wipe()
	seed := opts.RandSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	n.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n.genesis = n.genKey.Public()
	signer := opts.EpochSigner
	if signer.IsZero() {
		signer = n.genesis
	}
	n.led = newLedger(opts.WorkThreshold, opts.ReceiveWorkThreshold, opts.DisableWork, signer)
	n.openGenesis()
	n.hub = newHub(n)
	if opts.CallbackURL != "" {
		n.cb = newCallbacker(opts.CallbackURL, log)
	}
	if opts.StatePath != "" {
		st, err := openStore(opts.StatePath, n.genHash)
		if err != nil {
			return nil, err
		}
		n.st = st
		if err := n.replay(); err != nil {
			st.close()
			return nil, err
		}
	}
	go n.confirmLoop()
	return n, nil
}

// openGenesis inserts the genesis block: the genesis account's open block,
// self-signed, receiving the whole supply (2^128 − 1 raw) from "itself"
// (link = its own key), confirmed from the start.
func (n *Node) openGenesis() {
	b := nano.StateBlock{
		Account:        n.genesis,
		Representative: n.genesis,
		Balance:        nano.MaxAmount,
		Link:           nano.Hash(n.genesis),
	}
	// Deterministic work: the first nonce from 0 meeting the receive threshold.
	root := b.Root()
	for w := nano.Work(0); ; w++ {
		if nano.ValidateWork(root, w, n.led.threshold(nano.SubtypeOpen)) {
			b.Work = w
			break
		}
	}
	h := b.Hash()
	b.Signature = n.genKey.Sign(h[:])
	p := &plan{rec: record{block: b, hash: h, subtype: nano.SubtypeOpen, amount: nano.MaxAmount, height: 1}, newAccount: true}
	r := n.led.apply(p, uint64(n.started.Unix()), 0)
	r.confirmed = true
	n.led.cemented = 1
	n.genHash = h
}

func (n *Node) replay() error {
	blocks, confirmed, err := n.st.load()
	if err != nil {
		return err
	}
	for _, sb := range blocks {
		p, err := n.led.check(&sb.block, "", false)
		if err != nil {
			return fmt.Errorf("%w: block %d: %v", ErrStateFileInconsistent, sb.seq, err)
		}
		r := n.led.apply(p, sb.ts, sb.seq)
		if confirmed[r.hash] {
			r.confirmed = true
			n.led.cemented++
		} else {
			now := time.Now()
			n.queue = append(n.queue, queued{hash: r.hash, processed: now, due: now.Add(n.delay)})
		}
	}
	n.log.Info("state replayed", "file", n.opts.StatePath, "blocks", len(blocks))
	return nil
}

// Close stops confirming blocks and closes the state file. Serve must
// have returned first.
func (n *Node) Close() error {
	var err error
	n.closeOne.Do(func() {
		close(n.stop)
		<-n.done
		if n.cb != nil {
			n.cb.close()
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.st != nil {
			err = n.st.close()
		}
	})
	return err
}

// GenesisKey returns the genesis account's private key. It is derived
// from the public DevSeedHex: it protects nothing.
func (n *Node) GenesisKey() nano.PrivateKey { return devKey() }

// Genesis returns the genesis account's public key.
func (n *Node) Genesis() nano.PublicKey { return n.genesis }

// GenesisHash returns the genesis block's hash (the "network_identifier").
func (n *Node) GenesisHash() nano.Hash { return n.genHash }

// Thresholds returns the work thresholds in force for send/change and for
// receive/open/epoch blocks (0 when work is not checked).
func (n *Node) Thresholds() (send, receive uint64) {
	return n.led.threshold(nano.SubtypeSend), n.led.threshold(nano.SubtypeReceive)
}

// Process validates b and, if it is valid, adds it to the ledger and
// schedules its confirmation. subtype, unless SubtypeUnknown, is checked as
// the process RPC's "subtype" is. A rejection is one of the Err… values,
// whose messages are the node's.
func (n *Node) Process(b nano.StateBlock, subtype nano.Subtype) (nano.Hash, error) {
	text := ""
	if subtype != nano.SubtypeUnknown {
		text = subtype.String()
	}
	return n.process(&b, text)
}

func (n *Node) process(b *nano.StateBlock, subtype string) (nano.Hash, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, err := n.led.check(b, subtype, true)
	if err != nil {
		return nano.Hash{}, err
	}
	now := time.Now()
	ts := uint64(now.Unix())
	seq := n.led.seq + 1
	if n.st != nil {
		if err := n.st.putBlock(seq, b, ts); err != nil {
			n.log.Error("state file write failed", "err", err)
			return nano.Hash{}, ErrOther
		}
	}
	r := n.led.apply(p, ts, seq)
	n.queue = append(n.queue, queued{hash: r.hash, processed: now, due: now.Add(n.delay)})
	select {
	case n.wake <- struct{}{}:
	default:
	}
	n.log.Debug("processed", "hash", r.hash.String(), "subtype", r.subtype.String(), "account", b.Account.Address())
	return r.hash, nil
}

// Confirmed reports whether the block is confirmed (false when unknown).
func (n *Node) Confirmed(h nano.Hash) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.led.blocks[h]
	return r != nil && r.confirmed
}

// WaitConfirmed blocks until the block is confirmed or ctx is done.
func (n *Node) WaitConfirmed(ctx context.Context, h nano.Hash) error {
	for {
		n.mu.Lock()
		r := n.led.blocks[h]
		ok := r != nil && r.confirmed
		ch := n.confirmed
		n.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// holdConfirmations stops confirming (on) until it is called again with
// off; the blocks that came due meanwhile are then confirmed at once, in
// order. Tests use it to process several blocks before any is confirmed,
// however slow the host.
func (n *Node) holdConfirmations(on bool) {
	n.mu.Lock()
	n.held = on
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// SetDrop sets the probability (0 to 1) of dropping each notification.
func (n *Node) SetDrop(p float64) {
	n.notifyMu.Lock()
	defer n.notifyMu.Unlock()
	n.dropP = min(max(p, 0), 1)
}

// SetDropNext drops the next count notifications.
func (n *Node) SetDropNext(count int) {
	n.notifyMu.Lock()
	defer n.notifyMu.Unlock()
	n.dropFirst = max(count, 0)
}

// SetDuplicate makes every notification be sent twice (or once again).
func (n *Node) SetDuplicate(on bool) {
	n.notifyMu.Lock()
	defer n.notifyMu.Unlock()
	n.dup = on
}

// notifyPlan decides how many times the next notification is sent: 0
// (dropped), 1 or 2.
func (n *Node) notifyPlan() int {
	n.notifyMu.Lock()
	defer n.notifyMu.Unlock()
	if n.dropFirst > 0 {
		n.dropFirst--
		return 0
	}
	if n.dropP > 0 && n.rng.Float64() < n.dropP {
		return 0
	}
	if n.dup {
		return 2
	}
	return 1
}

// event is one confirmation, as the notifiers see it.
type event struct {
	rec       record
	confType  string
	duration  time.Duration
	confirmed time.Time
	times     int // how many times it is sent: 0 (dropped), 1 or 2
}

func (n *Node) confirmLoop() {
	defer close(n.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var events []event
		n.mu.Lock()
		for !n.held && len(n.queue) > 0 && !n.queue[0].due.After(now) {
			q := n.queue[0]
			n.queue = n.queue[1:]
			if ev, ok := n.confirmLocked(q, now); ok {
				events = append(events, ev)
			}
		}
		wait := time.Duration(-1)
		if !n.held && len(n.queue) > 0 {
			wait = max(n.queue[0].due.Sub(now), 0)
		}
		if len(events) > 0 {
			close(n.confirmed)
			n.confirmed = make(chan struct{})
		}
		n.mu.Unlock()
		for _, ev := range events {
			n.deliver(ev)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-n.stop:
			return
		case <-n.wake:
		case <-tc:
		}
	}
}

// confirmLocked confirms one queued block. A block that already has a
// successor is confirmed implicitly ("inactive"), as a node confirms
// blocks below a confirmed frontier; a frontier is "active_quorum".
func (n *Node) confirmLocked(q queued, now time.Time) (event, bool) {
	r := n.led.blocks[q.hash]
	if r == nil || r.confirmed {
		return event{}, false
	}
	if n.st != nil {
		if err := n.st.putConfirmed(r.hash); err != nil {
			n.log.Error("state file write failed", "err", err)
		}
	}
	r.confirmed = true
	n.led.cemented++
	// The drop and duplicate switches are read here, at confirmation, so
	// that once WaitConfirmed returns the decision has been taken.
	ev := event{rec: *r, confType: "active_quorum", duration: now.Sub(q.processed), confirmed: now, times: n.notifyPlan()}
	if !r.successor.IsZero() {
		ev.confType = "inactive"
	}
	return ev, true
}

// deliver sends a confirmation's notifications, subject to the drop and
// duplicate switches.
func (n *Node) deliver(ev event) {
	if ev.times == 0 {
		n.log.Info("notification dropped", "hash", ev.rec.hash.String())
		return
	}
	for i := 0; i < ev.times; i++ {
		n.hub.broadcast(ev)
		if n.cb != nil {
			n.cb.post(callbackBody(&ev.rec))
		}
	}
}

// Fund sends amount from the genesis account to dest (it stays receivable
// there) and returns the send's hash.
func (n *Node) Fund(ctx context.Context, dest nano.PublicKey, amount nano.Amount) (nano.Hash, error) {
	for attempt := 0; ; attempt++ {
		n.mu.Lock()
		a := n.led.accounts[n.genesis]
		head, bal := a.head, a.balance
		n.mu.Unlock()
		nb, err := bal.Sub(amount)
		if err != nil || amount.IsZero() {
			return nano.Hash{}, fmt.Errorf("devnode: genesis cannot send %s raw (balance %s)", amount, bal)
		}
		b := nano.StateBlock{
			Account:        n.genesis,
			Previous:       head,
			Representative: n.genesis,
			Balance:        nb,
			Link:           nano.Hash(dest),
		}
		h := b.Hash()
		b.Signature = n.genKey.Sign(h[:])
		send, _ := n.Thresholds()
		res, err := nano.GenerateWork(ctx, b.Root(), send, nano.WorkOptions{})
		if err != nil {
			return nano.Hash{}, err
		}
		b.Work = res.Work
		hash, err := n.Process(b, nano.SubtypeSend)
		if errors.Is(err, ErrFork) && attempt < 3 {
			continue // the genesis frontier moved meanwhile
		}
		return hash, err
	}
}
