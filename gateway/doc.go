// Package gateway is the hot end of the bridge: the Custody gRPC service
// the withdrawal service submits intents to, a durable queue (bbolt) of
// requests, the writer of request frames and the reader of answers, the
// verification of every signed block against its intent, and the publish
// pipeline (proof of work, process, confirmation over the node's
// WebSocket, its HTTP callback, or by polling). Config and LoadConfig read
// its configuration file ([gateway], [bridge], [node], [node.callback]).
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
