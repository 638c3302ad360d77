package jobmetrics

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nanokms/nanokms/metrics"
)

// Store label values of the audit verify metrics: what was read.
const (
	StoreBbolt    = "bbolt"    // a signer's bbolt state file
	StorePostgres = "postgres" // the signers' PostgreSQL database
)

// The metric names.
const (
	AuditOK          = "nanokms_audit_verify_ok"
	AuditRecords     = "nanokms_audit_verify_records"
	AuditLastRun     = "nanokms_audit_verify_last_run_timestamp_seconds"
	AuditLastSuccess = "nanokms_audit_verify_last_success_timestamp_seconds"

	BackupOK          = "nanokms_signer_backup_ok"
	BackupLastRun     = "nanokms_signer_backup_last_run_timestamp_seconds"
	BackupLastSuccess = "nanokms_signer_backup_last_success_timestamp_seconds"
	BackupBytes       = "nanokms_signer_backup_bytes"
	BackupRecords     = "nanokms_signer_backup_records"
)

// AuditVerify is the outcome of one audit verify run.
type AuditVerify struct {
	// Store is what was read: StoreBbolt or StorePostgres.
	Store string
	// OK is true when the whole chain verified.
	OK bool
	// Records is how many records verified (those before the break when
	// OK is false).
	Records uint64
	// At is when the run ended.
	At time.Time
}

// Backup is the outcome of one signer backup run.
type Backup struct {
	// OK is true when the backup was written and checked.
	OK bool
	// Bytes and Records are the backup's size and audit records (ignored
	// when OK is false: the last successful backup's are kept).
	Bytes   int64
	Records uint64
	// At is when the run ended.
	At time.Time
}

// WriteAuditVerify writes r's metrics to path (a .prom file), keeping the
// last success's time from the file already there when r is not OK. A
// previous file that cannot be read or is garbled is passed to warn (nil
// ignores it) and left out: the last success is then 0 (never) unless r is
// OK.
func WriteAuditVerify(path string, r AuditVerify, warn func(error)) error {
	if r.Store != StoreBbolt && r.Store != StorePostgres {
		return fmt.Errorf("jobmetrics: store %q is neither %q nor %q", r.Store, StoreBbolt, StorePostgres)
	}
	now := unix(r.At)
	last, err := previousAudit(path, r.Store, now)
	if err != nil && warn != nil {
		warn(err)
	}
	if r.OK {
		last = now
	}
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"store": r.Store}
	reg.MustRegister(
		constGauge(AuditOK, "1 if the last nanokms audit verify found every link of the audit chain, 0 if the chain is broken.", labels, bool01(r.OK)),
		constGauge(AuditRecords, "Audit records the last nanokms audit verify checked (those before the break, when broken).", labels, float64(r.Records)),
		constGauge(AuditLastRun, "When nanokms audit verify last ran (Unix seconds), whatever it found.", labels, now),
		constGauge(AuditLastSuccess, "When nanokms audit verify last found the whole chain verifying (Unix seconds; 0: never, as far as this file knows).", labels, last),
	)
	return metrics.WriteTextfile(reg, path)
}

// WriteBackup writes r's metrics to path (a .prom file). When r is not OK,
// the last success's time, bytes and records are kept from the file
// already there (0 if there is none, or it is garbled: then warn is
// called).
func WriteBackup(path string, r Backup, warn func(error)) error {
	now := unix(r.At)
	last, bytes, records, err := previousBackup(path, now)
	if err != nil && warn != nil {
		warn(err)
	}
	if r.OK {
		last, bytes, records = now, float64(r.Bytes), float64(r.Records)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		constGauge(BackupOK, "1 if the last nanokms signer backup wrote and checked its file, 0 if it failed.", nil, bool01(r.OK)),
		constGauge(BackupLastRun, "When nanokms signer backup last ran (Unix seconds), whatever came of it.", nil, now),
		constGauge(BackupLastSuccess, "When nanokms signer backup last succeeded (Unix seconds; 0: never, as far as this file knows).", nil, last),
		constGauge(BackupBytes, "The size of the last successful backup, in bytes (0: none known).", nil, bytes),
		constGauge(BackupRecords, "The audit records in the last successful backup (0: none known).", nil, records),
	)
	return metrics.WriteTextfile(reg, path)
}

