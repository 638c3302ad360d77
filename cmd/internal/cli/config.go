package cli

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// ConfigRole is a role whose configuration file `config check` reads.
type ConfigRole struct {
	// Name is the role as the command line names it ("signer").
	Name string
	// Load reads and checks the file at path as the role does when it
	// starts, and nothing more: it opens no token, socket or listener and
	// creates no file. It returns every problem (the role's *conffile.Error
	// values, joined), or an error reading the file.
	Load func(path string) error
}

// ConfigCheck is what a binary's `config check` knows: the roles it
// checks, and the roles it does not, each with where to check them
// instead (the isolated host's binary links no gateway code).
type ConfigCheck struct {
	Roles     []ConfigRole
	Elsewhere map[string]string // role → advice (a hint: "nanokms-cold links no gateway code: check ... with nanokms")
}

// roleList writes the role names as "a, b or c".
func (c *ConfigCheck) roleList() string {
	names := make([]string, len(c.Roles))
	for i, r := range c.Roles {
		names[i] = r.Name
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func newConfigCmd(e *Env, name string, c *ConfigCheck) *cobra.Command {
	cmd := NewGroup("config", "Check configuration files without starting anything")
	long := `Reads FILE as the role ROLE reads its configuration when it starts
(docs/CONFIG.md), and nothing more: no token is opened, no socket or listener,
no state file or bridge directory is made, and the files the configuration
names (PIN, certificates, manifests) are not read. Prints "FILE: ok" when the
file is good; otherwise every problem at once, each at FILE:LINE:COL where its
key is (the line is left out for a key that is missing), and exits 1.

ROLE is ` + c.roleList() + "."
	for _, r := range slices.Sorted(maps.Keys(c.Elsewhere)) {
		long += "\n\n" + c.Elsewhere[r]
	}
	check := &cobra.Command{
		Use:   "check ROLE FILE",
		Short: "Check a role's configuration file: every problem with its place",
		Long:  long,
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			return runConfigCheck(e, name, c, args[0], args[1])
		},
	}
	cmd.AddCommand(check)
	return cmd
}

func runConfigCheck(e *Env, name string, c *ConfigCheck, role, file string) error {
	for _, r := range c.Roles {
		if r.Name != role {
			continue
		}
		if err := r.Load(file); err != nil {
			return WithHint(err, "docs/CONFIG.md documents every key")
		}
		_, err := fmt.Fprintf(e.Stdout, "%s: ok\n", file)
		return err
	}
	hint := fmt.Sprintf("run '%s help config check' for usage", name)
	if advice, ok := c.Elsewhere[role]; ok {
		hint = advice
	}
	return &Error{Err: fmt.Errorf("unknown role %s: want %s", quoteShort(role), c.roleList()), Hint: hint, Code: ExitUsage}
}
