package cold

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/hsm"
)

// TestDeploySignerPINExit checks that a refused or locked PIN makes the
// signer exit with the status its unit does not restart on.
func TestDeploySignerPINExit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "systemd", "nanokms-signer.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nRestartPreventExitStatus="+strconv.Itoa(exitSignerPIN)+"\n") {
		t.Errorf("nanokms-signer.service does not prevent restarts on exit status %d", exitSignerPIN)
	}
	codeOf := func(err error) int {
		var ce *cli.Error
		if errors.As(err, &ce) {
			return ce.Code
		}
		return cli.ExitFailed
	}
	for _, c := range []struct {
		err  error
		want int
	}{
		{HintTokenErr(fmt.Errorf("login: %w", hsm.ErrWrongPIN)), exitSignerPIN},
		{HintTokenErr(fmt.Errorf("login: %w", hsm.ErrPINLocked)), exitSignerPIN},
		{HintTokenErr(fmt.Errorf("open: %w", hsm.ErrTokenNotFound)), cli.ExitFailed},
		{errors.New("other"), cli.ExitFailed},
	} {
		got := noRestartOnPIN(c.err)
		if codeOf(got) != c.want || got.Error() != c.err.Error() {
			t.Errorf("noRestartOnPIN(%v): %v, exit %d; want exit %d", c.err, got, codeOf(got), c.want)
		}
	}
}
