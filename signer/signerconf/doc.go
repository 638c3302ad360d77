// Package signerconf is the signer's service settings: the [signer]
// section of its configuration file (where it serves, its state file, TLS,
// metrics, logging) and the [token] section (the PKCS#11 token holding the
// master key). Package policy reads the rest of the file, the signing
// policy, and composes the two (policy.Config.Signer and .Token).
//
// It performs no I/O and never logs; errors quote values from the file,
// which holds no secret (the PIN comes from a file or the environment).
package signerconf
