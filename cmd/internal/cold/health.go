package cold

import (
	"fmt"
	"net"
	"strings"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/internal/grpcserve"
)

// listenHealth opens a role's health_listen address (key names it in
// errors): "unix:///path" as the gRPC sockets are opened (mode 0600, a
// stale socket replaced, a live one refused), or "host:port" on TCP.
func listenHealth(addr, key string) (net.Listener, error) {
	var (
		l   net.Listener
		err error
	)
	if strings.HasPrefix(addr, "unix://") {
		l, err = grpcserve.Listen(addr)
	} else {
		l, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, cli.WithHint(fmt.Errorf("%s: %w", key, err), "is another process using the address?")
	}
	return l, nil
}
