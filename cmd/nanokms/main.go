// Command nanokms is the one binary of the nanokms signing service: the
// signer, the bridge ends, the gateway, the key ceremony and the offline
// block tools are its subcommands. Run `nanokms help` for the list.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
