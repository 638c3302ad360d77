// Package gateway is the hot end of the bridge: the Custody gRPC service
// the withdrawal service submits intents to, a durable queue of requests
// (a bbolt file, Open, or a PostgreSQL database, OpenPG), the writer of
// request frames and the reader of answers, the verification of every
// signed block against its intent, and the publish pipeline (proof of
// work, process, confirmation over the node's WebSocket, its HTTP
// callback, or by polling). Config and LoadConfig read its configuration
// file ([gateway] with [gateway.postgres], [bridge], [node],
// [node.callback]).
//
// # Durability and batches
//
// Every state change is a transaction (bbolt's, committed with fsync, or
// PostgreSQL's) committed before anyone is told of it: a submission is
// acknowledged, and a status is visible to GetRequest and WatchRequest,
// only once it is durable. The
// changes that arrive together share a commit (group commit, as the
// signer's store does; on a busy bbolt store a commit waits up to
// commitLinger for as many writes as the one before it carried). The send loop takes every request due in one
// pass: it reads the heads the node must give, writes every frame in one
// batch (one sync of the medium's directory) and only then records them
// all SENT_TO_COLD, with the heads read, in one commit. The receive loop
// takes the answers waiting together, checks each, records what they
// change in one commit, and only then tells the watchers, starts the
// publish pipelines and settles the frames on the medium in one batch.
// Status changes go through a small store interface (store.go) whose
// writes take a batch (apply); bbolt (gateway_store.go, gateway_commit.go)
// and PostgreSQL (pgstore*.go, its schema in pgschema/) implement it with
// the same rules: a request id stored once, statuses only forward
// (statusStep; on PostgreSQL a trigger too), each signed hash recorded
// once.
//
// # Trust
//
// Everything on the medium is untrusted. A frame is checked (package
// frame) before its payload is parsed; a bad frame is quarantined with its
// reason and never half-applied. No acknowledgement crosses the bridge:
// the gateway resends a request until its answer arrives, and the cold
// side answers a repeat with the same answer.
//
// So is every HTTP callback body: NodeSide acts on one only once the
// node's block_info confirms it (node.CallbackHandler), through the
// confirmation feed the WebSocket shares, so that a block announced on
// both paths is applied once.
//
// # What it must never do
//
// It never publishes or reports a block whose signature and contents it
// has not checked against the intent, never carries key material, never
// drops a submitted request, and never imports cold-side code (hsm, the
// signer, its store or policy): only the signer's contract package. The
// layout test checks its dependency closure. It builds with CGO_ENABLED=0.
package gateway
