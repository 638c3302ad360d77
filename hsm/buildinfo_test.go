package hsm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/internal/buildinfo"
)

// TestPKCS11Constant: what the version output and nanokms_build_info say
// about PKCS#11 support (buildinfo.PKCS11) is what this build of hsm
// does, in the cgo and the CGO_ENABLED=0 build alike: without it, Open
// refuses with ErrNoCgo before looking for a module.
func TestPKCS11Constant(t *testing.T) {
	if hsm.PKCS11 != buildinfo.PKCS11 {
		t.Fatalf("hsm.PKCS11 = %v, buildinfo.PKCS11 = %v", hsm.PKCS11, buildinfo.PKCS11)
	}
	pin, err := hsm.NewPIN([]byte("1234"))
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Wipe()
	_, err = hsm.Open(context.Background(), hsm.Config{Module: "/nonexistent/libpkcs11.so", TokenLabel: "x", PIN: pin})
	if err == nil {
		t.Fatal("Open of a module that does not exist succeeded")
	}
	if got := errors.Is(err, hsm.ErrNoCgo); got == hsm.PKCS11 {
		t.Fatalf("hsm.PKCS11 = %v, but Open returned %v", hsm.PKCS11, err)
	}
}
