// Package gatewaymetrics holds the hot gateway's Prometheus metrics
// (NewGateway), with methods matching the gateway's and the node client's
// hooks (gateway.Options, node.WorkProvider). docs/METRICS.md lists them.
// It is hot code: the cold side never links it.
package gatewaymetrics
