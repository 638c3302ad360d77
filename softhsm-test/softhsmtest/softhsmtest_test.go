//go:build cgo

package softhsmtest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

func TestMain(m *testing.M) { os.Exit(softhsmtest.Run(m)) }

func TestMustToken(t *testing.T) {
	a := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("helper"))
	b := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("helper"))
	if a.Label == b.Label || a.Serial == b.Serial || a.Serial == "" {
		t.Fatalf("tokens not distinct: %+v %+v", a, b)
	}
	if a.Module == "" || a.PIN != softhsmtest.UserPIN {
		t.Fatalf("token %+v", a)
	}
	conf := os.Getenv("SOFTHSM2_CONF")
	if !strings.HasPrefix(conf, softhsmtest.Dir(t)) {
		t.Fatalf("SOFTHSM2_CONF = %q, want it inside %q", conf, softhsmtest.Dir(t))
	}
	// The tokens are real: another process sees them (softhsm2-util reads
	// the same SOFTHSM2_CONF).
	out, err := exec.Command("softhsm2-util", "--show-slots").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --show-slots: %v\n%s", err, out)
	}
	for _, tok := range []softhsmtest.Token{a, b} {
		if !strings.Contains(string(out), tok.Serial) {
			t.Errorf("softhsm2-util does not list token %s (%s)", tok.Label, tok.Serial)
		}
	}
}

func TestUniqueLabel(t *testing.T) {
	long := strings.Repeat("x", 40)
	if l := softhsmtest.UniqueLabel(long); len(l) > 32 {
		t.Fatalf("UniqueLabel gave %d bytes", len(l))
	}
	if softhsmtest.UniqueLabel("a") == softhsmtest.UniqueLabel("a") {
		t.Fatal("UniqueLabel repeated itself")
	}
}
