package devnode

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"time"

	"github.com/nanokms/nanokms/nano"
)

type action func(n *Node, ctx context.Context, r *request) (object, error)

var actions map[string]action

func init() {
	actions = map[string]action{
		"account_balance":   (*Node).rpcAccountBalance,
		"account_info":      (*Node).rpcAccountInfo,
		"active_difficulty": (*Node).rpcActiveDifficulty,
		"block_account":     (*Node).rpcBlockAccount,
		"block_count":       (*Node).rpcBlockCount,
		"block_hash":        (*Node).rpcBlockHash,
		"block_info":        (*Node).rpcBlockInfo,
		"blocks_info":       (*Node).rpcBlocksInfo,
		"pending":           (*Node).rpcReceivable,
		"process":           (*Node).rpcProcess,
		"receivable":        (*Node).rpcReceivable,
		"version":           (*Node).rpcVersion,
		"work_cancel":       (*Node).rpcWorkCancel,
		"work_generate":     (*Node).rpcWorkGenerate,
		"work_validate":     (*Node).rpcWorkValidate,
	}
}

// Actions returns the RPC actions the node answers, sorted.
func Actions() []string {
	out := make([]string, 0, len(actions))
	for a := range actions {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// HandleRPC answers one RPC request body with the response body, exactly
// as both the HTTP and the IPC transports send it. It never panics on any
// input.
func (n *Node) HandleRPC(ctx context.Context, body []byte) (resp []byte) {
	defer func() {
		if p := recover(); p != nil {
			n.log.Error("RPC handler panicked", "panic", p)
			resp = errorBody(msgInternal)
		}
	}()
	if len(body) > maxRequestSize {
		return errorBody(msgUnableToParse)
	}
	r, err := parseRequest(body)
	if err != nil {
		return errorBody(err.Error())
	}
	name, err := r.need("action")
	if err != nil {
		return errorBody(err.Error())
	}
	act, ok := actions[name]
	if !ok {
		return errorBody(msgUnknownCommand)
	}
	out, err := act(n, ctx, r)
	if err != nil {
		return errorBody(err.Error())
	}
	if len(out) == 0 {
		return errorBody(msgEmptyResponse)
	}
	return mustMarshal(out)
}

func (n *Node) rpcAccountInfo(_ context.Context, r *request) (object, error) {
	acct, err := r.account("account")
	if err != nil {
		return nil, err
	}
	rep, err := r.flag("representative", false)
	if err != nil {
		return nil, err
	}
	weight, err := r.flag("weight", false)
	if err != nil {
		return nil, err
	}
	pending, err := r.flag("pending", false)
	if err != nil {
		return nil, err
	}
	receivable, err := r.flag("receivable", pending)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	a := n.led.accounts[acct]
	if a == nil {
		return nil, rpcError(msgAccountNotFound)
	}
	out := object{
		{"frontier", a.head.String()},
		{"open_block", a.open.String()},
		{"representative_block", a.head.String()}, // every state block names the representative
		{"balance", a.balance.String()},
		{"modified_timestamp", strconv.FormatUint(a.modified, 10)},
		{"block_count", strconv.FormatUint(a.count, 10)},
	}
	if rep {
		out = append(out, member{"representative", a.rep.Address()})
	}
	if weight {
		out = append(out, member{"weight", n.led.weight(acct).String()})
	}
	if receivable {
		total := n.receivableTotalLocked(acct, false)
		out = append(out, member{"pending", total.String()}, member{"receivable", total.String()})
	}
	return out, nil
}

// receivableTotalLocked sums acct's receivables (only those whose send is
// confirmed when confirmedOnly).
func (n *Node) receivableTotalLocked(acct nano.PublicKey, confirmedOnly bool) nano.Amount {
	var total nano.Amount
	for _, e := range n.led.receivable(acct) {
		if confirmedOnly {
			if s := n.led.blocks[e.send]; s == nil || !s.confirmed {
				continue
			}
		}
		if t, err := total.Add(e.info.amount); err == nil {
			total = t
		}
	}
	return total
}

func (n *Node) rpcAccountBalance(_ context.Context, r *request) (object, error) {
	acct, err := r.account("account")
	if err != nil {
		return nil, err
	}
	onlyConfirmed, err := r.flag("include_only_confirmed", true)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var bal nano.Amount
	if a := n.led.accounts[acct]; a != nil {
		bal = a.balance
		if onlyConfirmed {
			bal = n.led.confirmedBalance(a)
		}
	}
	pend := n.receivableTotalLocked(acct, onlyConfirmed).String()
	return object{{"balance", bal.String()}, {"pending", pend}, {"receivable", pend}}, nil
}

func (n *Node) rpcBlockAccount(_ context.Context, r *request) (object, error) {
	h, err := r.hash("hash")
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	rec := n.led.blocks[h]
	if rec == nil {
		return nil, rpcError(msgBlockNotFound)
	}
	return object{{"account", rec.block.Account.Address()}}, nil
}

func (n *Node) rpcBlockCount(_ context.Context, r *request) (object, error) {
	cemented, err := r.flag("include_cemented", true)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	out := object{
		{"count", strconv.Itoa(len(n.led.blocks))},
		{"unchecked", "0"},
	}
	if cemented {
		out = append(out, member{"cemented", strconv.FormatUint(n.led.cemented, 10)})
	}
	return out, nil
}

// blockInfoLocked is a block_info answer (and a blocks_info entry).
func (n *Node) blockInfoLocked(rec *record, jsonBlock bool) object {
	var contents any = blockString(&rec.block)
	if jsonBlock {
		contents = blockObject(&rec.block)
	}
	confirmed := "false"
	if rec.confirmed {
		confirmed = "true"
	}
	return object{
		{"block_account", rec.block.Account.Address()},
		{"amount", rec.amount.String()},
		{"balance", rec.block.Balance.String()},
		{"height", strconv.FormatUint(rec.height, 10)},
		{"local_timestamp", strconv.FormatUint(rec.timestamp, 10)},
		{"confirmed", confirmed},
		{"contents", contents},
		{"subtype", rec.nodeSubtype()},
	}
}

func (n *Node) rpcBlockInfo(_ context.Context, r *request) (object, error) {
	h, err := r.hash("hash")
	if err != nil {
		return nil, err
	}
	jsonBlock, err := r.flag("json_block", false)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	rec := n.led.blocks[h]
	if rec == nil {
		return nil, rpcError(msgBlockNotFound)
	}
	return n.blockInfoLocked(rec, jsonBlock), nil
}

func (n *Node) rpcBlocksInfo(_ context.Context, r *request) (object, error) {
	raw, ok := r.m["hashes"]
	if !ok {
		return nil, errParse
	}
	var texts []string
	if err := json.Unmarshal(raw, &texts); err != nil {
		return nil, errParse
	}
	jsonBlock, err := r.flag("json_block", false)
	if err != nil {
		return nil, err
	}
	notFound, err := r.flag("include_not_found", false)
	if err != nil {
		return nil, err
	}
	pending, err := r.flag("pending", false)
	if err != nil {
		return nil, err
	}
	receivable, err := r.flag("receivable", pending)
	if err != nil {
		return nil, err
	}
	source, err := r.flag("source", false)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var blocks object
	var missing []string
	for _, t := range texts {
		h, err := nano.ParseHash(t)
		if err != nil {
			return nil, rpcError(msgInvalidHash)
		}
		rec := n.led.blocks[h]
		if rec == nil {
			if !notFound {
				return nil, rpcError(msgBlockNotFound)
			}
			missing = append(missing, h.String())
			continue
		}
		entry := n.blockInfoLocked(rec, jsonBlock)
		if receivable {
			v := "0"
			if rec.subtype == nano.SubtypeSend {
				if _, ok := n.led.pending[pendingKey{dest: nano.PublicKey(rec.block.Link), send: rec.hash}]; ok {
					v = "1"
				}
			}
			entry = append(entry, member{"pending", v}, member{"receivable", v})
		}
		if source {
			v := "0"
			if s := n.led.source(rec); !s.IsZero() {
				v = s.Address()
			}
			entry = append(entry, member{"source_account", v})
		}
		blocks = append(blocks, member{h.String(), entry})
	}
	var blocksVal any = blocks
	if len(blocks) == 0 {
		blocksVal = ""
	}
	out := object{{"blocks", blocksVal}}
	if notFound {
		var nf any = missing
		if len(missing) == 0 {
			nf = ""
		}
		out = append(out, member{"blocks_not_found", nf})
	}
	return out, nil
}

func (n *Node) rpcBlockHash(_ context.Context, r *request) (object, error) {
	b, err := r.block(false)
	if err != nil {
		return nil, err
	}
	return object{{"hash", b.Hash().String()}}, nil
}

func (n *Node) rpcProcess(_ context.Context, r *request) (object, error) {
	async, err := r.flag("async", false)
	if err != nil {
		return nil, err
	}
	b, err := r.block(true)
	if err != nil {
		return nil, err
	}
	subtype, _, err := r.str("subtype")
	if err != nil {
		return nil, err
	}
	h, err := n.process(&b, subtype)
	if async {
		// The node queues the block and answers at once; the outcome is
		// only visible in the ledger and on the WebSocket.
		return object{{"started", "1"}}, nil
	}
	if err != nil {
		return nil, err
	}
	return object{{"hash", h.String()}}, nil
}

func (n *Node) rpcReceivable(_ context.Context, r *request) (object, error) {
	acct, err := r.account("account")
	if err != nil {
		return nil, err
	}
	count, err := r.count()
	if err != nil {
		return nil, err
	}
	var threshold nano.Amount
	if s, ok, err := r.str("threshold"); err != nil {
		return nil, err
	} else if ok {
		if threshold, err = nano.ParseAmount(s); err != nil {
			return nil, rpcError(msgBadThreshold)
		}
	}
	source, err := r.flag("source", false)
	if err != nil {
		return nil, err
	}
	minVersion, err := r.flag("min_version", false)
	if err != nil {
		return nil, err
	}
	includeActive, err := r.flag("include_active", false)
	if err != nil {
		return nil, err
	}
	onlyConfirmed, err := r.flag("include_only_confirmed", true)
	if err != nil {
		return nil, err
	}
	sorting, err := r.flag("sorting", false)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var entries []pendingEntry
	for _, e := range n.led.receivable(acct) {
		s := n.led.blocks[e.send]
		// An unconfirmed send is "in an active election" here.
		if !(s != nil && s.confirmed) && !(includeActive && !onlyConfirmed) {
			continue
		}
		if e.info.amount.Cmp(threshold) < 0 {
			continue
		}
		entries = append(entries, e)
	}
	if sorting {
		sort.SliceStable(entries, func(i, j int) bool { return entries[i].info.amount.Cmp(entries[j].info.amount) > 0 })
	}
	if uint64(len(entries)) > count {
		entries = entries[:count]
	}
	if len(entries) == 0 {
		return object{{"blocks", ""}}, nil
	}
	if threshold.IsZero() && !source && !minVersion {
		hashes := make([]string, len(entries))
		for i, e := range entries {
			hashes[i] = e.send.String()
		}
		return object{{"blocks", hashes}}, nil
	}
	var blocks object
	for _, e := range entries {
		if !source && !minVersion {
			blocks = append(blocks, member{e.send.String(), e.info.amount.String()})
			continue
		}
		entry := object{{"amount", e.info.amount.String()}}
		if source {
			entry = append(entry, member{"source", e.info.source.Address()})
		}
		if minVersion {
			entry = append(entry, member{"min_version", strconv.Itoa(e.info.epoch)})
		}
		blocks = append(blocks, member{e.send.String(), entry})
	}
	return object{{"blocks", blocks}}, nil
}

// Version is the devnode's "node_vendor" suffix.
const Version = "1.0"

func (n *Node) rpcVersion(_ context.Context, _ *request) (object, error) {
	vendor := "memory"
	if n.st != nil {
		vendor = "bbolt"
	}
	return object{
		{"rpc_version", "1"},
		{"store_version", "1"},
		{"protocol_version", "0"},
		{"node_vendor", "nanokms devnode " + Version},
		{"store_vendor", vendor},
		{"network", "dev"},
		{"network_identifier", n.genHash.String()},
		{"build_info", "nanokms devnode: a development peer, not a network node"},
	}, nil
}

// rpcActiveDifficulty answers with the configured thresholds: the devnode
// has no traffic, so the current difficulty is the minimum.
func (n *Node) rpcActiveDifficulty(_ context.Context, _ *request) (object, error) {
	send, receive := n.Thresholds()
	return object{
		{"network_minimum", hex16(send)},
		{"network_receive_minimum", hex16(receive)},
		{"network_current", hex16(send)},
		{"network_receive_current", hex16(receive)},
		{"multiplier", formatMultiplier(1)},
	}, nil
}

func (n *Node) rpcWorkCancel(_ context.Context, r *request) (object, error) {
	h, err := r.hash("hash")
	if err != nil {
		return nil, err
	}
	n.work.cancel(h)
	return object{{"success", ""}}, nil
}

// baseDifficulty is the default difficulty of work_generate and the base
// of every multiplier: the send/change threshold.
func (n *Node) baseDifficulty() uint64 {
	send, _ := n.Thresholds()
	return send
}

// difficultyOption reads "difficulty" and "multiplier" (which wins).
func (n *Node) difficultyOption(r *request) (uint64, bool, error) {
	base := n.baseDifficulty()
	d, given, err := r.hex64("difficulty", msgBadDifficulty)
	if err != nil {
		return 0, false, err
	}
	if !given {
		d = base
	}
	if s, ok, err := r.str("multiplier"); err != nil {
		return 0, false, err
	} else if ok {
		m, perr := strconv.ParseFloat(s, 64)
		if perr != nil || !(m > 0) {
			return 0, false, rpcError(msgBadMultiplier)
		}
		d = fromMultiplier(m, base)
	}
	return d, given, nil
}

func (n *Node) rpcWorkGenerate(ctx context.Context, r *request) (object, error) {
	if v, ok, err := r.str("version"); err != nil {
		return nil, err
	} else if ok && v != "work_1" {
		return nil, rpcError(msgBadWorkVersion)
	}
	if _, ok := r.m["account"]; ok {
		if _, err := r.account("account"); err != nil {
			return nil, err
		}
	}
	h, err := r.hash("hash")
	if err != nil {
		return nil, err
	}
	d, _, err := n.difficultyOption(r)
	if err != nil {
		return nil, err
	}
	send, receive := n.Thresholds()
	entry := min(send, receive)
	limit := max(fromMultiplier(maxGenerateMultiplier, n.baseDifficulty()), nano.ThresholdSend)
	if d < entry || d > limit {
		return nil, rpcError(msgDifficultyLimit)
	}
	wctx, done := n.work.start(ctx, h)
	res, err := nano.GenerateWork(wctx, h, d, nano.WorkOptions{})
	cancelled := done()
	if err != nil {
		if cancelled || errors.Is(err, context.Canceled) {
			return nil, rpcError(msgCancelled)
		}
		return nil, rpcError(msgWorkGenFailure)
	}
	return object{
		{"hash", h.String()},
		{"work", res.Work.String()},
		{"difficulty", hex16(res.Value)},
		{"multiplier", formatMultiplier(toMultiplier(res.Value, n.baseDifficulty()))},
	}, nil
}

func (n *Node) rpcWorkValidate(_ context.Context, r *request) (object, error) {
	h, err := r.hash("hash")
	if err != nil {
		return nil, err
	}
	w, _, err := r.hex64("work", msgBadWork)
	if err != nil {
		return nil, err
	}
	d, given, err := n.difficultyOption(r)
	if err != nil {
		return nil, err
	}
	send, receive := n.Thresholds()
	value := nano.WorkValue(h, nano.Work(w))
	yes := func(ok bool) string {
		if ok {
			return "1"
		}
		return "0"
	}
	var out object
	if given {
		out = append(out, member{"valid", yes(value >= d)})
	}
	return append(out,
		member{"valid_all", yes(value >= send)},
		member{"valid_receive", yes(value >= receive)},
		member{"difficulty", hex16(value)},
		member{"multiplier", formatMultiplier(toMultiplier(value, n.baseDifficulty()))},
	), nil
}

// nowMillis is the node's "time" field: milliseconds since the epoch.
func nowMillis(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
