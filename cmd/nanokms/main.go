// Command nanokms is the operator's binary of the nanokms signing service:
// the gateway and its client, and everything the isolated host runs (the
// signer, the relay, the key ceremony, the offline block tools). Run
// `nanokms help` for the list. The isolated host runs nanokms-cold; the
// development tools are in nanokms-dev.
package main

import (
	"slices"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/cmd/internal/cold"
	"github.com/nanokms/nanokms/cmd/internal/hot"
)

var operator = cli.Binary{
	Name:     "nanokms",
	Short:    "Hardware-backed signing service for Nano custody",
	Commands: cli.Join(cold.Commands, hot.Commands),
	Config:   &cli.ConfigCheck{Roles: slices.Concat(cold.ConfigRoles, hot.ConfigRoles)},
}

func main() { cli.Main(operator) }
