package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
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

// noArgsQuiet refuses positional arguments without echoing them: a user
// who types a seed where a command name or file belongs must not see it
// printed back (or logged by whatever records the terminal).
func noArgsQuiet(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr("%q takes no arguments (the argument is not shown)", cmd.CommandPath())
	}
	return nil
}

// newGroup returns a command that only holds subcommands: run without one
// it prints its help; run with an unknown one it is a usage error.
func newGroup(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("unknown command %s for %q", quoteShort(args[0]), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
}

// quoteShort quotes a short, word-like argument; anything else (it could
// be a secret typed in the wrong place) is not repeated.
func quoteShort(s string) string {
	if len(s) > 24 {
		return "(not shown)"
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return "(not shown)"
		}
	}
	return strconv.Quote(s)
}

// newRoot builds the root command with every subcommand.
func newRoot(e *env) *cobra.Command {
	root := newGroup("nanokms", "Hardware-backed signing service for Nano custody")
	root.SilenceUsage = true
	root.SilenceErrors = true
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
		newApproveCmd(e),
		newApproverCmd(e),
		newSignerCmd(e),
		newAuditCmd(e),
		newRelayCmd(e),
		newGatewayCmd(e),
		newClientCmd(e),
		newBenchCmd(e),
		newTokenCmd(e),
		newWalletCmd(e),
		newDevnodeCmd(e),
		newBridgeCmd(e),
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
	return readNamed(e, name, name)
}

// readSecretInput is readInput for a file named by flag that holds a
// secret: errors name the flag, never the path (which could itself be a
// secret pasted in the wrong place).
func readSecretInput(e *env, flag, name string) ([]byte, error) {
	return readNamed(e, name, flag)
}

func readNamed(e *env, name, label string) ([]byte, error) {
	var r io.Reader = e.stdin
	if name == "" || name == "-" {
		label = "standard input"
	} else {
		f, err := os.Open(name)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("opening %s: %w", label, pe.Err)
			}
			return nil, fmt.Errorf("opening %s: %w", label, err)
		}
		defer f.Close()
		r = f
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
