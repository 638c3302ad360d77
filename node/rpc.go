package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/nanokms/nanokms/nano"
)

// AccountInfo is the node's account_info answer. Every field is the
// node's claim: Head cross-checks Frontier and Balance against the
// frontier block itself.
type AccountInfo struct {
	Frontier            nano.Hash
	OpenBlock           nano.Hash
	RepresentativeBlock nano.Hash
	Balance             nano.Amount
	ModifiedTimestamp   uint64
	BlockCount          uint64
	// Representative is set when the node printed it (it is asked for).
	Representative    nano.PublicKey
	HasRepresentative bool
	// ConfirmationHeight is 0 when the node did not print it (before V19).
	ConfirmationHeight uint64
}

// AccountInfo returns account_info for account, with its representative.
// An account the node has no entry for returns an error wrapping
// ErrAccountNotFound.
func (c *Client) AccountInfo(ctx context.Context, account nano.PublicKey) (AccountInfo, error) {
	req := struct {
		Action         string `json:"action"`
		Representative string `json:"representative"`
		Account        string `json:"account"`
	}{"account_info", "true", account.Address()}
	var resp struct {
		Frontier            *string `json:"frontier"`
		OpenBlock           *string `json:"open_block"`
		RepresentativeBlock *string `json:"representative_block"`
		Balance             *string `json:"balance"`
		ModifiedTimestamp   *string `json:"modified_timestamp"`
		BlockCount          *string `json:"block_count"`
		Representative      *string `json:"representative"`
		ConfirmationHeight  *string `json:"confirmation_height"`
	}
	if err := c.call(ctx, "account_info", req, &resp); err != nil {
		return AccountInfo{}, err
	}
	f := fields{action: "account_info"}
	ai := AccountInfo{
		Frontier:            f.hash("frontier", resp.Frontier),
		OpenBlock:           f.hash("open_block", resp.OpenBlock),
		RepresentativeBlock: f.hash("representative_block", resp.RepresentativeBlock),
		Balance:             f.amount("balance", resp.Balance),
		ModifiedTimestamp:   f.u64("modified_timestamp", resp.ModifiedTimestamp, false),
		BlockCount:          f.u64("block_count", resp.BlockCount, true),
		ConfirmationHeight:  f.u64("confirmation_height", resp.ConfirmationHeight, false),
	}
	if resp.Representative != nil {
		ai.Representative = f.account("representative", resp.Representative)
		ai.HasRepresentative = true
	}
	if f.err != nil {
		return AccountInfo{}, f.err
	}
	return ai, nil
}

// BlockInfo is a block fetched by hash, with what the node says about it.
// Block is checked: it hashes to Hash, and the node's block_account and
// balance agree with it. Amount, Height, Confirmed and Subtype are the
// node's claims.
type BlockInfo struct {
	Hash    nano.Hash
	Block   nano.StateBlock
	Account nano.PublicKey
	// Amount is the node's "amount" (what the block moved); it is not
	// checked here (that needs the previous block).
	Amount         nano.Amount
	Balance        nano.Amount
	Height         uint64
	LocalTimestamp uint64
	// Confirmed is the node's "confirmed"; HasConfirmed is false for a
	// node that does not print it (before V19).
	Confirmed, HasConfirmed bool
	// Subtype is the node's "subtype", SubtypeUnknown when absent or not
	// recognised.
	Subtype nano.Subtype
	// Successor is the next block on the account's chain, zero when none
	// or not printed.
	Successor nano.Hash
}

// blockEntry is the JSON of a block_info answer or a blocks_info entry.
type blockEntry struct {
	BlockAccount   *string         `json:"block_account"`
	Amount         *string         `json:"amount"`
	Balance        *string         `json:"balance"`
	Height         *string         `json:"height"`
	LocalTimestamp *string         `json:"local_timestamp"`
	Successor      *string         `json:"successor"`
	Confirmed      *flexString     `json:"confirmed"`
	Contents       json.RawMessage `json:"contents"`
	Subtype        *string         `json:"subtype"`
}

