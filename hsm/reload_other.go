//go:build cgo && !linux

package hsm

import "errors"

// freshModules says this platform can load a fresh instance of a module:
// not here (it needs memfd_create).
const freshModules = false

func loadFreshModule(path, params string) (*module, error) {
	return nil, errors.New("hsm: a fresh instance of a module can be loaded on Linux only")
}
