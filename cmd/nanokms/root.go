package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1 // an error, or a check that did not pass
	exitUsage   = 2 // the command line was wrong
	maxInputLen = 1 << 20
)

// cliError is an error the CLI prints as `nanokms: error: …` with an
// optional hint, and exits with code.
type cliError struct {
	err  error
	hint string
	code int
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

// usageErr reports a wrong command line.
func usageErr(format string, a ...any) error {
	return &cliError{err: fmt.Errorf(format, a...), code: exitUsage}
}

// withHint attaches a hint to err.
func withHint(err error, hint string) error {
	return &cliError{err: err, hint: hint, code: exitFailed}
}

// errCheckFailed is returned when a command ran but what it checked does
// not hold (an invalid signature, work below the threshold). The command
// has already printed its findings; nothing more is said.
var errCheckFailed = errors.New("check failed")

// env is what every subcommand may use: its streams. Subcommands never
// call os.Exit and never touch os.Stdin/os.Stdout directly.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// newRoot builds the root command with every subcommand.
func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "nanokms",
		Short:         "Hardware-backed signing service for Nano custody",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &cliError{err: err, code: exitUsage}
	})
	root.AddCommand(
		newBlockCmd(e),
		newAccountCmd(e),
		newWorkCmd(e),
	)
	return root
}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errCheckFailed) {
		return exitFailed
	}
	code := exitFailed
	var ce *cliError
	if errors.As(err, &ce) {
		code = ce.code
	} else if strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "accepts ") {
		code = exitUsage
	}
	fmt.Fprintf(stderr, "nanokms: error: %v\n", err)
	if ce != nil && ce.hint != "" {
		fmt.Fprintf(stderr, "hint: %s\n", ce.hint)
	} else if code == exitUsage {
		fmt.Fprintln(stderr, "hint: run 'nanokms help' for usage")
	}
	return code
}

// readInput reads the whole of the named file, or stdin when name is "" or
// "-", up to maxInputLen bytes.
func readInput(e *env, name string) ([]byte, error) {
	var r io.Reader = e.stdin
	label := "standard input"
	if name != "" && name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, label = f, name
	}
	data, err := io.ReadAll(io.LimitReader(r, maxInputLen+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", label, err)
	}
	if len(data) > maxInputLen {
		return nil, fmt.Errorf("reading %s: more than %d bytes", label, maxInputLen)
	}
	return data, nil
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