// check turns an entry into a BlockInfo, refusing a block that does not
// hash to want or disagrees with the entry's own fields.
func (e *blockEntry) check(action string, want nano.Hash) (BlockInfo, error) {
	if len(e.Contents) == 0 {
		return BlockInfo{}, fmt.Errorf("node: %s %s: %w: field \"contents\" is missing", action, want, ErrBadResponse)
	}
	pb, err := nano.ParseBlockJSON(e.Contents)
	if err != nil {
		return BlockInfo{}, fmt.Errorf("node: %s %s: %w: contents: %w", action, want, ErrBadResponse, err)
	}
	if got := pb.Block.Hash(); got != want {
		return BlockInfo{}, fmt.Errorf("node: %s %s: %w: the contents hash to %s", action, want, ErrHashMismatch, got)
	}
	f := fields{action: action}
	bi := BlockInfo{
		Hash:           want,
		Block:          pb.Block,
		Account:        pb.Block.Account,
		Balance:        pb.Block.Balance,
		Height:         f.u64("height", e.Height, false),
		LocalTimestamp: f.u64("local_timestamp", e.LocalTimestamp, false),
		Confirmed:      f.boolean("confirmed", (*string)(e.Confirmed)),
		HasConfirmed:   e.Confirmed != nil,
	}
	if e.Amount != nil {
		bi.Amount = f.amount("amount", e.Amount)
	}
	if e.Successor != nil && *e.Successor != "0" && *e.Successor != "" {
		bi.Successor = f.hash("successor", e.Successor)
	}
	var claimedAccount nano.PublicKey
	if e.BlockAccount != nil {
		claimedAccount = f.account("block_account", e.BlockAccount)
	}
	var claimedBalance nano.Amount
	if e.Balance != nil {
		claimedBalance = f.amount("balance", e.Balance)
	}
	if f.err != nil {
		return BlockInfo{}, f.err
	}
	if e.BlockAccount != nil && claimedAccount != pb.Block.Account {
		return BlockInfo{}, fmt.Errorf("node: %s %s: %w: block_account is not the block's account", action, want, ErrInconsistent)
	}
	if e.Balance != nil && claimedBalance != pb.Block.Balance {
		return BlockInfo{}, fmt.Errorf("node: %s %s: %w: balance is not the block's balance", action, want, ErrInconsistent)
	}
	if e.Subtype != nil {
		bi.Subtype, _ = nano.ParseSubtype(*e.Subtype)
	}
	return bi, nil
}

// BlockInfo returns the block with hash h. The block is re-hashed: one
// that does not hash to h is refused with an error wrapping
// ErrHashMismatch. A legacy (non-state) block is refused with an error
// wrapping ErrBadResponse and nano.ErrNotStateBlock. "contents" is
// accepted as a JSON string (as the node prints it by default) or object.
func (c *Client) BlockInfo(ctx context.Context, h nano.Hash) (BlockInfo, error) {
	req := struct {
		Action string `json:"action"`
		Hash   string `json:"hash"`
	}{"block_info", h.String()}
	var resp blockEntry
	if err := c.call(ctx, "block_info", req, &resp); err != nil {
		return BlockInfo{}, err
	}
	return resp.check("block_info", h)
}

// BlocksInfo returns the blocks among hashes that the node has, by hash;
// the ones it does not have are absent. Each block is checked as
// BlockInfo checks it, and an answer naming a block not asked for is
// refused with ErrInconsistent.
func (c *Client) BlocksInfo(ctx context.Context, hashes []nano.Hash) (map[nano.Hash]BlockInfo, error) {
	out := make(map[nano.Hash]BlockInfo, len(hashes))
	if len(hashes) == 0 {
		return out, nil
	}
	hs := make([]string, len(hashes))
	asked := make(map[nano.Hash]bool, len(hashes))
	for i, h := range hashes {
		hs[i] = h.String()
		asked[h] = true
	}
	req := struct {
		Action          string   `json:"action"`
		Hashes          []string `json:"hashes"`
		IncludeNotFound string   `json:"include_not_found"`
	}{"blocks_info", hs, "true"}
	var resp struct {
		Blocks json.RawMessage `json:"blocks"`
	}
	if err := c.call(ctx, "blocks_info", req, &resp); err != nil {
		return nil, err
	}
	if isEmptyString(resp.Blocks) {
		return out, nil
	}
	var entries map[string]blockEntry
	if err := json.Unmarshal(resp.Blocks, &entries); err != nil {
		return nil, fmt.Errorf("node: blocks_info: %w: blocks: %v", ErrBadResponse, err)
	}
	for k, e := range entries {
		h, err := nano.ParseHash(k)
		if err != nil {
			return nil, fmt.Errorf("node: blocks_info: %w: key %q: %v", ErrBadResponse, k, err)
		}
		if !asked[h] {
			return nil, fmt.Errorf("node: blocks_info: %w: block %s was not asked for", ErrInconsistent, h)
		}
		bi, err := e.check("blocks_info", h)
		if err != nil {
			return nil, err
		}
		out[h] = bi
	}
	return out, nil
}

