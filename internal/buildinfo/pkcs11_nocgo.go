//go:build !cgo

package buildinfo

// PKCS11 reports whether this binary has PKCS#11 token support: without
// cgo it has none (package hsm's Open returns hsm.ErrNoCgo).
const PKCS11 = false
