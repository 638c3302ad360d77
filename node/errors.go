package node

import (
	"errors"
	"fmt"
	"strings"
)

// Node-level errors: the node answered {"error": "..."} with one of the
// messages in the package documentation's table. A *NodeError wraps one
// of them; branch with errors.Is. None of them is ever retried.
var (
	// ErrAccountNotFound is returned when the node has no account entry
	// ("Account not found"): the account was never opened.
	ErrAccountNotFound = errors.New("account not found")
	// ErrBlockNotFound is returned when the node does not have the block
	// ("Block not found").
	ErrBlockNotFound = errors.New("block not found")
	// ErrFork is returned by process when another block already has the
	// same root ("Fork").
	ErrFork = errors.New("fork")
	// ErrOldBlock is returned by process when the block is already in the
	// ledger ("Old block"). Client.Process turns it into success when
	// block_info finds the block.
	ErrOldBlock = errors.New("old block")
	// ErrGapPrevious is returned by process when the node does not have
	// the block's previous ("Gap previous block").
	ErrGapPrevious = errors.New("gap previous")
	// ErrGapSource is returned by process when the node does not have the
	// source block of a receive ("Gap source block").
	ErrGapSource = errors.New("gap source")
	// ErrInsufficientWork is returned when the node finds the block's
	// proof of work below its threshold ("Block work is less than
	// threshold", "Block work is insufficient").
	ErrInsufficientWork = errors.New("insufficient work")
	// ErrBadSignature is returned by process for a block whose signature
	// does not verify ("Bad signature").
	ErrBadSignature = errors.New("bad signature")
	// ErrBalanceMismatch is returned by process when the block's balance
	// does not agree with its previous and link ("Balance and amount
	// delta do not match", "Negative spend").
	ErrBalanceMismatch = errors.New("balance mismatch")
	// ErrUnreceivable is returned by process for a receive whose source is
	// not receivable by the account ("Unreceivable").
	ErrUnreceivable = errors.New("unreceivable")
	// ErrSubtypeMismatch is returned by process when the block is not of
	// the subtype sent with it ("Invalid block balance for given
	// subtype", "Invalid previous block for given subtype").
	ErrSubtypeMismatch = errors.New("block does not match its subtype")
	// ErrBlockPosition is returned by process when the block cannot follow
	// its previous ("This block cannot follow the previous block").
	ErrBlockPosition = errors.New("block position")
	// ErrBurningAccount is returned by process for a block of the burn
	// account ("Burning account").
	ErrBurningAccount = errors.New("burning account")
	// ErrUnknownAction is returned when the node does not know the RPC
	// action ("Unknown command"), for example "receivable" before V23.
	ErrUnknownAction = errors.New("unknown action")
)

// Client-side errors: what this package concluded about an answer.
var (
	// ErrTransport is returned when a request could not be delivered or
	// its answer was lost (dial, write, read, HTTP status). Only these
	// errors are retried.
	ErrTransport = errors.New("transport failure")
	// ErrResponseTooLarge is returned when an answer is longer than the
	// configured bound; the length is checked before anything is
	// allocated for the body.
	ErrResponseTooLarge = errors.New("response too large")
	// ErrBadResponse is returned when an answer is not the JSON the
	// action's documentation describes (missing or malformed fields).
	ErrBadResponse = errors.New("malformed response")
	// ErrHashMismatch is returned when a block from the node does not hash
	// to the hash it was asked for or claims (block_info, blocks_info,
	// callbacks, WebSocket notifications), or when process answers with a
	// hash other than the block's. The block is refused.
	ErrHashMismatch = errors.New("block does not hash to the expected hash")
	// ErrInconsistent is returned when the node's answer contradicts
	// itself or what it said before (block_account differs from the
	// block's account, an account's frontier belongs to someone else, a
	// head that kept moving).
	ErrInconsistent = errors.New("inconsistent answer")
	// ErrInvalidWork is returned when a work answer does not meet the
	// requested threshold over the requested root when checked locally.
	ErrInvalidWork = errors.New("work does not meet the threshold")
	// ErrNoWork is returned when no work provider produced valid work.
	ErrNoWork = errors.New("no valid work")
	// ErrClosed is returned by operations on a closed client.
	ErrClosed = errors.New("closed")
)

// NodeError is an {"error": "..."} answer from the node. Err is the
// matching sentinel (see the table in the package documentation), or nil
// for a message this package does not classify. Message is the node's
// text, untrusted and truncated; never branch on it.
type NodeError struct {
	Action  string
	Message string
	Err     error
}

