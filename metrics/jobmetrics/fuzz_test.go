package jobmetrics

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nanokms/nanokms/metrics"
)

// FuzzPrevious feeds any bytes as the previous file: reading it never
// panics, a file it does not use is reported as garbled, and what it uses
// is a time before now and whole counts.
func FuzzPrevious(f *testing.F) {
	f.Add([]byte("# TYPE " + AuditLastSuccess + " gauge\n" + AuditLastSuccess + `{store="bbolt"} 1.7e9` + "\n"))
	f.Add([]byte("# TYPE " + BackupLastSuccess + " gauge\n" + BackupLastSuccess + " 1.7e9\n" +
		BackupBytes + " 4096\n" + BackupRecords + " 12\n"))
	f.Add([]byte(AuditLastSuccess + `{store="bbolt",store="bbolt"} 1` + "\n"))
	f.Add([]byte("# HELP x y\n# TYPE x histogram\nx_bucket{le=\"+Inf\"} 1\nx_sum 1\nx_count 1\n"))
	dir := f.TempDir()
	now := unix(t2)
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "prev.prom")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if v, err := previousAudit(path, StoreBbolt, now); err != nil {
			if !errors.Is(err, metrics.ErrTextfileGarbled) || v != 0 {
				t.Fatalf("previousAudit: %v, %v", v, err)
			}
		} else if !validTime(v, now) {
			t.Fatalf("previousAudit used %v", v)
		}
		last, bytes, records, err := previousBackup(path, now)
		if err != nil {
			if !errors.Is(err, metrics.ErrTextfileGarbled) || last != 0 || bytes != 0 || records != 0 {
				t.Fatalf("previousBackup: %v %v %v, %v", last, bytes, records, err)
			}
		} else if !validTime(last, now) || !validCount(bytes) || !validCount(records) {
			t.Fatalf("previousBackup used %v %v %v", last, bytes, records)
		}
	})
}
