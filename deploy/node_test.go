package deploy

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/nanokms/nanokms/gateway"
)

const nodeUnitName = "nano-node.service"

// nodeConfigs reads the Nano node's example config-node.toml and
// config-rpc.toml.
func nodeConfigs(t *testing.T) (node, rpc map[string]any) {
	t.Helper()
	for _, c := range []struct {
		file string
		into *map[string]any
	}{{"config-node.toml", &node}, {"config-rpc.toml", &rpc}} {
		if _, err := toml.DecodeFile(filepath.Join("config", "nano-node", c.file), c.into); err != nil {
			t.Fatalf("config/nano-node/%s: %v", c.file, err)
		}
	}
	return node, rpc
}

// tomlGet returns the value at a dotted path of a decoded TOML document.
func tomlGet(t *testing.T, doc map[string]any, path string) any {
	t.Helper()
	var v any = doc
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: %v is not a table", path, v)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("%s is not set", path)
		}
	}
	return v
}

// TestNodeUnit checks the Nano node's unit: the node documentation's
// "Running Nano as a service" (nano_node --daemon with a data path, the
// open files limit its known issue needs), the hardening of the other
// units, a user of its own, and its order before the gateway.
func TestNodeUnit(t *testing.T) {
	n := parseUnit(t, filepath.Join("systemd", nodeUnitName))
	g := parseUnit(t, filepath.Join("systemd", "nanokms-gateway.service"))

	const dataPath = "/var/lib/nano-node"
	if got, want := n.get("ExecStart"), "/usr/bin/nano_node --daemon --data_path "+dataPath; got != want {
		t.Errorf("ExecStart=%s, want %s", got, want)
	}
	if !n.writable(dataPath) || n.get("StateDirectoryMode") != "0700" {
		t.Errorf("the data path %s is not the unit's private StateDirectory (StateDirectory=%v, mode %s)",
			dataPath, n.words("StateDirectory"), n.get("StateDirectoryMode"))
	}
	// The node's own user, not nanokms: the node talks to the network's
	// peers, and must not reach the gateway's state.
	checkHardening(t, "nano-node", n, map[string]string{"User": "nano-node", "Group": "nano-node", "LimitNOFILE": "65535", "LimitCORE": "0"})
	users, err := os.ReadFile(filepath.Join("sysusers.d", "nano-node.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(strings.Split(string(users), "\n"), func(l string) bool {
		f := strings.Fields(l)
		return len(f) >= 2 && f[0] == "u" && f[1] == n.get("User")
	}) {
		t.Errorf("sysusers.d/nano-node.conf does not create the user %s", n.get("User"))
	}
	if n.get("PrivateNetwork") == "yes" || !slices.Contains(n.words("RestrictAddressFamilies"), "AF_INET") || !slices.Contains(n.words("RestrictAddressFamilies"), "AF_INET6") {
		t.Error("the node cannot reach its peers")
	}
	if !slices.Contains(n["Unit"]["Before"], "nanokms-gateway.service") {
		t.Errorf("the node is not ordered before the gateway: Before=%v", n["Unit"]["Before"])
	}
	for _, key := range []string{"After", "Wants"} {
		if !slices.Contains(strings.Fields(strings.Join(g["Unit"][key], " ")), nodeUnitName) {
			t.Errorf("the gateway has no %s=%s: %v", key, nodeUnitName, g["Unit"][key])
		}
	}
	if stop := n.get("TimeoutStopSec"); stop == "" {
		t.Error("no TimeoutStopSec: the node needs time to close its ledger")
	}
}

