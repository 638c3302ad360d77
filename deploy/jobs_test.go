package deploy

import (
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// jobs are the cold host's timer-run units: each a .service and a .timer
// of that name.
var jobs = []string{"nanokms-audit-verify", "nanokms-signer-backup"}

// jobStaleAfter is the age at which the rules call a job's last success
// stale (NanokmsAuditVerifyStale, NanokmsBackupStale).
const jobStaleAfter = 26 * time.Hour

// TestJobUnits checks the timer-run units: a oneshot service as the
// nanokms user with the other units' hardening and no network (nothing
// restarts it: a broken chain or a failed backup waits for the next run),
// its command with the signer's configuration and a textfile in the
// directory of signer.metrics, both writable by the unit; a daily timer
// whose runs come closer together than the alerts' 26 hours.
func TestJobUnits(t *testing.T) {
	sc, _, _ := loadConfigs(t)
	textfileDir := filepath.Dir(sc.Signer.Metrics)
	for _, j := range jobs {
		t.Run(j, func(t *testing.T) {
			u := parseUnit(t, filepath.Join("systemd", j+".service"))
			want := maps.Clone(hardening)
			delete(want, "Restart")
			maps.Copy(want, map[string]string{"Type": "oneshot", "User": "nanokms", "Group": "nanokms", "UMask": "0077",
				"PrivateNetwork": "yes", "RestrictAddressFamilies": "AF_UNIX", "IPAddressDeny": "any", "LimitCORE": "0"})
			for key, w := range want {
				if got := u.get(key); got != w || len(u["Service"][key]) == 0 {
					t.Errorf("%s=%v, want %q", key, u["Service"][key], w)
				}
			}
			if f := u["Service"]["SystemCallFilter"]; len(f) != 2 || f[0] != "@system-service" || f[1] != "~@privileged" {
				t.Errorf("SystemCallFilter=%v, want @system-service then ~@privileged", f)
			}
			if r := u.get("Restart"); r != "" && r != "no" {
				t.Errorf("Restart=%s: a failed run would be run again at once", r)
			}
			if len(u["Install"]) != 0 {
				t.Errorf("[Install] %v: the timer starts it", u["Install"])
			}
			if !strings.Contains(strings.Join(u["Unit"]["After"], " "), "nanokms-signer.service") {
				t.Error("not ordered after the signer")
			}

			args := strings.Fields(u.get("ExecStart"))
			flag := func(name string) string {
				for i, a := range args {
					if a == name && i+1 < len(args) {
						return args[i+1]
					}
				}
				return ""
			}
			wantCmd := map[string]string{"nanokms-audit-verify": "audit verify", "nanokms-signer-backup": "signer backup"}[j]
			if len(args) < 3 || args[0] != "/usr/bin/nanokms-cold" || strings.Join(args[1:3], " ") != wantCmd {
				t.Errorf("ExecStart=%s, want /usr/bin/nanokms-cold %s …", u.get("ExecStart"), wantCmd)
			}
			if flag("--config") != "/etc/nanokms/signer.toml" {
				t.Errorf("ExecStart=%s: not --config /etc/nanokms/signer.toml (through the running signer)", u.get("ExecStart"))
			}
			m := flag("--metrics")
			if filepath.Dir(m) != textfileDir || !strings.HasSuffix(m, ".prom") || filepath.Base(m) == filepath.Base(sc.Signer.Metrics) || !u.writable(m) {
				t.Errorf("--metrics %q: want a .prom file of its own in %s (signer.metrics' directory), writable by the unit", m, textfileDir)
			}
			if j == "nanokms-signer-backup" {
				if d := flag("--out-dir"); d == "" || !u.writable(filepath.Join(d, "signer-x.state")) || under(d, "/var/lib/nanokms") {
					t.Errorf("--out-dir %q: want a directory writable by the unit, outside the signer's state directory", d)
				}
			}

			tm := parseUnit(t, filepath.Join("systemd", j+".timer"))
			if got := tm["Timer"]["OnCalendar"]; len(got) != 1 || got[0] != "daily" {
				t.Errorf("%s.timer: OnCalendar=%v, want daily", j, got)
			}
			delay, err := time.ParseDuration(strings.Join(tm["Timer"]["RandomizedDelaySec"], ""))
			if err != nil || 24*time.Hour+delay >= jobStaleAfter {
				t.Errorf("%s.timer: RandomizedDelaySec=%v (%v): runs may come %v apart, the alerts fire at %v", j, tm["Timer"]["RandomizedDelaySec"], err, 24*time.Hour+delay, jobStaleAfter)
			}
			if got := tm["Timer"]["Persistent"]; len(got) != 1 || got[0] != "true" {
				t.Errorf("%s.timer: Persistent=%v, want true (a run missed while off is run at boot)", j, got)
			}
			if got := tm["Install"]["WantedBy"]; len(got) != 1 || got[0] != "timers.target" {
				t.Errorf("%s.timer: WantedBy=%v, want timers.target", j, got)
			}
		})
	}
}
