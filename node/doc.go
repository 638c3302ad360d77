// Package node is the hot side's client of a Nano node: its RPC (over
// HTTP or the IPC socket), its WebSocket, its HTTP callback, proof-of-work
// providers, and a Ledger that the gateway publishes through.
//
// # Trust
//
// The node is a source of claims, not of truth. This package never trusts
// what the node says beyond what it can check:
//
//   - every block fetched by hash (block_info, blocks_info) is parsed and
//     re-hashed, and refused (ErrHashMismatch) unless it hashes to the hash
//     asked for; the answer's own block_account and balance must agree
//     with the block (ErrInconsistent);
//   - process must answer with the block's own hash;
//   - work from the node or a work server is validated locally;
//   - a WebSocket confirmation's block must hash to its "hash" and belong
//     to its "account";
//   - HTTP callback bodies are untrusted hints: a body is parsed strictly
//     (ParseCallback) and leads to a confirmation only after the block is
//     fetched from the node by hash and found equal, signed by its
//     account, confirmed and ours; forged bodies are counted and dropped;
//   - the WebSocket and the HTTP callback deliver into one
//     ConfirmationFeed, which passes each block hash on once;
//   - an account's head is read consistently (account_info, block_info of
//     the frontier, account_info again) and must belong to the account.
//
// What cannot be checked here (amounts and subtypes the node reports,
// confirmation status, receivable lists) is labelled as the node's claim
// in each type's documentation. The cold side re-verifies every block it
// signs on top of all this.
//
// # Transports
//
// HTTP posts one JSON object per request to the RPC URL (default
// http://[::1]:7076). IPC (node V18+, TCP or a Unix socket) sends, for
// each request, the preamble 'N' ENCODING 0 0 followed by a 32-bit
// big-endian length and the JSON, and reads a 32-bit big-endian length
// and the JSON back; encoding 1 is legacy RPC, 2 legacy RPC allowing
// unsafe actions. One IPC connection is reused under a lock and redialled
// after any error. Both bound answers (16 MiB by default), checking the
// announced length before allocating.
//
// The Client gives each attempt a timeout and retries, with exponential
// backoff, only transport failures (ErrTransport): never an answer from
// the node. Retrying process is safe because publishing is idempotent by
// hash: "Old block" after a retry means the first attempt got through,
// and Process reports success once block_info finds the block.
//
// # Node error messages
//
// An {"error": "..."} answer becomes a *NodeError; its Err is the sentinel
// below whose message is a case-insensitive prefix of the node's message
// (first match wins), or nil:
//
//	node message                                  sentinel
//	"Account not found in wallet"                 (none)
//	"Account not found"                           ErrAccountNotFound
//	"Block not found"                             ErrBlockNotFound
//	"Fork"                                        ErrFork
//	"Old block"                                   ErrOldBlock
//	"Gap previous block", "Gap previous"          ErrGapPrevious
//	"Gap source block", "Gap source"              ErrGapSource
//	"Block work is less than threshold"           ErrInsufficientWork
//	"Block work is insufficient"                  ErrInsufficientWork
//	"Insufficient work", "Work low"               ErrInsufficientWork
//	"Bad signature"                               ErrBadSignature
//	"Balance and amount delta do not match"       ErrBalanceMismatch
//	"Balance mismatch", "Negative spend"          ErrBalanceMismatch
//	"Unreceivable"                                ErrUnreceivable
//	"Invalid block balance for given subtype"     ErrSubtypeMismatch
//	"Invalid previous block for given subtype"    ErrSubtypeMismatch
//	"This block cannot follow the previous block" ErrBlockPosition
//	"Burning account"                             ErrBurningAccount
//	"Unknown command"                             ErrUnknownAction
//
// The messages are nano-node's (nano/lib/errors.cpp, json_handler.cpp).
// IsPermanent tells which errors retrying cannot fix; Rejection tells the
// process errors by which the node refused a block itself (the gaps
// included), and names their class.
//
// # WebSocket
//
// WS subscribes to the "confirmation" topic with {"accounts": [...]} and
// "ack": true, and waits for the acknowledgement carrying the same id; it
// changes the account set with the "update" action (accounts_add,
// accounts_del), keeps the connection alive with {"action": "ping"}
// (answered by {"ack": "pong"}), and on any loss reconnects with backoff
// and subscribes again with every current account. It subscribes to
// active_difficulty only when asked, without an acknowledgement (nodes
// after V22 no longer have that topic). WIRE.md lists every message. Notifications may
// repeat and may be missed: WS drops repeats by hash (a bounded LRU), and
// AwaitConfirmation polls block_info's "confirmed" every five seconds
// (the integration guide's rule) in any case. ParseWSMessage parses every
// topic this package meets: confirmation, vote, stopped_election and
// active_difficulty.
//
// # Work
//
// WorkProvider has three implementations: NodeWork (work_generate on the
// node, with the threshold as "difficulty"), ServerWork (several work
// servers raced; the first valid answer wins and the others get
// work_cancel) and CPUWork (nano.GenerateWork). Threshold picks the
// threshold by subtype and raises it by the node's active difficulty
// (capped at MaxMultiplier). A Precomputer computes the work for an
// account's next block as soon as its frontier is known.
//
// # What it must never do
//
// It never publishes, reports or acts on a block it has not re-hashed,
// never retries a node-level error, never allocates an answer before
// bounding its length, and holds no key material. It builds with
// CGO_ENABLED=0.
package node
