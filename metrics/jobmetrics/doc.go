// Package jobmetrics holds the metrics of the cold host's commands that a
// timer runs and that exit: `nanokms audit verify --metrics FILE`
// (WriteAuditVerify) and `nanokms signer backup --metrics FILE`
// (WriteBackup). Each run rewrites its textfile atomically with
// metrics.WriteTextfile, for node_exporter's textfile collector, and
// carries the time of the last success over from the file the previous
// run wrote, so that its age keeps growing while runs fail.
// docs/METRICS.md lists the metrics.
//
// The previous file is read strictly (metrics.ReadTextfile) and trusted
// for nothing but that time and the last backup's size: a garbled one is
// reported to the caller's warning function and the run writes fresh
// values. It never links hot code, and never writes anything but the
// textfile it is given.
package jobmetrics
