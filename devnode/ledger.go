package devnode

import (
	"bytes"
	"sort"

	"github.com/nanokms/nanokms/nano"
)

// record is a block in the ledger and what the ledger knows about it (the
// node's "sideband").
type record struct {
	block     nano.StateBlock
	hash      nano.Hash
	subtype   nano.Subtype // send, receive, open, change or epoch
	amount    nano.Amount  // |balance − previous balance|
	height    uint64
	timestamp uint64 // unix seconds, when processed
	successor nano.Hash
	confirmed bool
	seq       uint64 // processing order; 0 for genesis
	epoch     int    // the account's epoch after this block
}

// nodeSubtype is the subtype as the node prints it: an open block is a
// "receive" (the node has no "open" subtype in its output).
func (r *record) nodeSubtype() string {
	if r.subtype == nano.SubtypeOpen {
		return nano.SubtypeReceive.String()
	}
	return r.subtype.String()
}

// accountState is an account's entry in the ledger.
type accountState struct {
	head, open nano.Hash
	balance    nano.Amount
	rep        nano.PublicKey
	count      uint64
	modified   uint64
	epoch      int
}

type pendingKey struct {
	dest nano.PublicKey
	send nano.Hash
}

type pendingInfo struct {
	source nano.PublicKey
	amount nano.Amount
	epoch  int
}

// ledger is the in-memory ledger. It is not safe for concurrent use; Node
// guards it.
type ledger struct {
	blocks   map[nano.Hash]*record
	accounts map[nano.PublicKey]*accountState
	pending  map[pendingKey]pendingInfo
	seq      uint64
	cemented uint64

	sendThreshold, receiveThreshold uint64
	workDisabled                    bool
	epochSigner                     nano.PublicKey
}

func newLedger(send, receive uint64, disabled bool, epochSigner nano.PublicKey) *ledger {
	return &ledger{
		blocks:           make(map[nano.Hash]*record),
		accounts:         make(map[nano.PublicKey]*accountState),
		pending:          make(map[pendingKey]pendingInfo),
		sendThreshold:    send,
		receiveThreshold: receive,
		workDisabled:     disabled,
		epochSigner:      epochSigner,
	}
}

// entryThreshold is the lowest threshold any block can meet: the process
// RPC refuses work below it before the ledger looks at the block.
func (l *ledger) entryThreshold() uint64 {
	if l.workDisabled {
		return 0
	}
	return min(l.sendThreshold, l.receiveThreshold)
}

func (l *ledger) threshold(s nano.Subtype) uint64 {
	if l.workDisabled {
		return 0
	}
	switch s {
	case nano.SubtypeReceive, nano.SubtypeOpen, nano.SubtypeEpoch:
		return l.receiveThreshold
	}
	return l.sendThreshold
}

// plan is a validated block ready to be applied.
type plan struct {
	rec         record
	removeKey   *pendingKey // the receivable a receive consumes
	addKey      *pendingKey // the receivable a send creates
	addInfo     pendingInfo
	newAccount  bool
	prevBalance nano.Amount
}

// checkSubtype is the process RPC's subtype check: it runs before the
// ledger and judges the block against the account's current balance.
func (l *ledger) checkSubtype(b *nano.StateBlock, subtype string) error {
	if subtype == "" {
		return nil
	}
	if !b.Previous.IsZero() && l.blocks[b.Previous] == nil {
		return ErrGapPrevious
	}
	var balance nano.Amount
	if a := l.accounts[b.Account]; a != nil {
		balance = a.balance
	}
	c := balance.Cmp(b.Balance)
	switch subtype {
	case "send":
		if c <= 0 {
			return ErrSubtypeBalance
		}
	case "receive":
		if c > 0 {
			return ErrSubtypeBalance
		}
	case "open":
		if !b.Previous.IsZero() {
			return ErrSubtypePrevious
		}
	case "change":
		if c != 0 {
			return ErrSubtypeBalance
		}
		if b.Previous.IsZero() {
			return ErrSubtypePrevious
		}
	case "epoch":
		if c != 0 {
			return ErrSubtypeBalance
		}
		if !nano.IsEpochLink(b.Link) {
			return ErrSubtypeEpochLink
		}
	default:
		return ErrInvalidSubtype
	}
	return nil
}

