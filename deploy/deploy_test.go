package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanokms/nanokms/gateway"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer/signerconf"
)

// unit is a parsed unit file: section → key → values, in order (a key
// may be given more than once; an empty assignment resets the list, as
// systemd reads it, but is kept as "" so that tests can see it).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value in a section: %q", path, n, line)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// get returns the last value of key in [Service] ("" if absent).
func (u unit) get(key string) string {
	vs := u["Service"][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// words returns every space-separated word of every value of key in [Service].
func (u unit) words(key string) []string {
	var out []string
	for _, v := range u["Service"][key] {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	path, dir = filepath.Clean(path), filepath.Clean(dir)
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// writable reports whether the unit lets the service write path: under
// a ReadWritePaths= entry, /var/lib/<StateDirectory> or /run/<RuntimeDirectory>.
func (u unit) writable(path string) bool {
	for _, p := range u.words("ReadWritePaths") {
		if under(path, strings.TrimPrefix(p, "-")) {
			return true
		}
	}
	for _, d := range u.words("StateDirectory") {
		if under(path, "/var/lib/"+d) {
			return true
		}
	}
	for _, d := range u.words("RuntimeDirectory") {
		if under(path, "/run/"+d) {
			return true
		}
	}
	return false
}

var roles = []string{"signer", "relay", "gateway", "devnode"}

// binaryOf is the binary each role's unit runs: the cold roles run the
// isolated host's nanokms-cold, the gateway the operator's nanokms, the
// dev node nanokms-dev.
var binaryOf = map[string]string{"signer": "nanokms-cold", "relay": "nanokms-cold", "gateway": "nanokms", "devnode": "nanokms-dev"}

// hardening is what every unit here has in [Service], the Nano node's
// included (deploy/README.md, "Hardening").
var hardening = map[string]string{
	"Restart": "on-failure", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
	"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateIPC": "yes",
	"ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
	"ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes", "ProtectProc": "invisible",
	"ProcSubset": "pid", "RestrictNamespaces": "yes", "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes",
	"LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "RemoveIPC": "yes", "PrivateDevices": "yes",
	"SystemCallArchitectures": "native", "SystemCallErrorNumber": "EPERM",
}

// checkHardening checks that u has hardening and extra (which wins), a
// system call filter of @system-service without @privileged, a restart
// delay, address families and an [Install] target.
func checkHardening(t *testing.T, name string, u unit, extra map[string]string) {
	t.Helper()
	want := maps.Clone(hardening)
	maps.Copy(want, extra)
	for key, w := range want {
		vs, ok := u["Service"][key]
		if !ok || vs[len(vs)-1] != w {
			t.Errorf("%s: %s=%v, want %q", name, key, vs, w)
		}
	}
	if f := u["Service"]["SystemCallFilter"]; !slices.Equal(f, []string{"@system-service", "~@privileged"}) {
		t.Errorf("%s: SystemCallFilter=%v, want @system-service then ~@privileged", name, f)
	}
	if u.get("RestartSec") == "" || u.get("RestrictAddressFamilies") == "" || len(u["Install"]["WantedBy"]) == 0 {
		t.Errorf("%s: RestartSec, RestrictAddressFamilies or WantedBy missing", name)
	}
}

func units(t *testing.T) map[string]unit {
	t.Helper()
	out := map[string]unit{}
	for _, r := range roles {
		out[r] = parseUnit(t, filepath.Join("systemd", "nanokms-"+r+".service"))
	}
	return out
}

func loadConfigs(t *testing.T) (*signerconf.Config, *relay.Config, *gateway.Config) {
	t.Helper()
	sc, err := signerconf.Load(filepath.Join("config", "signer.toml"))
	if err != nil {
		t.Fatalf("config/signer.toml: %v", err)
	}
	rc, err := relay.LoadConfig(filepath.Join("config", "relay.toml"))
	if err != nil {
		t.Fatalf("config/relay.toml: %v", err)
	}
	gc, err := gateway.LoadConfig(filepath.Join("config", "gateway.toml"))
	if err != nil {
		t.Fatalf("config/gateway.toml: %v", err)
	}
	return sc, rc, gc
}

// TestConfigsParse loads every example configuration with the parser its
// process uses.
func TestConfigsParse(t *testing.T) {
	sc, rc, gc := loadConfigs(t)
	if sc.Signer.Listen != rc.Signer {
		t.Errorf("the relay dials %s, the signer listens on %s", rc.Signer, sc.Signer.Listen)
	}
	if sc.Signer.Metrics == "" || rc.Metrics == "" || gc.MetricsListen == "" {
		t.Errorf("an example has no metrics: signer %q, relay %q, gateway %q", sc.Signer.Metrics, rc.Metrics, gc.MetricsListen)
	}
	if filepath.Dir(sc.Signer.Metrics) != filepath.Dir(rc.Metrics) || filepath.Base(sc.Signer.Metrics) == filepath.Base(rc.Metrics) {
		t.Errorf("the cold roles' metrics files should be two files of one textfile directory: %s, %s", sc.Signer.Metrics, rc.Metrics)
	}
	if rc.Bridge.Inbound != gc.Bridge.Outbound || rc.Bridge.Outbound != gc.Bridge.Inbound {
		t.Errorf("the bridge directories do not pair up: relay %s → %s, gateway %s → %s",
			rc.Bridge.Inbound, rc.Bridge.Outbound, gc.Bridge.Outbound, gc.Bridge.Inbound)
	}
	if len(sc.Policy.Groups) == 0 || len(sc.Policy.Approvers) == 0 {
		t.Error("the signer's example has no group or no approver")
	}
}

// TestUnitsMatchConfigs checks what the units and the configurations must
// agree on, and the hardening every unit must have.
func TestUnitsMatchConfigs(t *testing.T) {
	us := units(t)
	sc, rc, gc := loadConfigs(t)

	for _, r := range roles {
		u := us[r]
		exec := u.get("ExecStart")
		want := "/usr/bin/" + binaryOf[r] + " " + r + " --config /etc/nanokms/" + r + ".toml"
		if r == "devnode" {
			want = "/usr/bin/nanokms-dev devnode $NANOKMS_DEVNODE_FLAGS"
		}
		if exec != want {
			t.Errorf("%s: ExecStart=%s, want %s", r, exec, want)
		}
		if strings.Contains(strings.ToLower(exec), "pin") {
			t.Errorf("%s: the command line mentions a PIN: %s", r, exec)
		}
		checkHardening(t, r, u, map[string]string{"User": "nanokms", "Group": "nanokms", "UMask": "0077", "LimitNOFILE": "65536"})
		if r == "relay" || r == "gateway" {
			continue
		}
		if u.get("StateDirectory") == "" {
			t.Errorf("%s: no StateDirectory", r)
		}
	}

	// The cold roles have no network.
	for _, r := range []string{"signer", "relay"} {
		u := us[r]
		if u.get("PrivateNetwork") != "yes" || u.get("RestrictAddressFamilies") != "AF_UNIX" || u.get("IPAddressDeny") != "any" {
			t.Errorf("%s: PrivateNetwork=%s RestrictAddressFamilies=%s IPAddressDeny=%s", r,
				u.get("PrivateNetwork"), u.get("RestrictAddressFamilies"), u.get("IPAddressDeny"))
		}
	}
	for _, r := range []string{"gateway", "devnode"} {
		if us[r].get("PrivateNetwork") == "yes" {
			t.Errorf("%s has no network", r)
		}
	}

	// The signer: the PIN as a credential, its socket, state and metrics.
	s := us["signer"]
	cred := s.get("LoadCredential")
	name, src, _ := strings.Cut(cred, ":")
	if src != "/etc/nanokms/pin" || sc.Token.PINFile != "/run/credentials/nanokms-signer.service/"+name || sc.Token.PINEnv != "" {
		t.Errorf("LoadCredential=%s but token.pin_file = %q, pin_env = %q", cred, sc.Token.PINFile, sc.Token.PINEnv)
	}
	if sock, ok := strings.CutPrefix(sc.Signer.Listen, "unix://"); !ok || !s.writable(sock) || !strings.HasPrefix(sock, "/run/") {
		t.Errorf("signer.listen %s is not in the unit's RuntimeDirectory", sc.Signer.Listen)
	}
	if sock, ok := strings.CutPrefix(sc.Signer.HealthListen, "unix://"); !ok || !s.writable(sock) || !strings.HasPrefix(sock, "/run/") {
		t.Errorf("signer.health_listen %q is not a socket in the unit's RuntimeDirectory (the unit has no network)", sc.Signer.HealthListen)
	}
	if !s.writable(sc.Signer.State) || !s.writable(sc.Signer.Metrics) {
		t.Errorf("the signer may not write its state %s or its metrics %s", sc.Signer.State, sc.Signer.Metrics)
	}
	if s.get("LimitMEMLOCK") == "" || s.get("RestartPreventExitStatus") != "3" || s.get("LimitCORE") != "0" {
		t.Errorf("signer: LimitMEMLOCK=%s RestartPreventExitStatus=%s LimitCORE=%s", s.get("LimitMEMLOCK"), s.get("RestartPreventExitStatus"), s.get("LimitCORE"))
	}
	if stop, err := time.ParseDuration(s.get("TimeoutStopSec")); err != nil || stop <= sc.Signer.ShutdownGrace {
		t.Errorf("TimeoutStopSec=%s is not above signer.shutdown_grace %s", s.get("TimeoutStopSec"), sc.Signer.ShutdownGrace)
	}

	// The relay: the signer's socket, its bridge and metrics; after the signer.
	r := us["relay"]
	if !strings.Contains(strings.Join(r["Unit"]["After"], " "), "nanokms-signer.service") {
		t.Error("the relay does not start after the signer")
	}
	if !r.writable(rc.Bridge.Inbound) || !r.writable(rc.Bridge.Outbound) || !r.writable(rc.Metrics) {
		t.Errorf("the relay may not write its bridge (%s, %s) or its metrics (%s)", rc.Bridge.Inbound, rc.Bridge.Outbound, rc.Metrics)
	}
	if sock, ok := strings.CutPrefix(rc.HealthListen, "unix://"); !ok || !r.writable(sock) || !strings.HasPrefix(sock, "/run/") {
		t.Errorf("relay.health_listen %q is not a socket in the unit's RuntimeDirectory (the unit has no network)", rc.HealthListen)
	}
	if r.get("PrivateDevices") != "yes" {
		t.Error("the relay sees devices without the serial drop-in")
	}

	// The gateway: state and bridge.
	g := us["gateway"]
	if !g.writable(gc.State) || !g.writable(gc.Bridge.Inbound) || !g.writable(gc.Bridge.Outbound) {
		t.Errorf("the gateway may not write its state %s or its bridge", gc.State)
	}
	if !slices.Contains(g.words("RestrictAddressFamilies"), "AF_INET") || !slices.Contains(g.words("RestrictAddressFamilies"), "AF_INET6") {
		t.Error("the gateway cannot reach the network")
	}

	// The dev node: its flags come from the environment file.
	d := us["devnode"]
	if d.get("EnvironmentFile") != "/etc/nanokms/devnode.env" {
		t.Errorf("devnode: EnvironmentFile=%s", d.get("EnvironmentFile"))
	}
	flags := devnodeFlags(t)
	for i, f := range flags {
		if (f == "--state" || f == "--ipc") && i+1 < len(flags) {
			p := strings.TrimPrefix(flags[i+1], "unix://")
			if !d.writable(p) {
				t.Errorf("devnode %s %s is not writable by the unit", f, flags[i+1])
			}
		}
	}
}

// devnodeFlags returns NANOKMS_DEVNODE_FLAGS from config/devnode.env, split
// as systemd splits an unquoted $VARIABLE in ExecStart.
func devnodeFlags(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("config", "devnode.env"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "NANOKMS_DEVNODE_FLAGS="); ok {
			return strings.Fields(strings.Trim(v, `"`))
		}
	}
	t.Fatal("config/devnode.env does not set NANOKMS_DEVNODE_FLAGS")
	return nil
}

// ensureSystemdAnalyze returns the path of systemd-analyze, installing
// Debian's systemd package when it is missing. It fails the test if it
// cannot: the units are never left unverified.
func ensureSystemdAnalyze(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("systemd-analyze"); err == nil {
		return p
	}
	if os.Geteuid() != 0 {
		t.Fatal("systemd-analyze is missing and this test is not root, so it cannot install it: apt-get install systemd")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Fatal("systemd-analyze is missing and there is no apt-get to install it with")
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", "systemd"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("installed the systemd package, but systemd-analyze is still missing")
	}
	return p
}

// built is the directory of the three binaries, built once per test
// binary (binaries); TestMain removes it.
var built struct {
	once sync.Once
	dir  string
	err  error
}

// binaries returns the directory holding the three binaries (nanokms,
// nanokms-cold, nanokms-dev), built from this tree in one go build the
// first time it is called: systemd-analyze verify checks that ExecStart
// names an executable, and the example configurations are checked with
// the binaries' own config check.
func binaries(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if built.dir, err = os.MkdirTemp("", "nanokms-deploy-bin-"); err != nil {
			built.err = err
			return
		}
		cmd := exec.Command(goTool, "build", "-o", built.dir+string(filepath.Separator),
			"github.com/nanokms/nanokms/cmd/nanokms", "github.com/nanokms/nanokms/cmd/nanokms-cold", "github.com/nanokms/nanokms/cmd/nanokms-dev")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// TestExamplesPassConfigCheck runs `config check` on every example
// configuration with each binary that ships its role: the signer's and
// the relay's with nanokms-cold and nanokms, the gateway's with nanokms
// (nanokms-cold, which links no gateway code, refuses the role: exit 2).
func TestExamplesPassConfigCheck(t *testing.T) {
	bin := binaries(t)
	for _, c := range []struct{ binary, role string }{
		{"nanokms-cold", "signer"}, {"nanokms-cold", "relay"},
		{"nanokms", "signer"}, {"nanokms", "relay"}, {"nanokms", "gateway"},
	} {
		t.Run(c.binary+"/"+c.role, func(t *testing.T) {
			file := filepath.Join("config", c.role+".toml")
			cmd := exec.Command(filepath.Join(bin, c.binary), "config", "check", c.role, file)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s config check %s %s: %v\n%s%s", c.binary, c.role, file, err, stdout.String(), stderr.String())
			}
			if got, want := stdout.String(), file+": ok\n"; got != want || stderr.Len() != 0 {
				t.Errorf("stdout %q, stderr %q; want stdout %q and nothing on stderr", got, stderr.String(), want)
			}
		})
	}
	cmd := exec.Command(filepath.Join(bin, "nanokms-cold"), "config", "check", "gateway", filepath.Join("config", "gateway.toml"))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("nanokms-cold config check gateway: %v, want exit status 2\n%s", err, out)
	}
}

// TestSystemdAnalyzeVerify runs systemd-analyze verify on every unit, and
// again with the serial drop-in on the relay and the gateway. Units are
// copied with ExecStart pointing at the freshly built binaries. Any
// diagnostic about them fails the test: verify reports unknown or invalid
// settings as warnings ("ignoring") and still exits 0, so its output is
// read at the warning level, not only its status.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze := ensureSystemdAnalyze(t)
	tmp := t.TempDir()
	binDir := binaries(t)

	copyUnits := func(t *testing.T, dir string) []string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var paths []string
		names := []string{nodeUnitName}
		for _, r := range roles {
			names = append(names, "nanokms-"+r+".service")
		}
		for _, j := range jobs {
			names = append(names, j+".service", j+".timer")
		}
		for _, name := range names {
			data, err := os.ReadFile(filepath.Join("systemd", name))
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(name, ".timer") {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
				paths = append(paths, p)
				continue
			}
			// Each unit runs the binary of its role. The Nano node is not
			// installed here: verify needs an executable, and never runs
			// it, so its unit gets nanokms.
			exe, built := "/usr/bin/nano_node", "nanokms"
			if slices.Contains(jobs, strings.TrimSuffix(name, ".service")) {
				exe, built = "/usr/bin/nanokms-cold", "nanokms-cold"
			} else if name != nodeUnitName {
				r := strings.TrimSuffix(strings.TrimPrefix(name, "nanokms-"), ".service")
				exe, built = "/usr/bin/"+binaryOf[r], binaryOf[r]
			}
			if !bytes.Contains(data, []byte("ExecStart="+exe+" ")) {
				t.Fatalf("%s: no ExecStart=%s", name, exe)
			}
			data = bytes.ReplaceAll(data, []byte("ExecStart="+exe+" "), []byte("ExecStart="+filepath.Join(binDir, built)+" "))
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		return paths
	}
	verify := func(t *testing.T, dir string, paths []string) {
		t.Helper()
		cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, paths...)...)
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=warning", "SYSTEMD_LOG_COLOR=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze verify: %v", err)
		}
		for line := range strings.Lines(string(out)) {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			if strings.Contains(line, dir) || strings.Contains(line, "nanokms") {
				t.Errorf("systemd-analyze verify: %s", line)
			} else {
				t.Logf("systemd-analyze verify (about the host, not these units): %s", line)
			}
		}
	}

	t.Run("units", func(t *testing.T) {
		dir := filepath.Join(tmp, "plain")
		verify(t, dir, copyUnits(t, dir))
	})
	t.Run("node IPC drop-in", func(t *testing.T) {
		dir := filepath.Join(tmp, "node-ipc")
		paths := copyUnits(t, dir)
		dropIn, err := os.ReadFile(filepath.Join("systemd", "node-ipc.conf"))
		if err != nil {
			t.Fatal(err)
		}
		d := filepath.Join(dir, "nanokms-gateway.service.d")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "node-ipc.conf"), dropIn, 0o644); err != nil {
			t.Fatal(err)
		}
		verify(t, dir, paths)
	})
	t.Run("serial drop-in", func(t *testing.T) {
		dir := filepath.Join(tmp, "serial")
		paths := copyUnits(t, dir)
		dropIn, err := os.ReadFile(filepath.Join("systemd", "serial-bridge.conf"))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []string{"relay", "gateway"} {
			d := filepath.Join(dir, "nanokms-"+r+".service.d")
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "serial-bridge.conf"), dropIn, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		verify(t, dir, paths)
		// The drop-in was read (verify reads drop-ins beside the unit):
		// a broken copy of it must be reported.
		broken := append(slices.Clone(dropIn), []byte("NoSuchSetting=1\n")...)
		if err := os.WriteFile(filepath.Join(dir, "nanokms-relay.service.d", "serial-bridge.conf"), broken, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(analyze, "verify", "--man=no", filepath.Join(dir, "nanokms-relay.service"))
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=warning", "SYSTEMD_LOG_COLOR=0")
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), "NoSuchSetting") {
			t.Errorf("systemd-analyze verify did not read the drop-in (a broken one passed):\n%s", out)
		}
	})
}
