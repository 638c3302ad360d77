// Package relay is the cold end of the bridge: it reads request frames
// off the inbound medium, asks the signer over gRPC, and writes the answer
// (a signed block, or a typed refusal with a frame.RefusalCode) to the
// outbound medium. Config and LoadConfig read its configuration file.
// Over several signers sharing one database, Signers asks a healthy one
// and fails over to the next when one is unavailable.
//
// It takes the requests waiting on the medium in batches: it asks the
// signer for all of them at once (the signer group-commits its
// decisions), writes their answers in one batch (one sync of the medium's
// directory) and settles the requests in one. It settles a request frame
// only after its answer is on the medium, so a crash at any point leaves
// the request to be read again (the signer answers a repeat identically).
//
// It keeps the highest leader epoch (BridgeRequest.leader_epoch) it has
// read and settles a request of a lower nonzero epoch unanswered, without
// asking the signer: a deposed gateway's late frame (FRAMES.md, "Leader
// epochs"). The epoch is kept in memory only.
//
// It never holds key material, never
// decides anything the signer decides, and never imports hot-side code
// (gateway, node): the layout test checks its dependency closure. It
// builds with CGO_ENABLED=0.
package relay