// check validates b against the ledger and returns what applying it
// changes. subtype is the process RPC's optional subtype ("" for none).
// With verifyWork false (replaying a state file) work is not checked.
func (l *ledger) check(b *nano.StateBlock, subtype string, verifyWork bool) (*plan, error) {
	if err := l.checkSubtype(b, subtype); err != nil {
		return nil, err
	}
	if verifyWork && b.WorkValue() < l.entryThreshold() {
		return nil, ErrWorkLow
	}
	if nano.IsEpochLink(b.Link) {
		isEpoch, err := l.isEpochBlock(b)
		if err != nil {
			return nil, err
		}
		if isEpoch {
			return l.checkEpoch(b, verifyWork)
		}
	}
	return l.checkState(b, verifyWork)
}

// isEpochBlock tells an epoch block (epoch link, balance unchanged) from a
// send to an account whose key happens to equal an epoch link.
func (l *ledger) isEpochBlock(b *nano.StateBlock) (bool, error) {
	if b.Previous.IsZero() {
		return b.Balance.IsZero(), nil
	}
	prev := l.blocks[b.Previous]
	if prev == nil {
		return false, ErrGapPrevious
	}
	return prev.block.Balance.Cmp(b.Balance) == 0, nil
}

func epochOf(link nano.Hash) int {
	if link == nano.EpochV2Link {
		return 2
	}
	return 1
}

func (l *ledger) checkEpoch(b *nano.StateBlock, verifyWork bool) (*plan, error) {
	h := b.Hash()
	if l.blocks[h] != nil {
		return nil, ErrOld
	}
	if !nano.Verify(l.epochSigner, h[:], b.Signature) {
		return nil, ErrBadSignature
	}
	if b.Account.IsZero() {
		return nil, ErrBurningAccount
	}
	epoch := epochOf(b.Link)
	p := &plan{rec: record{block: *b, hash: h, subtype: nano.SubtypeEpoch, epoch: epoch}}
	if a := l.accounts[b.Account]; a != nil {
		switch {
		case b.Previous.IsZero():
			return nil, ErrFork
		case l.blocks[b.Previous] == nil:
			return nil, ErrGapPrevious
		case b.Previous != a.head:
			return nil, ErrFork
		case b.Balance.Cmp(a.balance) != 0:
			return nil, ErrBalanceMismatch
		case b.Representative != a.rep:
			return nil, ErrOther // the node's representative_mismatch has no message of its own
		case epoch != a.epoch+1:
			return nil, ErrBlockPosition
		}
		p.prevBalance = a.balance
		p.rec.height = a.count + 1
	} else {
		if !b.Representative.IsZero() {
			return nil, ErrOther
		}
		if !l.hasPending(b.Account) {
			return nil, ErrGapEpochOpenPending
		}
		if epoch != 1 {
			return nil, ErrBlockPosition
		}
		p.newAccount = true
		p.rec.height = 1
	}
	if verifyWork && b.WorkValue() < l.threshold(nano.SubtypeEpoch) {
		return nil, ErrInsufficientWork
	}
	return p, nil
}

func (l *ledger) hasPending(dest nano.PublicKey) bool {
	for k := range l.pending {
		if k.dest == dest {
			return true
		}
	}
	return false
}

