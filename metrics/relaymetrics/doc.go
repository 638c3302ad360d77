// Package relaymetrics holds the cold relay's Prometheus metrics
// (NewRelay), with methods matching relay.Relay's hooks. They are written
// to a textfile (metrics.RunTextfile): the cold host has no network.
// docs/METRICS.md lists them. It never links hot code.
package relaymetrics
