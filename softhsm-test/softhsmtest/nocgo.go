//go:build !cgo

// Package softhsmtest gives tests real SoftHSM tokens. It needs cgo: built
// with CGO_ENABLED=0 every helper fails the test (never skips it).
package softhsmtest

import "testing"

// PINs of every token MustToken creates.
const (
	UserPIN = "nanokms-user-1234"
	SOPIN   = "nanokms-so-12345678"
)

// Token describes a token made by MustToken.
type Token struct {
	Module, Label, Serial, PIN, SOPIN string
}

const noCgo = "softhsmtest: SoftHSM tests need cgo (CGO_ENABLED=1)"

// FindModule returns "" without cgo.
func FindModule() string { return "" }

// Run runs the tests.
func Run(m *testing.M) int { return m.Run() }

// Module fails the test.
func Module(t testing.TB) string { t.Helper(); t.Fatal(noCgo); return "" }

// Dir fails the test.
func Dir(t testing.TB) string { t.Helper(); t.Fatal(noCgo); return "" }

// UniqueLabel returns prefix.
func UniqueLabel(prefix string) string { return prefix }

// MustToken fails the test.
func MustToken(t testing.TB, label string) Token { t.Helper(); t.Fatal(noCgo); return Token{} }
