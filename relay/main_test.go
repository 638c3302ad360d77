package relay_test

import (
	"os"
	"testing"

	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

// The relay's tests run it against a real signer (signer/signertest, on a
// SoftHSM token) and real media; the health test runs the relay's binary.
func TestMain(m *testing.M) {
	code := softhsmtest.Run(m)
	killtest.Cleanup() // the binaries the health test built
	os.Exit(code)
}
