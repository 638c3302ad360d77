// Package devnode is a development peer for tests and demos: a small,
// single-process Nano ledger that answers a Nano node's RPC (over HTTP and
// IPC), WebSocket and HTTP-callback interfaces in the node's own formats.
//
// It is NOT a network node. It has no peers, no consensus, no voting, no
// bootstrapping and no representatives: a block is "confirmed" simply
// because a configurable delay has passed since it was processed. Its
// genesis account is derived from a public, all-zero development seed
// (see DevSeedHex and GenesisAddress) whose private key anyone can compute.
// It must never be pointed at, or mistaken for, a source of real funds.
//
// What it does for real:
//
//   - every processed block is validated: hash, signature under the
//     account (epoch blocks under the configured epoch signer), proof of
//     work at a configurable, by default very low, threshold, the
//     account's frontier (fork, gap, old block), the balance rules of each
//     subtype, and the existence and exact amount of the receivable a
//     receive consumes; rejections use the node's exact error strings;
//   - RPC answers have the node's keys and string-encoded numbers;
//     "contents" is a JSON string unless json_block is true;
//   - the WebSocket "confirmation" topic honours subscribe, update,
//     unsubscribe, ping and ack, with account filters, and emits
//     confirmation messages after the delay; switches drop or duplicate
//     notifications so clients can prove they dedupe and reconcile by
//     polling.
//
// The ledger lives in memory; with Options.StatePath it is also kept in a
// bbolt file and replayed at start.
package devnode