// TestNodeConfigsMatchGateway checks the node's example configuration
// against the unit and the gateway's: the RPC in process and on loopback
// where the gateway's node.rpc points, the WebSocket where node.websocket
// points, IPC over TCP off (it listens on every interface), IPC over a
// Unix socket the gateway may reach with node-ipc.conf, the HTTP callback
// posted to the gateway's [node.callback] on loopback, and control calls
// only if the gateway asks the node for work.
func TestNodeConfigsMatchGateway(t *testing.T) {
	node, rpc := nodeConfigs(t)
	_, _, gc := loadConfigs(t)
	n := parseUnit(t, filepath.Join("systemd", nodeUnitName))

	for path, want := range map[string]any{
		"rpc.enable": true, "rpc.child_process.enable": false, "rpc.enable_sign_hash": false,
		"node.ipc.tcp.enable": false, "node.ipc.local.enable": true, "node.ipc.local.allow_unsafe": false,
		"node.websocket.enable": true,
	} {
		if got := tomlGet(t, node, path); got != want {
			t.Errorf("config-node.toml: %s = %v, want %v", path, got, want)
		}
	}

	// The RPC: loopback, where the gateway's node.rpc points.
	u, err := url.Parse(gc.Node.RPC)
	if err != nil || u.Scheme != "http" {
		t.Fatalf("config/gateway.toml: node.rpc %q is not an http:// URL: %v", gc.Node.RPC, err)
	}
	addr, _ := tomlGet(t, rpc, "address").(string)
	port, _ := tomlGet(t, rpc, "port").(int64)
	if ip := net.ParseIP(addr); ip == nil || !ip.IsLoopback() {
		t.Errorf("config-rpc.toml: address %q is not a loopback address", addr)
	}
	if want := net.JoinHostPort(addr, strconv.FormatInt(port, 10)); u.Host != want {
		t.Errorf("the gateway's node.rpc is %s, the node's RPC listens on %s", u.Host, want)
	}
	if control := tomlGet(t, rpc, "enable_control"); control != (gc.Node.Work == "node") {
		t.Errorf("config-rpc.toml: enable_control = %v with the gateway's node.work = %q (work_generate is a control call: needed for \"node\" only)", control, gc.Node.Work)
	}

	// The WebSocket, where the gateway's node.websocket points.
	w, err := url.Parse(gc.Node.WebSocket)
	if err != nil || w.Scheme != "ws" {
		t.Fatalf("config/gateway.toml: node.websocket %q is not a ws:// URL: %v", gc.Node.WebSocket, err)
	}
	wsAddr, _ := tomlGet(t, node, "node.websocket.address").(string)
	wsPort, _ := tomlGet(t, node, "node.websocket.port").(int64)
	if want := net.JoinHostPort(wsAddr, strconv.FormatInt(wsPort, 10)); w.Host != want {
		t.Errorf("the gateway's node.websocket is %s, the node's WebSocket listens on %s", w.Host, want)
	}

	// The HTTP callback: the node posts to the gateway's listener and
	// path, from loopback, which the gateway accepts by default.
	if gc.Node.Callback == nil {
		t.Fatal("config/gateway.toml has no [node.callback]")
	}
	cbAddr, _ := tomlGet(t, node, "node.httpcallback.address").(string)
	cbPort, _ := tomlGet(t, node, "node.httpcallback.port").(int64)
	if want := net.JoinHostPort(cbAddr, strconv.FormatInt(cbPort, 10)); gc.Node.Callback.Listen != want {
		t.Errorf("the node posts its callback to %s, the gateway's node.callback.listen is %s", want, gc.Node.Callback.Listen)
	}
	if target := tomlGet(t, node, "node.httpcallback.target"); target != gc.Node.Callback.Path {
		t.Errorf("the node posts to the path %v, the gateway's node.callback.path is %q", target, gc.Node.Callback.Path)
	}
	if ip := net.ParseIP(cbAddr); ip == nil || !ip.IsLoopback() || gc.Node.Callback.AllowedSources != nil {
		t.Errorf("the callback is not on loopback with the gateway's default allowed_sources: address %q, allowed_sources %q",
			cbAddr, gc.Node.Callback.AllowedSources)
	}

	// IPC over the Unix socket: in the node's RuntimeDirectory (the
	// default /tmp/nano is private to each unit), which the group may
	// enter, created group-writable (UMask), with the gateway in that
	// group by node-ipc.conf; and node.rpc = "ipc+unix://" + path parses.
	sock, _ := tomlGet(t, node, "node.ipc.local.path").(string)
	if !strings.HasPrefix(sock, "/run/") || !n.writable(sock) {
		t.Errorf("config-node.toml: node.ipc.local.path %q is not in the unit's RuntimeDirectory %v", sock, n.words("RuntimeDirectory"))
	}
	mode, err1 := strconv.ParseUint(n.get("RuntimeDirectoryMode"), 8, 32)
	umask, err2 := strconv.ParseUint(n.get("UMask"), 8, 32)
	if err1 != nil || err2 != nil || mode&0o050 != 0o050 || mode&0o007 != 0 || umask&0o060 != 0 || umask&0o007 != 0o007 {
		t.Errorf("RuntimeDirectoryMode=%s UMask=%s: the socket must be reachable by the group and nobody else",
			n.get("RuntimeDirectoryMode"), n.get("UMask"))
	}
	dropIn := parseUnit(t, filepath.Join("systemd", "node-ipc.conf"))
	if got := dropIn.get("SupplementaryGroups"); got != n.get("Group") {
		t.Errorf("node-ipc.conf: SupplementaryGroups=%s, the node's socket belongs to group %s", got, n.get("Group"))
	}
	data, err := os.ReadFile(filepath.Join("config", "gateway.toml"))
	if err != nil {
		t.Fatal(err)
	}
	old := `rpc = "` + gc.Node.RPC + `"`
	if !strings.Contains(string(data), old) {
		t.Fatalf("config/gateway.toml has no line %s", old)
	}
	ipc := "ipc+unix://" + sock
	if !strings.Contains(string(mustRead(t, filepath.Join("systemd", "node-ipc.conf"))), `rpc = "`+ipc+`"`) {
		t.Errorf("node-ipc.conf does not give node.rpc = %q", ipc)
	}
	withIPC, err := gateway.ParseConfig([]byte(strings.Replace(string(data), old, `rpc = "`+ipc+`"`, 1)))
	if err != nil {
		t.Fatalf("the gateway's configuration with node.rpc = %q: %v", ipc, err)
	}
	if withIPC.Node.RPC != ipc {
		t.Errorf("node.rpc = %q, want %q", withIPC.Node.RPC, ipc)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
