// Package metrics holds what the Prometheus metrics of the nanokms roles
// share: the histogram buckets, the closed label sets of the bridge's
// refused frames and medium errors (RejectReason, MediumKind), the
// textfile writer of the cold hosts and the gateway's HTTP listener. Each
// role's metrics are in a package of their own, so that a cold binary
// links no hot code: gatewaymetrics (hot), relaymetrics and signermetrics
// (cold). docs/METRICS.md lists every metric.
//
// Each role's constructor returns typed collectors registered on a registry of
// their own (never prometheus.DefaultRegisterer), and methods whose
// signatures match the hooks the roles offer (gateway.Options,
// relay.Relay, signer.Options, node.WorkProvider), so that a command
// wires them in without glue.
//
// The gateway serves its registry on a listener of its own (Handler,
// Serve). The cold hosts have no network: their registries are written to
// a file for the node_exporter textfile collector (WriteTextfile,
// RunTextfile), atomically; ReadTextfile reads such a file back, strictly,
// for the timer-run commands of jobmetrics.
//
// Labels are closed, low-cardinality sets: request statuses, outcomes,
// refusal reasons, alert kinds, frame refusal reasons. A label must never
// carry a secret, a request payload, a request id, an account, an amount
// or any other value that comes from a request: those belong in the logs,
// which carry the request id, not in metrics.
package metrics
