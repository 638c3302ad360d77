package node

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nanokms/nanokms/nano"
)

// MaxWSMessage bounds a WebSocket message (1 MiB).
const MaxWSMessage = 1 << 20

// WSMessage is one message from the node's WebSocket: an acknowledgement
// (Ack set) or a notification (Topic set, with the payload of a known
// topic parsed into its field; unknown topics carry no payload).
type WSMessage struct {
	Ack  string // the acknowledged action: "subscribe", "update", "pong", …
	ID   string // the id the request carried, if any
	Time uint64 // milliseconds since the epoch; 0 when absent

	Topic            string
	Confirmation     *Confirmation
	Vote             *Vote
	StoppedElection  *StoppedElection
	ActiveDifficulty *ActiveDifficulty
}

// Confirmation is a confirmation notification. Block hashes to Hash and
// belongs to Account (both checked when parsed); Amount, ConfirmationType
// and Subtype are the node's claims.
type Confirmation struct {
	Hash             nano.Hash
	Account          nano.PublicKey
	Amount           nano.Amount
	ConfirmationType string // "active_quorum", "active_confirmation_height", "inactive"
	Block            nano.StateBlock
	Subtype          nano.Subtype // from the block's "subtype"; SubtypeUnknown if absent
	Time             uint64
}

// Vote is a vote notification (an experimental topic; fields as printed).
type Vote struct {
	Account   nano.PublicKey
	Signature string // hex since V21, a decimal number before
	Sequence  string // before V21
	Timestamp string // since V21
	Blocks    []nano.Hash
	Type      string // "vote", "replay", "indeterminate" (V21+)
}

// StoppedElection is a stopped_election notification.
type StoppedElection struct {
	Hash nano.Hash
}

// ParseWSMessage parses one WebSocket message from the node. It refuses
// (with an error wrapping ErrBadResponse, ErrHashMismatch or
// ErrInconsistent) a message that is not a JSON object, an
// acknowledgement or notification with malformed fields, and a
// confirmation whose block does not hash to its "hash" or belong to its
// "account". It never panics.
func ParseWSMessage(data []byte) (WSMessage, error) {
	if len(data) > MaxWSMessage {
		return WSMessage{}, fmt.Errorf("node: websocket: %w: message over %d bytes", ErrBadResponse, MaxWSMessage)
	}
	var env struct {
		Ack     *string         `json:"ack"`
		ID      *string         `json:"id"`
		Time    *string         `json:"time"`
		Topic   *string         `json:"topic"`
		Message json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return WSMessage{}, fmt.Errorf("node: websocket: %w: %v", ErrBadResponse, err)
	}
	f := fields{action: "websocket"}
	m := WSMessage{Time: f.u64("time", env.Time, false)}
	if env.ID != nil {
		m.ID = *env.ID
	}
	if f.err != nil {
		return WSMessage{}, f.err
	}
	switch {
	case env.Ack != nil && *env.Ack != "":
		m.Ack = *env.Ack
		return m, nil
	case env.Topic == nil || *env.Topic == "":
		return WSMessage{}, fmt.Errorf("node: websocket: %w: neither \"ack\" nor \"topic\"", ErrBadResponse)
	}
	m.Topic = *env.Topic
	var err error
	switch m.Topic {
	case "confirmation":
		m.Confirmation, err = parseConfirmation(env.Message, m.Time)
	case "vote":
		m.Vote, err = parseVote(env.Message)
	case "stopped_election":
		var w struct {
			Hash *string `json:"hash"`
		}
		if err = unmarshalMessage(env.Message, &w); err == nil {
			f := fields{action: "websocket stopped_election"}
			se := StoppedElection{Hash: f.hash("hash", w.Hash)}
			m.StoppedElection, err = &se, f.err
		}
	case "active_difficulty":
		var w difficultyWire
		if err = unmarshalMessage(env.Message, &w); err == nil {
			var d ActiveDifficulty
			d, err = w.parse("websocket active_difficulty")
			m.ActiveDifficulty = &d
		}
	}
	if err != nil {
		return WSMessage{}, err
	}
	return m, nil
}

func unmarshalMessage(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return fmt.Errorf("node: websocket: %w: no \"message\"", ErrBadResponse)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("node: websocket: %w: message: %v", ErrBadResponse, err)
	}
	return nil
}

func parseConfirmation(raw json.RawMessage, t uint64) (*Confirmation, error) {
	var w struct {
		Account          *string         `json:"account"`
		Amount           *string         `json:"amount"`
		Hash             *string         `json:"hash"`
		ConfirmationType *string         `json:"confirmation_type"`
		Block            json.RawMessage `json:"block"`
	}
	if err := unmarshalMessage(raw, &w); err != nil {
		return nil, err
	}
	f := fields{action: "websocket confirmation"}
	c := &Confirmation{
		Hash:    f.hash("hash", w.Hash),
		Account: f.account("account", w.Account),
		Amount:  f.amount("amount", w.Amount),
		Time:    t,
	}
	if f.err != nil {
		return nil, f.err
	}
	if w.ConfirmationType != nil {
		c.ConfirmationType = *w.ConfirmationType
	}
	if len(w.Block) == 0 {
		return nil, fmt.Errorf("node: websocket confirmation: %w: no block (subscribe with include_block)", ErrBadResponse)
	}
	pb, err := nano.ParseBlockJSON(w.Block)
	if err != nil {
		return nil, fmt.Errorf("node: websocket confirmation %s: %w: %w", c.Hash, ErrBadResponse, err)
	}
	if got := pb.Block.Hash(); got != c.Hash {
		return nil, fmt.Errorf("node: websocket confirmation %s: %w: the block hashes to %s", c.Hash, ErrHashMismatch, got)
	}
	if pb.Block.Account != c.Account {
		return nil, fmt.Errorf("node: websocket confirmation %s: %w: the block is not the account's", c.Hash, ErrInconsistent)
	}
	c.Block = pb.Block
	var st struct {
		Subtype *string `json:"subtype"`
	}
	if json.Unmarshal(w.Block, &st) == nil && st.Subtype != nil {
		c.Subtype, _ = nano.ParseSubtype(*st.Subtype)
	}
	return c, nil
}

func parseVote(raw json.RawMessage) (*Vote, error) {
	var w struct {
		Account   *string  `json:"account"`
		Signature *string  `json:"signature"`
		Sequence  *string  `json:"sequence"`
		Timestamp *string  `json:"timestamp"`
		Blocks    []string `json:"blocks"`
		Type      *string  `json:"type"`
	}
	if err := unmarshalMessage(raw, &w); err != nil {
		return nil, err
	}
	f := fields{action: "websocket vote"}
	v := &Vote{Account: f.account("account", w.Account)}
	for i, s := range w.Blocks {
		v.Blocks = append(v.Blocks, f.hash("blocks["+strconv.Itoa(i)+"]", &s))
	}
	if f.err != nil {
		return nil, f.err
	}
	for _, p := range []struct {
		dst *string
		src *string
	}{{&v.Signature, w.Signature}, {&v.Sequence, w.Sequence}, {&v.Timestamp, w.Timestamp}, {&v.Type, w.Type}} {
		if p.src != nil {
			*p.dst = *p.src
		}
	}
	if v.Signature == "" {
		return nil, fmt.Errorf("node: websocket vote: %w: no signature", ErrBadResponse)
	}
	return v, nil
}
