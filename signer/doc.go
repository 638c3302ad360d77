// Package signer is the cold signer: it verifies a signing request against
// its own durable record of each account, applies policy and approvals,
// records the decision, signs through the token-backed key store, and
// serves all of that over gRPC.
//
// It never imports the token's code (package hsm): it decides by the key
// store contract (package keystore: an unknown wallet, an unavailable
// token, a refused PIN, the wallet label rule, the token's status), whose
// names hsm's errors match; the binary wires an *hsm.Token in as the
// KeyStore.
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
// and the new frontier are committed to its State: the bbolt file (fsync,
// one signer), or PostgreSQL (PGStore: any number of signers on one
// database, which is the authority: UNIQUE per account and previous and
// per request id, each commit one SERIALIZABLE transaction). At most one
// block is ever signed on a given previous block: a request on an old head
// whose successor was signed but not seen published is refused with that
// block (PENDING_BLOCK), so the hot side publishes it instead. A repeated
// request id with the same intent returns the identical stored response.
//
// # Releasing a recorded frontier
//
// The signer cannot see the ledger: a block it signed may be one the
// network will never accept (a receive whose source does not exist, a
// block on a previous the network does not have). Its record then names a
// frontier that will never confirm, every later request on the account is
// refused (PENDING_BLOCK, HEAD_NOT_FRONTIER), and the account is stuck.
// Release is the operator's way out: with the approvals of the account's
// group's last tier over a release statement (intent.Release), it
// withdraws the recorded frontier and returns the record to the frontier
// before it, in one transaction that also
//
//   - removes the withdrawn block from the blocks signed on its previous,
//     so that a new block can be signed there (this is the fork the
//     operator accepts: docs/OPERATIONS.md);
//   - marks the answer recorded for the withdrawn block's request id as
//     released: a repeat of that request id is refused (RELEASED) rather
//     than handed the withdrawn block again;
//   - removes a withdrawn send from the velocity window, and a withdrawn
//     receive's source from the sources received, so that the source can
//     be received properly if it ever exists;
//   - records the statement's digest, so that the statement cannot be
//     applied twice, and appends a "released" audit record.
//
// Only the exact recorded frontier can be withdrawn, and only when it was
// signed by this signer; a statement whose frontier or balance is not the
// record's is refused.
//
// # Moving the state
//
// A state export (statefile.go) is the whole durable state in one
// versioned file, parsed strictly: Store.Export and PGStore.Export read it
// in one transaction, and Store.Import and PGStore.Import replace a
// store's state with it in one transaction, after verifying its audit
// chain and refusing (ImportConflict) a store that holds a block signed,
// an answer or audit records the export does not: an import never makes a
// store forget what it signed. Store.ExportRetire and PGStore.ExportRetire
// make a retiring export (retire.go): the source is marked retired in the
// transaction that reads it, and serves no more (RetiredError); a store
// that holds nothing, or was retired, takes only a retiring export
// (NotRetiringError), so an old export or a backup never becomes a second
// signer of a state that went on signing.
//
// # Backup and restore
//
// Server.Backup streams the state export of one read transaction while
// the signer runs (backup.go). Store.Restore and PGStore.Restore put a
// backup back (restore.go): refused (ImportConflict) over a state holding
// anything the backup does not; over a state that held nothing (the live
// state lost), every account's frontier is unconfirmed
// (AccountRecord.Unconfirmed), refused at decision and at commit
// (FRONTIER_UNCONFIRMED), until AdoptChain re-adopts it from a head that
// is the restored frontier or descends from it through a verified chain
// (readopt.go). A rollback never leads to a second block on a signed head
// that the ledger holds.
//
// # What it must never do
//
// It never signs a block it did not build from a verified head, never
// signs twice on one previous (except after an approved release of the
// first, which the operator confirmed the network refused), never answers
// before the decision is durable, and never logs or returns key material,
// seeds or PINs. It never logs, answers or records caller input
// unbounded or as invalid UTF-8 (input.go): whatever a request holds,
// its refusal is recorded.
package signer