// Receivable is a block waiting to be received, as the node lists it.
// Amount and Source are the node's claims: fetch the send block with
// BlockInfo before relying on them.
type Receivable struct {
	Hash      nano.Hash
	Amount    nano.Amount
	HasAmount bool
	Source    nano.PublicKey
	HasSource bool
}

// Receivable lists up to count blocks receivable by account with an amount
// of at least threshold (zero: no threshold), largest first. It asks for
// "receivable" and, when the node does not know that action (before V23),
// for "pending". With source=true the node answers {hash: {amount,
// source}}; the other shapes ([hash…] and {hash: amount}) and the node's
// "" for an empty list are accepted too.
func (c *Client) Receivable(ctx context.Context, account nano.PublicKey, count int, threshold nano.Amount) ([]Receivable, error) {
	if count <= 0 {
		return nil, fmt.Errorf("node: receivable: count %d is not positive", count)
	}
	req := struct {
		Action    string `json:"action"`
		Account   string `json:"account"`
		Count     string `json:"count"`
		Threshold string `json:"threshold,omitempty"`
		Source    string `json:"source"`
	}{"receivable", account.Address(), strconv.Itoa(count), "", "true"}
	if !threshold.IsZero() {
		req.Threshold = threshold.String()
	}
	var resp struct {
		Blocks json.RawMessage `json:"blocks"`
	}
	err := c.call(ctx, "receivable", req, &resp)
	if errors.Is(err, ErrUnknownAction) {
		req.Action = "pending"
		err = c.call(ctx, "pending", req, &resp)
	}
	if err != nil {
		return nil, err
	}
	list, err := parseReceivable(req.Action, resp.Blocks)
	if err != nil {
		return nil, err
	}
	if len(list) > count {
		return nil, fmt.Errorf("node: %s: %w: %d blocks listed, %d asked for", req.Action, ErrInconsistent, len(list), count)
	}
	for _, r := range list {
		if r.HasAmount && r.Amount.Cmp(threshold) < 0 {
			return nil, fmt.Errorf("node: %s: %w: block %s is below the threshold", req.Action, ErrInconsistent, r.Hash)
		}
	}
	return list, nil
}

func parseReceivable(action string, raw json.RawMessage) ([]Receivable, error) {
	bad := func(err error) error { return fmt.Errorf("node: %s: %w: blocks: %v", action, ErrBadResponse, err) }
	if isEmptyString(raw) {
		return nil, nil
	}
	t := bytes.TrimSpace(raw)
	var out []Receivable
	switch t[0] {
	case '[':
		var hs []string
		if err := json.Unmarshal(t, &hs); err != nil {
			return nil, bad(err)
		}
		for _, s := range hs {
			h, err := nano.ParseHash(s)
			if err != nil {
				return nil, bad(err)
			}
			out = append(out, Receivable{Hash: h})
		}
	case '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(t, &m); err != nil {
			return nil, bad(err)
		}
		for k, v := range m {
			h, err := nano.ParseHash(k)
			if err != nil {
				return nil, bad(err)
			}
			r := Receivable{Hash: h, HasAmount: true}
			v = bytes.TrimSpace(v)
			var amount, source *string
			if len(v) > 0 && v[0] == '"' {
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					return nil, bad(err)
				}
				amount = &s
			} else {
				var e struct {
					Amount *string `json:"amount"`
					Source *string `json:"source"`
				}
				if err := json.Unmarshal(v, &e); err != nil {
					return nil, bad(err)
				}
				amount, source = e.Amount, e.Source
			}
			f := fields{action: action}
			r.Amount = f.amount(k+".amount", amount)
			if source != nil {
				r.Source = f.account(k+".source", source)
				r.HasSource = true
			}
			if f.err != nil {
				return nil, f.err
			}
			out = append(out, r)
		}
	default:
		return nil, bad(errors.New("neither a list nor an object"))
	}
	slices.SortFunc(out, func(a, b Receivable) int {
		if c := b.Amount.Cmp(a.Amount); c != 0 {
			return c
		}
		return bytes.Compare(a.Hash[:], b.Hash[:])
	})
	return out, nil
}

