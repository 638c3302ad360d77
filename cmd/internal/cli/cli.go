// Package cli is what the nanokms binaries (nanokms, nanokms-cold and
// nanokms-dev) share: the one voice of the command line (`NAME: error: …`
// lines with a hint, exit codes, usage errors that never echo a secret),
// the root command and its run loop, reading a command's inputs, and
// `config check`, for the roles each binary ships (ConfigCheck: the
// roles' loaders come from the side packages).
//
// The subcommands live in packages of their own, one per side of the air
// gap (cmd/internal/cold, cmd/internal/hot, cmd/internal/dev), so that a
// binary links only the side it runs. Package cli must never import any of
// them, nor anything of the hot side, the dev tools or a token.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1 // an error, or a check that did not pass
	ExitUsage  = 2 // the command line was wrong
)

// Error is an error the CLI prints as `NAME: error: …` with an optional
// hint, and exits with Code.
type Error struct {
	Err  error
	Hint string
	Code int
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// UsageErr reports a wrong command line.
func UsageErr(format string, a ...any) error {
	return &Error{Err: fmt.Errorf(format, a...), Code: ExitUsage}
}

// WithHint attaches a hint to err.
func WithHint(err error, hint string) error {
	return &Error{Err: err, Hint: hint, Code: ExitFailed}
}

// ErrCheckFailed is returned when a command ran but what it checked does
// not hold (an invalid signature, work below the threshold). The command
// has already printed its findings; nothing more is said.
var ErrCheckFailed = errors.New("check failed")

// Env is what every subcommand may use: its streams. Subcommands never
// call os.Exit and never touch os.Stdin/os.Stdout directly.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// NoArgsQuiet refuses positional arguments without echoing them: a user
// who types a seed where a command name or file belongs must not see it
// printed back (or logged by whatever records the terminal).
func NoArgsQuiet(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return UsageErr("%q takes no arguments (the argument is not shown)", cmd.CommandPath())
	}
	return nil
}

// NewGroup returns a command that only holds subcommands: run without one
// it prints its help; run with an unknown one it is a usage error.
func NewGroup(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return UsageErr("unknown command %s for %q", quoteShort(args[0]), cmd.CommandPath())
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

// Binary is one of the nanokms binaries: its name, what it is for, and
// the subcommands it ships.
type Binary struct {
	Name     string
	Short    string
	Commands func(e *Env) []*cobra.Command
	// Config, when set, gives the binary a `config check` command for
	// these roles.
	Config *ConfigCheck
}

// Root builds b's root command with every subcommand.
func (b Binary) Root(e *Env) *cobra.Command {
	root := NewGroup(b.Name, b.Short)
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetIn(e.Stdin)
	root.SetOut(e.Stdout)
	root.SetErr(e.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &Error{Err: err, Code: ExitUsage}
	})
	root.AddCommand(b.Commands(e)...)
	if b.Config != nil {
		root.AddCommand(newConfigCmd(e, b.Name, b.Config))
	}
	root.AddCommand(newVersionCmd(e, b.Name))
	setVersion(root, b.Name)
	typedArgs(root)
	return root
}

// typedArgs makes every argument check of root and its subcommands return
// a usage *Error, so that Run tells usage errors by type: a command's own
// check (cobra.ExactArgs, …) is wrapped, and a command without one gets
// cobra's default (an unknown subcommand of the root is refused, any
// other arguments are left to the command).
func typedArgs(c *cobra.Command) {
	check := c.Args
	if check == nil {
		check = func(cmd *cobra.Command, args []string) error {
			if !cmd.HasParent() && cmd.HasSubCommands() && len(args) > 0 {
				return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		}
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &Error{Err: err, Code: ExitUsage}
		}
		return nil
	}
	for _, sub := range c.Commands() {
		typedArgs(sub)
	}
}

// Run executes b's command line args and returns the process exit code.
func Run(ctx context.Context, b Binary, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	root := b.Root(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, ErrCheckFailed) {
		return ExitFailed
	}
	code := ExitFailed
	var ce *Error
	if errors.As(err, &ce) {
		code = ce.Code
	}
	fmt.Fprintf(stderr, "%s: error: %v\n", b.Name, err)
	if ce != nil && ce.Hint != "" {
		fmt.Fprintf(stderr, "hint: %s\n", ce.Hint)
	} else if code == ExitUsage {
		fmt.Fprintf(stderr, "hint: run '%s help' for usage\n", b.Name)
	}
	return code
}

// Main runs b as the process: an interrupt or SIGTERM cancels the
// command's context (services stop cleanly), and the process exits with
// the command's code.
func Main(b Binary) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, b, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Join returns the commands of every one of sets, in order: a binary made
// of several sides' subcommands.
func Join(sets ...func(e *Env) []*cobra.Command) func(e *Env) []*cobra.Command {
	return func(e *Env) []*cobra.Command {
		var all []*cobra.Command
		for _, s := range sets {
			all = append(all, s(e)...)
		}
		return all
	}
}
