package cold

import (
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/internal/grpcserve"
	"github.com/nanokms/nanokms/internal/health"
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

// logReadiness logs each change of a role's readiness: a warning naming
// the failing checks and why, and when it is ready again.
func logReadiness(log *slog.Logger) func(health.Report) {
	return func(r health.Report) {
		if r.Ready() {
			log.Info("ready")
			return
		}
		var attrs []any
		for _, res := range r.Results {
			if res.Err != nil {
				attrs = append(attrs, res.Name, health.Reason(res.Err))
			}
		}
		log.Warn("not ready: "+strings.Join(r.Failing(), ", "), attrs...)
	}
}
