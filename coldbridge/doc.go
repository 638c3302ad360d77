// Package coldbridge carries signing requests from the hot side to the
// cold side and their answers back, over a one-way medium: files on
// removable media, or a serial line. It holds the frame format
// (FRAMES.md), the file and serial transports, the cold relay and the hot
// gateway.
//
// # Trust
//
// Everything on the medium is untrusted. A frame is checked (magic,
// version, type, lengths bounded before allocation, CRC-32C) before its
// payload is parsed; a bad frame is quarantined with its reason and never
// half-applied. No acknowledgement crosses the bridge: the hot side
// resends a request until its answer arrives, and the cold side answers a
// repeat with the same answer (the signer is idempotent on request ids).
//
// # What it must never do
//
// It never trusts a frame it has not checked, never drops a request it has
// read before the answer is written, never publishes or reports a block
// whose signature and contents it has not checked against the intent, and
// never carries key material: frames hold blocks, intents, approvals and
// answers only. On a file medium it never follows a symbolic link beneath
// the medium root, never deletes what it did not create, and no entry
// planted there stops it (FRAMES.md, "Trust on the medium").
//
// It builds with CGO_ENABLED=0.
package coldbridge
