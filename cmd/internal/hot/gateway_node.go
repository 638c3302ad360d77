package hot

import (
	"context"
	"log/slog"

	"github.com/nanokms/nanokms/gateway"
	"github.com/nanokms/nanokms/metrics/gatewaymetrics"
)

// openNodeSide opens the gateway's link to the Nano node its [node]
// section names. The wiring (RPC client, WebSocket, work provider, Ledger,
// the confirmation loop and the receivable scan) lives in
// gateway.NodeSide, which the end-to-end tests run as well; without a
// node its Ledger is nil and Run only waits. With [node.callback] it
// listens for the node's HTTP callback here, so that a port in use fails
// the start. m times the work provider and counts the callbacks.
func openNodeSide(ctx context.Context, cfg gateway.NodeConfig, log *slog.Logger, m *gatewaymetrics.Gateway) (*gateway.NodeSide, error) {
	return gateway.OpenNodeSide(ctx, cfg, gateway.NodeSideOptions{Log: log, WrapWork: m.WorkProvider, ObserveCallback: m.Callback})
}
