package jobmetrics

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/nanokms/nanokms/metrics"
)

var (
	t1 = time.Unix(1_800_000_000, 0)
	t2 = t1.Add(24 * time.Hour)
)

// mustRead reads a textfile back and returns each gauge series by name
// and store label.
func mustRead(t *testing.T, path string) map[string]float64 {
	t.Helper()
	fams, err := metrics.ReadTextfile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, mf := range fams {
		if mf.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s is a %s", name, mf.GetType())
		}
		for _, m := range mf.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

// warnings collects what a write warns about.
type warnings []error

func (w *warnings) add(err error) { *w = append(*w, err) }

func checkValues(t *testing.T, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d series %v, want %d %v", len(got), got, len(want), want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

func TestAuditVerifyKeepsLastSuccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nanokms_audit_verify.prom")
	var w warnings
	if err := WriteAuditVerify(path, AuditVerify{Store: StoreBbolt, OK: true, Records: 7, At: t1}, w.add); err != nil {
		t.Fatal(err)
	}
	checkValues(t, mustRead(t, path), map[string]float64{
		AuditOK + "{store=bbolt}": 1, AuditRecords + "{store=bbolt}": 7,
		AuditLastRun + "{store=bbolt}": 1.8e9, AuditLastSuccess + "{store=bbolt}": 1.8e9,
	})
	if err := WriteAuditVerify(path, AuditVerify{Store: StoreBbolt, OK: false, Records: 3, At: t2}, w.add); err != nil {
		t.Fatal(err)
	}
	checkValues(t, mustRead(t, path), map[string]float64{
		AuditOK + "{store=bbolt}": 0, AuditRecords + "{store=bbolt}": 3,
		AuditLastRun + "{store=bbolt}": 1.8e9 + 86400, AuditLastSuccess + "{store=bbolt}": 1.8e9,
	})
	// Failing again: still the first run's success.
	if err := WriteAuditVerify(path, AuditVerify{Store: StoreBbolt, OK: false, Records: 3, At: t2.Add(time.Hour)}, w.add); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, path)[AuditLastSuccess+"{store=bbolt}"]; got != 1.8e9 {
		t.Errorf("after two failures the last success is %v, want %v", got, 1.8e9)
	}
	if len(w) != 0 {
		t.Errorf("warnings on our own files: %v", w)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the file: %v, %v; want mode 0644", fi, err)
	}
}

func TestAuditVerifyFirstRunBroken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nanokms_audit_verify.prom")
	var w warnings
	if err := WriteAuditVerify(path, AuditVerify{Store: StorePostgres, OK: false, Records: 0, At: t1}, w.add); err != nil {
		t.Fatal(err)
	}
	checkValues(t, mustRead(t, path), map[string]float64{
		AuditOK + "{store=postgres}": 0, AuditRecords + "{store=postgres}": 0,
		AuditLastRun + "{store=postgres}": 1.8e9, AuditLastSuccess + "{store=postgres}": 0,
	})
	if len(w) != 0 {
		t.Errorf("a missing previous file warned: %v", w)
	}
}

// TestPreviousIgnored: a previous file that is garbled, or holds no time
// that can be the last success, is reported and not used.
func TestPreviousIgnored(t *testing.T) {
	good := "# TYPE " + AuditLastSuccess + " gauge\n" + AuditLastSuccess + `{store="bbolt"} 1.7e9` + "\n"
	for _, c := range []struct{ name, prev, why string }{
		{"not the format", "nanokms_audit_verify_ok{store=\"bbolt\" 1\n", "garbled"},
		{"cut short", good[:len(good)-12], "garbled"},
		{"binary", "\x00\x01\x02\xff", "garbled"},
		{"a series twice", good + AuditLastSuccess + `{store="bbolt"} 1.6e9` + "\n", "given twice"},
		{"a counter", strings.Replace(good, "gauge", "counter", 1), "has type counter, not gauge"},
		{"in the future", strings.Replace(good, "1.7e9", "1.9e9", 1), "not a time before now"},
		{"NaN", strings.Replace(good, "1.7e9", "NaN", 1), "not a time before now"},
		{"negative", strings.Replace(good, "1.7e9", "-5", 1), "not a time before now"},
		{"another store", strings.Replace(good, "bbolt", "postgres", 1), "0 series"},
		{"no label", "# TYPE " + AuditLastSuccess + " gauge\n" + AuditLastSuccess + " 1.7e9\n", "0 series"},
		{"missing", "# TYPE nanokms_other gauge\nnanokms_other 1\n", "no " + AuditLastSuccess},
		{"too big", good + strings.Repeat("# padding\n", metrics.MaxTextfileSize/10), "over"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "nanokms_audit_verify.prom")
			if err := os.WriteFile(path, []byte(c.prev), 0o644); err != nil {
				t.Fatal(err)
			}
			var w warnings
			if err := WriteAuditVerify(path, AuditVerify{Store: StoreBbolt, OK: false, Records: 1, At: t1}, w.add); err != nil {
				t.Fatal(err)
			}
			if len(w) != 1 || !errors.Is(w[0], metrics.ErrTextfileGarbled) || !strings.Contains(w[0].Error(), c.why) || !strings.Contains(w[0].Error(), path) {
				t.Errorf("warnings %v, want one wrapping ErrTextfileGarbled naming the file and saying %q", w, c.why)
			}
			if got := mustRead(t, path)[AuditLastSuccess+"{store=bbolt}"]; got != 0 {
				t.Errorf("last success %v from an ignored file, want 0", got)
			}
		})
	}
	// The well-formed file is kept (the cases above differ from it only
	// in what is wrong).
	path := filepath.Join(t.TempDir(), "nanokms_audit_verify.prom")
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	var w warnings
	if err := WriteAuditVerify(path, AuditVerify{Store: StoreBbolt, At: t1}, w.add); err != nil || len(w) != 0 {
		t.Fatalf("%v, warnings %v", err, w)
	}
	if got := mustRead(t, path)[AuditLastSuccess+"{store=bbolt}"]; got != 1.7e9 {
		t.Errorf("last success %v, want 1.7e9 from the previous file", got)
	}
}

