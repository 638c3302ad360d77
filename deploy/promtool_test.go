package deploy

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// policyRCD is where invoke-rc.d and deb-systemd-invoke look for a policy
// that may forbid starting services when a package is installed.
const policyRCD = "/usr/sbin/policy-rc.d"

// ensurePromtool returns the path of promtool, installing Debian's
// prometheus package when it is missing. The package would start a
// Prometheus server: while it installs, a policy-rc.d that forbids
// starting services is put in place (unless one is there already), and
// the test fails if a Prometheus server is running afterwards that was not
// before. It fails the test if it cannot install promtool: the rules are
// never left unchecked.
func ensurePromtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if os.Geteuid() != 0 {
		t.Fatal("promtool is missing and this test is not root, so it cannot install it: apt-get install prometheus")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Fatal("promtool is missing and there is no apt-get to install it with (it is in Debian's prometheus package)")
	}
	before := prometheusServers(t)
	if _, err := os.Lstat(policyRCD); errors.Is(err, fs.ErrNotExist) {
		policy := "#!/bin/sh\n# Written by nanokms's deploy test while it installs the prometheus package\n# (for promtool): no service may start. Removed when the installation ends.\nexit 101\n"
		if err := os.WriteFile(policyRCD, []byte(policy), 0o755); err != nil {
			t.Fatalf("writing %s: %v", policyRCD, err)
		}
		defer func() {
			if err := os.Remove(policyRCD); err != nil {
				t.Errorf("removing the %s this test wrote: %v", policyRCD, err)
			}
		}()
	} else if err != nil {
		t.Fatalf("%s: %v", policyRCD, err)
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	// Other tests may be installing packages at the same time: wait for
	// dpkg's lock rather than fail on it.
	lock := []string{"-o", "DPkg::Lock::Timeout=600"}
	for _, args := range [][]string{
		append(slices.Clone(lock), "update"),
		append(slices.Clone(lock), "install", "-y", "--no-install-recommends", "prometheus"),
	} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Under systemd the package also enables its service for the next
	// boot (enabling is not starting: policy-rc.d does not stop it).
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		if out, err := exec.Command("systemctl", "disable", "prometheus.service").CombinedOutput(); err != nil {
			t.Logf("systemctl disable prometheus.service: %v\n%s", err, out)
		}
	}
	for _, pid := range prometheusServers(t) {
		if !slices.Contains(before, pid) {
			t.Errorf("installing the prometheus package started a Prometheus server (pid %s) although %s forbade it: stop it (systemctl stop prometheus, or kill %s)", pid, policyRCD, pid)
		}
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("installed the prometheus package, but promtool is still missing")
	}
	return p
}

// prometheusServers returns the pids of the processes named prometheus.
func prometheusServers(t *testing.T) []string {
	t.Helper()
	comms, err := filepath.Glob("/proc/[0-9]*/comm")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, c := range comms {
		data, err := os.ReadFile(c)
		if err != nil {
			continue // the process has gone
		}
		if strings.TrimSpace(string(data)) == "prometheus" {
			pids = append(pids, filepath.Base(filepath.Dir(c)))
		}
	}
	return pids
}

// TestEnsurePromtool installs promtool if it is missing.
func TestEnsurePromtool(t *testing.T) {
	p := ensurePromtool(t)
	out, err := exec.Command(p, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool --version: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
