// Package signerapi is the signer's error contract, shared by the signer
// and its clients (the relay, the CLI, metrics): the Refusal a decision
// not to sign is, how a refusal and the signer's other answers are carried
// in a gRPC status (code, google.rpc.ErrorInfo with domain ErrorDomain),
// and how a client recovers them (RefusalFromStatus, IsStoreFull,
// IsStoreUnavailable, IsTokenUnavailable).
//
// It is small on purpose: it imports only the protocol (nano, proto) and
// gRPC's status types, never hsm, the signer's store or its policy, so
// that any side may link it. A client branches on what these functions
// return, never on a status message's text.
package signerapi
