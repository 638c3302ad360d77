//go:build cgo && linux

package hsm

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// freshModules says this platform can load a fresh instance of a module.
const freshModules = true

// loadFreshModule loads a new instance of the module at path, beside the
// one the process uses, and C_Initializes it with params; it becomes the
// process's instance for later Opens. The dynamic loader gives one
// instance per file, so the library is copied into an anonymous in-memory
// file (memfd_create) and loaded from there: nothing is written to disk,
// and nothing the process does not own is loaded (the copy is made from
// the configured library and never leaves the process). The copy stays
// open for the life of the process: its /proc/self/fd name is how the
// loader knows the instance. A module that loads other files relative to
// its own location cannot be loaded this way: recovery then fails with
// the loader's error (set Config.NoModuleReload to not try).
//
// The instance the process used before stays loaded and initialised:
// nothing is finalised (see loadModule).
func loadFreshModule(path, params string) (*module, error) {
	abs, err := modulePath(path)
	if err != nil {
		return nil, err
	}
	src, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrModule, abs, err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("nanokms-pkcs11-module", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("%w %s: a fresh instance needs an in-memory copy: memfd_create: %w", ErrModule, abs, err)
	}
	image := os.NewFile(uintptr(fd), "memfd:"+abs)
	if _, err := io.Copy(image, src); err != nil {
		image.Close()
		return nil, fmt.Errorf("%w %s: copying it into memory: %w", ErrModule, abs, err)
	}
	modules.Lock()
	defer modules.Unlock()
	// The copy stays open even when loading fails: the loader may keep a
	// library it could not unload under the copy's name, and a new copy
	// must never get that name.
	images = append(images, image)
	// Not accepting CKR_CRYPTOKI_ALREADY_INITIALIZED: that would be the
	// instance in use, not a fresh one.
	m, err := initModule(fmt.Sprintf("/proc/self/fd/%d", fd), abs, params, false)
	if err != nil {
		return nil, err
	}
	m.image = image
	register(m)
	return m, nil
}

// images are the in-memory copies of modules loaded by loadFreshModule,
// never closed; guarded by modules.
var images []*os.File