// WorkGenerate asks the node (or a work server) for work over root meeting
// difficulty. The answer is checked locally: work below difficulty is
// refused with an error wrapping ErrInvalidWork.
func (c *Client) WorkGenerate(ctx context.Context, root nano.Hash, difficulty uint64) (nano.Work, error) {
	req := struct {
		Action     string `json:"action"`
		Hash       string `json:"hash"`
		Difficulty string `json:"difficulty"`
	}{"work_generate", root.String(), fmt.Sprintf("%016x", difficulty)}
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	var resp struct {
		Work *string `json:"work"`
		Hash *string `json:"hash"`
	}
	if err := c.callRaw(ctx, "work_generate", body, c.opts.WorkTimeout, &resp); err != nil {
		return 0, err
	}
	if resp.Work == nil {
		return 0, fmt.Errorf("node: work_generate: %w: field \"work\" is missing", ErrBadResponse)
	}
	w, err := nano.ParseWork(*resp.Work)
	if err != nil {
		return 0, fmt.Errorf("node: work_generate: %w: work: %w", ErrBadResponse, err)
	}
	if resp.Hash != nil {
		if h, err := nano.ParseHash(*resp.Hash); err != nil || h != root {
			return 0, fmt.Errorf("node: work_generate: %w: the answer is for another root", ErrInconsistent)
		}
	}
	if !nano.ValidateWork(root, w, difficulty) {
		return 0, fmt.Errorf("node: work_generate: %w: %s over %s is %016x, want %016x",
			ErrInvalidWork, w, root, nano.WorkValue(root, w), difficulty)
	}
	return w, nil
}

// WorkValidation is the node's work_validate answer, after Value was
// checked against the locally computed work value.
type WorkValidation struct {
	// Valid is the node's verdict at the difficulty asked for (false when
	// none was given).
	Valid bool
	// ValidAll and ValidReceive are the node's verdicts at its send/change
	// and receive thresholds.
	ValidAll, ValidReceive bool
	// Value is the work value (the node's "difficulty"), equal to
	// nano.WorkValue(root, work).
	Value uint64
}

// WorkValidate asks the node to validate work over root, at difficulty
// when non-zero. A node whose work value disagrees with the local
// computation is refused with ErrInconsistent.
func (c *Client) WorkValidate(ctx context.Context, root nano.Hash, work nano.Work, difficulty uint64) (WorkValidation, error) {
	req := struct {
		Action     string `json:"action"`
		Work       string `json:"work"`
		Hash       string `json:"hash"`
		Difficulty string `json:"difficulty,omitempty"`
	}{Action: "work_validate", Work: work.String(), Hash: root.String()}
	if difficulty != 0 {
		req.Difficulty = fmt.Sprintf("%016x", difficulty)
	}
	var resp struct {
		Valid        *string `json:"valid"`
		ValidAll     *string `json:"valid_all"`
		ValidReceive *string `json:"valid_receive"`
		Difficulty   *string `json:"difficulty"`
	}
	if err := c.call(ctx, "work_validate", req, &resp); err != nil {
		return WorkValidation{}, err
	}
	f := fields{action: "work_validate"}
	v := WorkValidation{
		Valid:        f.boolean("valid", resp.Valid),
		ValidAll:     f.boolean("valid_all", resp.ValidAll),
		ValidReceive: f.boolean("valid_receive", resp.ValidReceive),
		Value:        f.difficulty("difficulty", resp.Difficulty, true),
	}
	if f.err != nil {
		return WorkValidation{}, f.err
	}
	if local := nano.WorkValue(root, work); v.Value != local {
		return WorkValidation{}, fmt.Errorf("node: work_validate: %w: the node computes %016x, locally %016x", ErrInconsistent, v.Value, local)
	}
	if difficulty != 0 && v.Valid != (v.Value >= difficulty) {
		return WorkValidation{}, fmt.Errorf("node: work_validate: %w: \"valid\" contradicts the work value", ErrInconsistent)
	}
	return v, nil
}

// WorkCancel asks the node (or a work server) to stop generating work for
// root.
func (c *Client) WorkCancel(ctx context.Context, root nano.Hash) error {
	req := struct {
		Action string `json:"action"`
		Hash   string `json:"hash"`
	}{"work_cancel", root.String()}
	return c.call(ctx, "work_cancel", req, nil)
}

