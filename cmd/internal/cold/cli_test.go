package cold

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// result is what one run of the CLI did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the nanokms-cold command line args in-process with stdin
// and returns its exit code and output. (The command-line suite of all
// three binaries, in processes of their own, is in cmd/nanokms.)
func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), Binary, args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}
