//go:build cgo

package buildinfo

// PKCS11 reports whether this binary has PKCS#11 token support: it is
// built with cgo, as package hsm's token code (hsm.PKCS11) needs.
const PKCS11 = true