// Process publishes b (as a JSON object, "json_block": "true") with
// subtype, which the node checks. It returns b's hash, after checking that
// the node's answer names it (ErrHashMismatch otherwise).
//
// Publishing is idempotent by hash, so Process is retried on transport
// failures like every call. "Old block" means the block is already in the
// ledger (a retry whose first attempt got through, or a second publish):
// Process then fetches the block with BlockInfo and returns success when
// the node has it; otherwise it returns the error wrapping ErrOldBlock.
func (c *Client) Process(ctx context.Context, b nano.StateBlock, subtype nano.Subtype) (nano.Hash, error) {
	want := b.Hash()
	body, err := nano.ProcessRequest(&b, subtype, true)
	if err != nil {
		return nano.Hash{}, fmt.Errorf("node: process: %w", err)
	}
	var resp struct {
		Hash *string `json:"hash"`
	}
	err = c.callRaw(ctx, "process", body, c.opts.Timeout, &resp)
	if errors.Is(err, ErrOldBlock) || errors.Is(err, ErrSubtypeMismatch) {
		// A resend of a block the node has: "Old block", or, when the
		// subtype is checked against the account's new balance first,
		// "Invalid block balance for given subtype". Either is success
		// when the node has exactly this block.
		_, ierr := c.BlockInfo(ctx, want)
		switch {
		case ierr == nil:
			return want, nil
		case !errors.Is(ierr, ErrBlockNotFound):
			// Whether the node has the block is unknown: the lookup's
			// error decides (a transport failure is retried), never the
			// refusal, which would wrongly report the block rejected.
			return nano.Hash{}, fmt.Errorf("node: process: the node answered %q, and looking the block up failed: %w", processMessage(err), ierr)
		}
		return nano.Hash{}, err
	}
	if err != nil {
		return nano.Hash{}, err
	}
	f := fields{action: "process"}
	got := f.hash("hash", resp.Hash)
	if f.err != nil {
		return nano.Hash{}, f.err
	}
	if got != want {
		return nano.Hash{}, fmt.Errorf("node: process: %w: the node answered %s for block %s", ErrHashMismatch, got, want)
	}
	return want, nil
}

// processMessage returns the node's text of a process error.
func processMessage(err error) string {
	var ne *NodeError
	if errors.As(err, &ne) {
		return ne.Message
	}
	return err.Error()
}

// BlockCount is the node's block_count answer.
type BlockCount struct {
	Count, Unchecked, Cemented uint64
}

// BlockCount returns the node's block counts.
func (c *Client) BlockCount(ctx context.Context) (BlockCount, error) {
	var resp struct {
		Count     *string `json:"count"`
		Unchecked *string `json:"unchecked"`
		Cemented  *string `json:"cemented"`
	}
	if err := c.call(ctx, "block_count", map[string]string{"action": "block_count"}, &resp); err != nil {
		return BlockCount{}, err
	}
	f := fields{action: "block_count"}
	bc := BlockCount{
		Count:     f.u64("count", resp.Count, true),
		Unchecked: f.u64("unchecked", resp.Unchecked, false),
		Cemented:  f.u64("cemented", resp.Cemented, false),
	}
	return bc, f.err
}

// Version is the node's version answer, as printed.
type Version struct {
	RPCVersion        string `json:"rpc_version"`
	StoreVersion      string `json:"store_version"`
	ProtocolVersion   string `json:"protocol_version"`
	NodeVendor        string `json:"node_vendor"`
	StoreVendor       string `json:"store_vendor"`
	Network           string `json:"network"`
	NetworkIdentifier string `json:"network_identifier"`
	BuildInfo         string `json:"build_info"`
}

// Version returns the node's version answer.
func (c *Client) Version(ctx context.Context) (Version, error) {
	var v Version
	if err := c.call(ctx, "version", map[string]string{"action": "version"}, &v); err != nil {
		return Version{}, err
	}
	if v.NodeVendor == "" && v.RPCVersion == "" {
		return Version{}, fmt.Errorf("node: version: %w: neither node_vendor nor rpc_version", ErrBadResponse)
	}
	return v, nil
}

// ActiveDifficulty returns the node's active_difficulty answer.
func (c *Client) ActiveDifficulty(ctx context.Context) (ActiveDifficulty, error) {
	var resp difficultyWire
	if err := c.call(ctx, "active_difficulty", map[string]string{"action": "active_difficulty"}, &resp); err != nil {
		return ActiveDifficulty{}, err
	}
	return resp.parse("active_difficulty")
}

// flexString is a JSON string that also accepts a JSON boolean (newer
// nodes print "confirmed" as true/false, older ones as "true"/"false").
type flexString string

// UnmarshalJSON implements json.Unmarshaler.
func (s *flexString) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true", "false":
		*s = flexString(b)
		return nil
	}
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = flexString(v)
	return nil
}