func (l *ledger) checkState(b *nano.StateBlock, verifyWork bool) (*plan, error) {
	h := b.Hash()
	if l.blocks[h] != nil {
		return nil, ErrOld
	}
	if !nano.Verify(b.Account, h[:], b.Signature) {
		return nil, ErrBadSignature
	}
	if b.Account.IsZero() {
		return nil, ErrBurningAccount
	}
	p := &plan{rec: record{block: *b, hash: h}}
	var (
		isSend, isReceive bool
		amount            nano.Amount
		epoch             int
	)
	if a := l.accounts[b.Account]; a != nil {
		if b.Previous.IsZero() {
			return nil, ErrFork // the account is already open
		}
		if l.blocks[b.Previous] == nil {
			return nil, ErrGapPrevious
		}
		isSend = b.Balance.Cmp(a.balance) < 0
		isReceive = !isSend && !b.Link.IsZero()
		if isSend {
			amount, _ = a.balance.Sub(b.Balance)
		} else {
			amount, _ = b.Balance.Sub(a.balance)
		}
		if b.Previous != a.head {
			return nil, ErrFork // a second block on the same previous
		}
		p.prevBalance = a.balance
		p.rec.height = a.count + 1
		epoch = a.epoch
	} else {
		if !b.Previous.IsZero() {
			return nil, ErrGapPrevious
		}
		isReceive = true
		if b.Link.IsZero() {
			return nil, ErrGapSource
		}
		amount = b.Balance
		p.newAccount = true
		p.rec.height = 1
	}
	if !isSend {
		if !b.Link.IsZero() {
			if l.blocks[b.Link] == nil {
				return nil, ErrGapSource
			}
			key := pendingKey{dest: b.Account, send: b.Link}
			info, ok := l.pending[key]
			if !ok {
				return nil, ErrUnreceivable
			}
			if amount.Cmp(info.amount) != 0 {
				return nil, ErrBalanceMismatch
			}
			epoch = max(epoch, info.epoch)
			p.removeKey = &key
		} else if !amount.IsZero() {
			return nil, ErrBalanceMismatch
		}
	}
	switch {
	case isSend:
		p.rec.subtype = nano.SubtypeSend
	case isReceive && b.Previous.IsZero():
		p.rec.subtype = nano.SubtypeOpen
	case isReceive:
		p.rec.subtype = nano.SubtypeReceive
	default:
		p.rec.subtype = nano.SubtypeChange
	}
	if verifyWork && b.WorkValue() < l.threshold(p.rec.subtype) {
		return nil, ErrInsufficientWork
	}
	p.rec.amount = amount
	p.rec.epoch = epoch
	if isSend {
		key := pendingKey{dest: nano.PublicKey(b.Link), send: h}
		p.addKey = &key
		p.addInfo = pendingInfo{source: b.Account, amount: amount, epoch: epoch}
	}
	return p, nil
}

// apply inserts a checked block. now is the processing time in unix seconds.
func (l *ledger) apply(p *plan, now uint64, seq uint64) *record {
	r := p.rec
	r.timestamp = now
	r.seq = seq
	if seq > l.seq {
		l.seq = seq
	}
	rec := &r
	l.blocks[r.hash] = rec
	b := &r.block
	a := l.accounts[b.Account]
	if a == nil {
		a = &accountState{open: r.hash}
		l.accounts[b.Account] = a
	} else if prev := l.blocks[b.Previous]; prev != nil {
		prev.successor = r.hash
	}
	a.head = r.hash
	a.balance = b.Balance
	a.rep = b.Representative
	a.count++
	a.modified = now
	a.epoch = r.epoch
	if p.removeKey != nil {
		delete(l.pending, *p.removeKey)
	}
	if p.addKey != nil {
		l.pending[*p.addKey] = p.addInfo
	}
	return rec
}

// source returns the account that sent the funds a receive or open block
// took in (zero for other blocks).
func (l *ledger) source(r *record) nano.PublicKey {
	if r.subtype != nano.SubtypeReceive && r.subtype != nano.SubtypeOpen {
		return nano.PublicKey{}
	}
	if s := l.blocks[r.block.Link]; s != nil {
		return s.block.Account
	}
	return nano.PublicKey{}
}

// weight is the sum of the balances of the accounts represented by rep.
func (l *ledger) weight(rep nano.PublicKey) nano.Amount {
	var w nano.Amount
	for _, a := range l.accounts {
		if a.rep == rep {
			if s, err := w.Add(a.balance); err == nil {
				w = s
			}
		}
	}
	return w
}

// confirmedBalance is the balance after the account's highest confirmed
// block (zero when none is confirmed).
func (l *ledger) confirmedBalance(a *accountState) nano.Amount {
	for h := a.head; !h.IsZero(); {
		r := l.blocks[h]
		if r == nil {
			break
		}
		if r.confirmed {
			return r.block.Balance
		}
		h = r.block.Previous
	}
	return nano.Amount{}
}

type pendingEntry struct {
	send nano.Hash
	info pendingInfo
}

// receivable lists dest's receivables ordered by send hash, as the node's
// pending table is.
func (l *ledger) receivable(dest nano.PublicKey) []pendingEntry {
	var out []pendingEntry
	for k, v := range l.pending {
		if k.dest == dest {
			out = append(out, pendingEntry{send: k.send, info: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].send[:], out[j].send[:]) < 0 })
	return out
}
