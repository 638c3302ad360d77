// Package signermetrics holds the cold signer's Prometheus metrics
// (NewSigner), with methods matching signer.Options' hooks. They are
// written to a textfile (metrics.RunTextfile): the cold host has no
// network. docs/METRICS.md lists them. It never links hot code.
package signermetrics
