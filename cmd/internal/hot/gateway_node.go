package hot

import (
	"context"
	"log/slog"

	"github.com/nanokms/nanokms/gateway"
	"github.com/nanokms/nanokms/node"
)

// openNodeSide opens the gateway's link to the Nano node its [node]
// section names. The wiring (RPC client, WebSocket, work provider, Ledger,
// the confirmation loop and the receivable scan) lives in
// gateway.NodeSide, which the end-to-end tests run as well; without a
// node its Ledger is nil and Run only waits. wrapWork, when not nil,
// wraps the work provider (metrics time it).
func openNodeSide(ctx context.Context, cfg gateway.NodeConfig, log *slog.Logger, wrapWork func(node.WorkProvider) node.WorkProvider) (*gateway.NodeSide, error) {
	return gateway.OpenNodeSide(ctx, cfg, gateway.NodeSideOptions{Log: log, WrapWork: wrapWork})
}
