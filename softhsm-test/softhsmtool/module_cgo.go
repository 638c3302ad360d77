//go:build cgo

package softhsmtool

import (
	"errors"
	"fmt"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/internal/p11slots"
)

// ctxs holds this package's handle on each module it loaded. A handle is
// never finalised or unloaded: other parts of the process (package hsm)
// share the module's initialised state.
var ctxs struct {
	sync.Mutex
	byPath map[string]*pkcs11.Ctx
}

func moduleCtx(module string) (*pkcs11.Ctx, error) {
	ctxs.Lock()
	defer ctxs.Unlock()
	if c, ok := ctxs.byPath[module]; ok {
		return c, nil
	}
	c := pkcs11.New(module)
	if c == nil {
		return nil, fmt.Errorf("softhsmtool: cannot load %s", module)
	}
	if ctxs.byPath == nil {
		ctxs.byPath = map[string]*pkcs11.Ctx{}
	}
	ctxs.byPath[module] = c
	return c, nil
}

// initialise calls C_Initialize on module. fresh is true when this call
// initialised it (so it read SOFTHSM2_CONF now), false when something in
// the process had already done so.
func initialise(module string) (fresh bool, err error) {
	c, err := moduleCtx(module)
	if err != nil {
		return false, err
	}
	err = c.Initialize()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)):
		return false, nil
	}
	return false, fmt.Errorf("softhsmtool: C_Initialize(%s): %w", module, err)
}

// initTokenInProcess does what softhsm2-util --init-token --free does,
// through this process's module: C_InitToken on the first slot without an
// initialised token, then C_InitPIN as the security officer.
func initTokenInProcess(module, label, soPIN, pin string) error {
	if _, err := initialise(module); err != nil {
		return err
	}
	c, err := moduleCtx(module)
	if err != nil {
		return err
	}
	slots, err := p11slots.List(c.GetSlotList, true) // beside the hsm package's listings
	if err != nil {
		return fmt.Errorf("softhsmtool: C_GetSlotList: %w", err)
	}
	slot, found := uint(0), false
	for _, s := range slots {
		ti, err := c.GetTokenInfo(s)
		if err != nil {
			// A token whose directory an earlier Close deleted: SoftHSM
			// can no longer read it. It is not the free slot.
			continue
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			slot, found = s, true
			break
		}
	}
	if !found {
		return errors.New("softhsmtool: SoftHSM offers no free slot")
	}
	if err := c.InitToken(slot, soPIN, label); err != nil {
		return fmt.Errorf("softhsmtool: C_InitToken: %w", err)
	}
	sh, err := c.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("softhsmtool: C_OpenSession: %w", err)
	}
	defer c.CloseSession(sh)
	if err := c.Login(sh, pkcs11.CKU_SO, soPIN); err != nil {
		return fmt.Errorf("softhsmtool: C_Login(SO): %w", err)
	}
	if err := c.InitPIN(sh, pin); err != nil {
		return fmt.Errorf("softhsmtool: C_InitPIN: %w", err)
	}
	// Leave the SO state so that the user can log in.
	if err := c.Logout(sh); err != nil {
		return fmt.Errorf("softhsmtool: C_Logout(SO): %w", err)
	}
	return nil
}
