// Package nano implements the parts of the Nano (XNO) protocol that a signing
// service needs, byte-exact with the network: fixed-size key, hash, signature
// and work types; 128-bit raw amounts; account addresses; seed derivation;
// Ed25519 with BLAKE2b-512 ("ed25519-blake2b"); state blocks, their hashes and
// subtypes; proof of work; and the JSON forms a node prints and accepts.
//
// # Contracts
//
// Every Parse function returns the zero value and a *ParseError naming the
// field when its input is malformed; it never panics and changes nothing. The
// accepted encodings are stated on each function. Hex input is accepted in
// either case; hex output is uppercase except the JSON "work" field, which is
// printed in lowercase as nodes do.
//
// Signatures are made canonically (S < L) and verified strictly: Verify
// rejects any signature whose S is not reduced modulo the group order L, as
// Go's crypto/ed25519 does. nano-node checks only S's top bits, so a
// signature the network would accept may be refused here; nanokms never
// produces one.
//
// # What this package must never do
//
// It performs no I/O, holds no global mutable state, and never logs or puts
// key material (seeds, private keys, expanded secrets) into an error or a
// String method. Callers that hold secrets wipe them with Wipe.
//
// It builds with CGO_ENABLED=0. Curve arithmetic comes from
// filippo.io/edwards25519 and hashing from golang.org/x/crypto/blake2b, except
// for the proof-of-work hash, which is a specialised single-block BLAKE2b-64
// compression checked against the general implementation in the tests.
package nano
