// Package dev holds the development tools, which no production binary
// links: the development Nano node (devnode) and the whole-system
// benchmarks (bench signer, bench listing), with their throw-away SoftHSM
// tokens (softhsm-test/softhsmtool, which may install SoftHSM with
// apt-get) and progress bar. They make up nanokms-dev.
package dev

import (
	"github.com/spf13/cobra"

	"github.com/nanokms/nanokms/cmd/internal/cli"
)

// Binary is nanokms-dev, the development tools' binary.
var Binary = cli.Binary{
	Name:     "nanokms-dev",
	Short:    "nanokms development tools: a development Nano node and benchmarks",
	Commands: Commands,
}

// Commands returns the dev tools' subcommands.
func Commands(e *cli.Env) []*cobra.Command {
	return []*cobra.Command{
		newBenchCmd(e),
		newDevnodeCmd(e),
		newPostgresCmd(e),
	}
}
