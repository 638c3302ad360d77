package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/internal/buildinfo"
)

// versionJSON is the --json form of version: the binary's name and its
// build information.
type versionJSON struct {
	Binary string `json:"binary"`
	buildinfo.Info
}

// versionText is the human form of version and --version.
func versionText(name string, info buildinfo.Info) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", name, info.Version)
	rev := info.Revision
	switch {
	case rev == buildinfo.Unknown:
		rev += " (built without VCS stamping)"
	case info.Modified:
		rev += " (modified: uncommitted changes in the build tree)"
	}
	fmt.Fprintf(&b, "revision:    %s\n", rev)
	fmt.Fprintf(&b, "commit time: %s\n", info.Time)
	fmt.Fprintf(&b, "go:          %s\n", info.GoVersion)
	pkcs11 := "yes"
	if !info.PKCS11 {
		pkcs11 = "no (built with CGO_ENABLED=0: no token can be opened)"
	}
	fmt.Fprintf(&b, "pkcs11:      %s\n", pkcs11)
	fmt.Fprintf(&b, "platform:    %s/%s\n", info.OS, info.Arch)
	return b.String()
}

// newVersionCmd is every binary's version subcommand.
func newVersionCmd(e *Env, name string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print what this binary is: version, VCS revision, Go version, PKCS#11 support",
		Long: `Prints the module version ("devel" for a build from a source tree without
a release version), the VCS revision and its commit time ("unknown" for a
binary built without VCS stamping: go test, -buildvcs=false, or outside a
git checkout), the Go toolchain, whether PKCS#11 token support is built in
(it needs cgo) and the platform. --version prints the same. The metrics of
every role carry it too, as nanokms_build_info.`,
		Args: NoArgsQuiet,
		RunE: func(*cobra.Command, []string) error {
			info := buildinfo.Read()
			if asJSON {
				return PrintJSON(e.Stdout, versionJSON{Binary: name, Info: info})
			}
			_, err := fmt.Fprint(e.Stdout, versionText(name, info))
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// setVersion gives root a --version flag printing what version prints.
func setVersion(root *cobra.Command, name string) {
	info := buildinfo.Read()
	root.Version = info.Version
	// The text has no template actions: versions, revisions and Go
	// versions hold no braces.
	root.SetVersionTemplate(versionText(name, info))
	root.Flags().Bool("version", false, "print what this binary is (as the version command does)")
}
