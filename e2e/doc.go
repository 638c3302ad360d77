// Package e2e holds end-to-end tests of the hot side against the dev node.
//
// Everything in them is real: a signer on a SoftHSM token with its bbolt
// state and its gRPC API on a Unix socket (signer/signertest), the file
// bridge, the cold relay, the gateway with its Custody API on a Unix
// socket, and gateway.NodeSide (node.Client, node.WS, node.Ledger, CPU
// work) talking to an in-process devnode over HTTP, IPC and WebSocket
// listeners on 127.0.0.1. The package has no code of its own; its tests
// need cgo and SoftHSM, and
//
//	go test -bench WorkReceiveThreshold -run XXX ./e2e
//
// measures work generation for docs/BENCHMARKS.md.
package e2e
