// Package signer is the cold signer: it verifies a signing request against
// its own durable record of each account, applies policy and approvals,
// records the decision, signs through the token-backed key store, and
// serves all of that over gRPC.
//
// # What it derives itself
//
// The hot side is assumed compromised. The signer recomputes the head
// block's hash from its contents, checks the head's signature under the
// account key (or the configured epoch signer), checks that the head is the
// frontier it last recorded, builds the new block from the verified head
// and the approved intent, and only then consults policy. A receive is
// checked against the source send block and the block before it, both
// verified by hash and signature.
//
// # Fork-proof state
//
// A signature leaves the signer only after the decision, the signed block
// and the new frontier are committed to the bbolt file (fsync). At most one
// block is ever signed on a given previous block: a request on an old head
// whose successor was signed but not seen published is refused with that
// block (PENDING_BLOCK), so the hot side publishes it instead. A repeated
// request id with the same intent returns the identical stored response.
//
// # What it must never do
//
// It never signs a block it did not build from a verified head, never
// signs twice on one previous, never answers before the decision is
// durable, and never logs or returns key material, seeds or PINs. It
// never logs, answers or records caller input unbounded or as invalid
// UTF-8 (input.go): whatever a request holds, its refusal is recorded.
package signer
