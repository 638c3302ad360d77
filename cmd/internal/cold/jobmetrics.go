package cold

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// metricsFlagHelp is the help of the --metrics flag of the commands a
// timer runs (audit verify, signer backup).
const metricsFlagHelp = "also write the outcome to this node_exporter textfile (a .prom file), atomically"

// checkMetricsFlag refuses a --metrics file the textfile collector would
// not read, before anything is done.
func checkMetricsFlag(path string) error {
	if path != "" && !strings.HasSuffix(path, ".prom") {
		return cli.UsageErr("--metrics %s: the name must end in .prom (node_exporter's textfile collector reads only those)", path)
	}
	return nil
}

// metricsWriteErr is the error of a --metrics file that could not be
// written, naming the flag and the file.
func metricsWriteErr(path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return cli.WithHint(fmt.Errorf("--metrics %s: writing the metrics: %w", path, err),
		"the file's directory must exist and be writable by this user (node_exporter's textfile directory)")
}

// warnTo returns a function that prints a warning of cmd's binary on
// standard error.
func warnTo(cmd *cobra.Command, e *cli.Env) func(error) {
	name := cmd.Root().Name()
	return func(err error) { fmt.Fprintf(e.Stderr, "%s: warning: %v\n", name, err) }
}
