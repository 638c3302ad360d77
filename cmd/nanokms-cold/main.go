// Command nanokms-cold is the isolated host's binary of nanokms: the
// signer, the relay, the token, wallet and account ceremony, the offline
// block, account and work tools, approvals, audit verify and bridge
// inspect. It links no node client, gateway or dev tool. Run
// `nanokms-cold help` for the list.
package main

import (
	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/cmd/internal/cold"
)

func main() { cli.Main(cold.Binary) }
