package relay_test

import (
	"os"
	"testing"

	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

// The relay's tests run it against a real signer (signer/signertest, on a
// SoftHSM token) and real media.
func TestMain(m *testing.M) { os.Exit(softhsmtest.Run(m)) }