// Error implements error.
func (e *NodeError) Error() string {
	return fmt.Sprintf("node: %s: the node says %q", e.Action, e.Message)
}

// Unwrap returns the sentinel the message matched, or nil.
func (e *NodeError) Unwrap() error { return e.Err }

// nodeMessages maps node error messages to sentinels. Matching is by
// case-insensitive prefix, first entry first, so that longer messages
// sharing a prefix are listed before the shorter ones (a nil sentinel
// stops the search). Keep in step with the table in doc.go.
var nodeMessages = []struct {
	prefix string
	err    error
}{
	{"Account not found in wallet", nil},
	{"Account not found", ErrAccountNotFound},
	{"Block not found", ErrBlockNotFound},
	{"Fork", ErrFork},
	{"Old block", ErrOldBlock},
	{"Gap previous", ErrGapPrevious},
	{"Gap source", ErrGapSource},
	{"Block work is less than threshold", ErrInsufficientWork},
	{"Block work is insufficient", ErrInsufficientWork},
	{"Insufficient work", ErrInsufficientWork},
	{"Work low", ErrInsufficientWork},
	{"Bad signature", ErrBadSignature},
	{"Balance and amount delta do not match", ErrBalanceMismatch},
	{"Balance mismatch", ErrBalanceMismatch},
	{"Negative spend", ErrBalanceMismatch},
	{"Unreceivable", ErrUnreceivable},
	{"Invalid block balance for given subtype", ErrSubtypeMismatch},
	{"Invalid previous block for given subtype", ErrSubtypeMismatch},
	{"This block cannot follow the previous block", ErrBlockPosition},
	{"Burning account", ErrBurningAccount},
	{"Unknown command", ErrUnknownAction},
}

// maxMessage bounds how much of a node's error text is kept.
const maxMessage = 200

// newNodeError classifies a node's error message.
func newNodeError(action, message string) *NodeError {
	if len(message) > maxMessage {
		message = message[:maxMessage] + "…"
	}
	e := &NodeError{Action: action, Message: message}
	for _, m := range nodeMessages {
		if len(message) >= len(m.prefix) && strings.EqualFold(message[:len(m.prefix)], m.prefix) {
			e.Err = m.err
			break
		}
	}
	return e
}

// IsPermanent reports whether err is one that retrying the same request
// cannot fix: the node refused the block for good (fork, bad signature,
// balance or subtype mismatch, unreceivable), or the node's answer was
// refused here (hash mismatch, inconsistency). Transport failures,
// malformed answers, gaps (the node may still be syncing), insufficient
// work (work can be regenerated) and timeouts are not permanent.
func IsPermanent(err error) bool {
	for _, p := range []error{
		ErrFork, ErrBadSignature, ErrBalanceMismatch, ErrUnreceivable, ErrSubtypeMismatch,
		ErrBlockPosition, ErrBurningAccount, ErrHashMismatch, ErrInconsistent,
	} {
		if errors.Is(err, p) {
			return true
		}
	}
	return false
}

// rejections are the process errors by which the node refuses a block
// itself, in the order Rejection looks for them.
var rejections = []error{
	ErrGapSource, ErrGapPrevious, ErrFork, ErrOldBlock, ErrBadSignature, ErrBalanceMismatch,
	ErrUnreceivable, ErrSubtypeMismatch, ErrBlockPosition, ErrBurningAccount,
}

// Rejection reports whether err is the node refusing a block it was given
// to process: a *NodeError of the "process" action whose sentinel is one
// of ErrGapSource, ErrGapPrevious, ErrFork, ErrOldBlock (a block the node
// then does not have: Client.Process turns "Old block" for a block it has
// into success), ErrBadSignature, ErrBalanceMismatch, ErrUnreceivable,
// ErrSubtypeMismatch, ErrBlockPosition or ErrBurningAccount. It returns
// that sentinel, whose text ("gap source", "fork", ...) names the class.
//
// Unlike IsPermanent, it includes the gaps: a node that is still syncing
// may later accept a block it refused for a gap, so a caller that treats
// a rejection as final must say so to whoever decides (the gateway raises
// an alert, and the operator checks other nodes before acting on it).
// Insufficient work, an unclassified message and transport failures are
// not rejections.
func Rejection(err error) (reason error, ok bool) {
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Action != "process" || ne.Err == nil {
		return nil, false
	}
	for _, r := range rejections {
		if errors.Is(ne.Err, r) {
			return r, true
		}
	}
	return nil, false
}
