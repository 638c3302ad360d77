// Package signerconf reads the signer's configuration file: its service
// settings, the [signer] section (where it serves, its state: a bbolt
// file or the signers' PostgreSQL database of [signer.postgres], TLS,
// metrics, logging) and the [token] section (the PKCS#11 token holding the
// master key), declared and checked here, and the signing policy
// ([epoch], [[approvers]], [[groups]]), declared and checked by package
// policy, whose evaluator the signer runs (Config.Policy).
//
// Its only I/O is Load reading the file; it never logs. Errors quote
// values from the file, which holds no secret (the PIN comes from a file
// or the environment).
package signerconf
