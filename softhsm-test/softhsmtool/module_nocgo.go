//go:build !cgo

package softhsmtool

import "errors"

// errNoCgo: loading a PKCS#11 module needs cgo.
var errNoCgo = errors.New("softhsmtool: built without cgo: SoftHSM cannot be loaded (rebuild with CGO_ENABLED=1)")

func initialise(string) (bool, error) { return false, errNoCgo }

func initTokenInProcess(string, string, string, string) error { return errNoCgo }