// TestPreviousNotAFile: a symbolic link or a directory where the file
// belongs is not read through; the link is replaced, its target untouched.
func TestPreviousNotAFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	good := "# TYPE " + AuditLastSuccess + " gauge\n" + AuditLastSuccess + `{store="bbolt"} 1.7e9` + "\n"
	if err := os.WriteFile(target, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nanokms_audit_verify.prom")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	var w warnings
	if err := WriteAuditVerify(path, AuditVerify{Store: StoreBbolt, At: t1}, w.add); err != nil {
		t.Fatal(err)
	}
	if len(w) != 1 || !errors.Is(w[0], metrics.ErrTextfileGarbled) || !strings.Contains(w[0].Error(), "symbolic link") {
		t.Errorf("warnings %v, want one about the symbolic link", w)
	}
	if data, err := os.ReadFile(target); err != nil || string(data) != good {
		t.Errorf("the link's target: %q, %v; want it unchanged", data, err)
	}
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("%s is not a regular file now: %v, %v", path, fi, err)
	}
	if got := mustRead(t, path)[AuditLastSuccess+"{store=bbolt}"]; got != 0 {
		t.Errorf("last success %v read through a link, want 0", got)
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	if err := WriteAuditVerify(filepath.Join(dir, "missing", "a.prom"), AuditVerify{Store: StoreBbolt, OK: true}, nil); err == nil {
		t.Error("a file in a missing directory was written")
	}
	if err := WriteAuditVerify(filepath.Join(dir, "a.txt"), AuditVerify{Store: StoreBbolt, OK: true}, nil); err == nil {
		t.Error("a file not named .prom was written")
	}
	if err := WriteAuditVerify(filepath.Join(dir, "a.prom"), AuditVerify{Store: "sqlite", OK: true}, nil); err == nil || !strings.Contains(err.Error(), "sqlite") {
		t.Errorf("store sqlite: %v", err)
	}
	if err := WriteBackup(filepath.Join(dir, "missing", "b.prom"), Backup{OK: true}, nil); err == nil {
		t.Error("a backup file in a missing directory was written")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestBackupKeepsLastSuccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nanokms_signer_backup.prom")
	var w warnings
	if err := WriteBackup(path, Backup{OK: false, Bytes: 99, Records: 9, At: t1}, w.add); err != nil {
		t.Fatal(err)
	}
	checkValues(t, mustRead(t, path), map[string]float64{
		BackupOK: 0, BackupLastRun: 1.8e9, BackupLastSuccess: 0, BackupBytes: 0, BackupRecords: 0,
	})
	if err := WriteBackup(path, Backup{OK: true, Bytes: 4096, Records: 12, At: t1.Add(time.Hour)}, w.add); err != nil {
		t.Fatal(err)
	}
	checkValues(t, mustRead(t, path), map[string]float64{
		BackupOK: 1, BackupLastRun: 1.8e9 + 3600, BackupLastSuccess: 1.8e9 + 3600, BackupBytes: 4096, BackupRecords: 12,
	})
	if err := WriteBackup(path, Backup{OK: false, Bytes: 1, Records: 1, At: t2}, w.add); err != nil {
		t.Fatal(err)
	}
	checkValues(t, mustRead(t, path), map[string]float64{
		BackupOK: 0, BackupLastRun: 1.8e9 + 86400, BackupLastSuccess: 1.8e9 + 3600, BackupBytes: 4096, BackupRecords: 12,
	})
	if len(w) != 0 {
		t.Errorf("warnings on our own files: %v", w)
	}
	// A garbled count: the whole previous file is ignored.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), BackupRecords+" 12", BackupRecords+" 1.5", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteBackup(path, Backup{OK: false, At: t2.Add(time.Hour)}, w.add); err != nil {
		t.Fatal(err)
	}
	if len(w) != 1 || !errors.Is(w[0], metrics.ErrTextfileGarbled) || !strings.Contains(w[0].Error(), "not a count") {
		t.Errorf("warnings %v, want one about the count", w)
	}
	checkValues(t, mustRead(t, path), map[string]float64{
		BackupOK: 0, BackupLastRun: 1.8e9 + 90000, BackupLastSuccess: 0, BackupBytes: 0, BackupRecords: 0,
	})
}