// errIgnored wraps what is wrong with a previous file (err names it).
func errIgnored(err error) error {
	return fmt.Errorf("the previous metrics file is ignored: %w", err)
}

// readPrevious reads the file at path: nil and no error when there is
// none.
func readPrevious(path string) (map[string]*dto.MetricFamily, error) {
	fams, err := metrics.ReadTextfile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, errIgnored(err)
	}
	return fams, nil
}

// previousAudit returns the last success of store in the file at path: 0
// when there is no file, and 0 and an error when the file is garbled or
// holds no time before now for store.
func previousAudit(path, store string, now float64) (float64, error) {
	prev, err := readPrevious(path)
	if prev == nil {
		return 0, err
	}
	v, err := gauge(prev, AuditLastSuccess, store)
	if err == nil && !validTime(v, now) {
		err = fmt.Errorf("%w: %s is %v, not a time before now", metrics.ErrTextfileGarbled, AuditLastSuccess, v)
	}
	if err != nil {
		return 0, errIgnored(fmt.Errorf("%s: %w", path, err))
	}
	return v, nil
}

// previousBackup returns the last success, bytes and records in the file
// at path: zeros when there is no file, and zeros and an error when it is
// garbled.
func previousBackup(path string, now float64) (last, bytes, records float64, err error) {
	prev, err := readPrevious(path)
	if prev == nil {
		return 0, 0, 0, err
	}
	last, err = gauge(prev, BackupLastSuccess, "")
	if err == nil && !validTime(last, now) {
		err = fmt.Errorf("%w: %s is %v, not a time before now", metrics.ErrTextfileGarbled, BackupLastSuccess, last)
	}
	if err == nil {
		bytes, err = count(prev, BackupBytes)
	}
	if err == nil {
		records, err = count(prev, BackupRecords)
	}
	if err != nil {
		return 0, 0, 0, errIgnored(fmt.Errorf("%s: %w", path, err))
	}
	return last, bytes, records, nil
}

// count returns gauge name of prev, which must be a whole number.
func count(prev map[string]*dto.MetricFamily, name string) (float64, error) {
	v, err := gauge(prev, name, "")
	if err == nil && !validCount(v) {
		err = fmt.Errorf("%w: %s is %v, not a count", metrics.ErrTextfileGarbled, name, v)
	}
	return v, err
}

// gauge returns the value of the one series of gauge name in fams whose
// store label is store ("" for no label at all).
func gauge(fams map[string]*dto.MetricFamily, name, store string) (float64, error) {
	mf, ok := fams[name]
	if !ok {
		return 0, fmt.Errorf("%w: no %s", metrics.ErrTextfileGarbled, name)
	}
	if mf.GetType() != dto.MetricType_GAUGE {
		return 0, fmt.Errorf("%w: %s has type %s, not gauge", metrics.ErrTextfileGarbled, name, strings.ToLower(mf.GetType().String()))
	}
	var v float64
	found := 0
	for _, m := range mf.GetMetric() {
		labels := m.GetLabel()
		switch {
		case store == "" && len(labels) == 0:
		case store != "" && len(labels) == 1 && labels[0].GetName() == "store" && labels[0].GetValue() == store:
		default:
			continue
		}
		found++
		v = m.GetGauge().GetValue()
	}
	if found != 1 {
		what := name
		if store != "" {
			what += `{store="` + store + `"}`
		}
		return 0, fmt.Errorf("%w: %d series %s", metrics.ErrTextfileGarbled, found, what)
	}
	return v, nil
}

// validTime reports whether v is a Unix time, in seconds, not after now,
// or 0 (never).
func validTime(v, now float64) bool {
	return !math.IsNaN(v) && v >= 0 && v <= now
}

// validCount reports whether v is a whole number that a count can be.
func validCount(v float64) bool {
	return !math.IsNaN(v) && v >= 0 && v < 1<<53 && v == math.Trunc(v)
}

func unix(t time.Time) float64 {
	if t.IsZero() {
		t = time.Now()
	}
	return float64(t.UnixNano()) / 1e9
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// constGauge is a collector of one gauge series.
func constGauge(name, help string, labels prometheus.Labels, v float64) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
	g.Set(v)
	return g
}
