// Command nanokms-dev holds nanokms's development tools: a development
// Nano node (devnode) and the whole-system benchmarks (bench signer,
// bench listing, which runs the signer from nanokms-cold).
// No production binary links them. Run `nanokms-dev help` for the list.
package main

import (
	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/cmd/internal/dev"
)

func main() { cli.Main(dev.Binary) }
