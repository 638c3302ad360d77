# The parts the demos share (sourced by demo.sh and demo-ha.sh): the
# binaries, the work directory and the clean-up that stops every process
# started (its pid in pids) and removes the directory, the step banners and
# waits, the SoftHSM token with a master key, a wallet and an approver key,
# the signer's and the relay's configuration, the dev node funding the
# custody account, and the cold side started. Each function fails the demo
# (exit 1, the last lines of every log shown) when its step does not hold.

# demo_begin NAME sets bin, cold, dev, module and work (a new directory
# /tmp/nanokms-NAME.XXXXXX), and traps the exit to clean up.
demo_begin() {
	cd "$(dirname "${BASH_SOURCE[0]}")/.."
	# Each role runs from the binary it ships in: the operator's nanokms (the
	# gateway, its client, the approver), nanokms-cold (the isolated host: the
	# token ceremony, the signer, the relay, audit and bridge inspection) and
	# nanokms-dev (the dev node, the throw-away database).
	bin=$PWD/bin/nanokms
	cold=$PWD/bin/nanokms-cold
	dev=$PWD/bin/nanokms-dev
	local b m
	for b in "$bin" "$cold" "$dev"; do
		[ -x "$b" ] || { echo "nanokms: error: $b is missing" >&2; echo "hint: run 'make $1', which builds it" >&2; exit 1; }
	done
	module=""
	for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so; do
		[ -f "$m" ] && module=$m && break
	done
	[ -n "$module" ] || { echo "nanokms: error: SoftHSM is not installed" >&2; echo "hint: run 'make $1' (scripts/deps.sh installs it)" >&2; exit 1; }
	work=$(mktemp -d "/tmp/nanokms-$1.XXXXXX")
	pids=()
	trap demo_cleanup EXIT
	trap 'exit 130' INT TERM
	bold=$'\033[1m' dim=$'\033[2m' off=$'\033[0m'
	[ -t 1 ] || { bold= dim= off=; }
	t0=$EPOCHREALTIME
}

demo_cleanup() {
	local code=$? p l
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "$code" -ne 0 ]; then
		echo >&2
		echo "demo: FAILED (exit $code); the last lines of each log:" >&2
		for l in "$work"/*.log; do [ -f "$l" ] && { echo "--- $(basename "$l")" >&2; tail -n 5 "$l" >&2; }; done
	fi
	rm -rf "$work"
	exit "$code"
}

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
step() { printf '\n%s== %s%s %s(%ss)%s\n' "$bold" "$*" "$off" "$dim" "$(elapsed "$t0")" "$off"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }
nk() { "$bin" "$@"; }
nkc() { "$cold" "$@"; }
# field FILE KEY prints the first "KEY": "value" of a JSON file.
field() { sed -n "s/^ *\"$2\": \"\\([^\"]*\\)\".*/\\1/p" "$1" | head -n 1; }
# wait_for DESC CMD...: retry CMD (quietly) until it succeeds, for up to 60 s.
wait_for() {
	local desc=$1; shift
	for _ in $(seq 1 300); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	fail "timed out waiting for $desc"
}

# demo_token makes the SoftHSM token, its master key, the wallet treasury
# and its manifest, and the approver key 'service'; it sets custody,
# service_pub, dest (a customer's address) and rep (a representative).
demo_token() {
	export SOFTHSM2_CONF=$work/softhsm2.conf
	mkdir -p "$work/tokens" "$work/usb"
	printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" >"$SOFTHSM2_CONF"
	local pin so_pin
	pin=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
	so_pin=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
	(umask 077 && printf '%s\n' "$pin" >"$work/pin")
	# softhsm2-util takes PINs only on its command line: acceptable for this
	# throw-away demo token, never for a real one (see docs/KEYS.md).
	softhsm2-util --init-token --free --label nanokms-demo --so-pin "$so_pin" --pin "$pin" >/dev/null
	unset pin so_pin
	export NANOKMS_PKCS11_MODULE=$module NANOKMS_TOKEN=nanokms-demo
	nkc token init --pin-file "$work/pin"
	nkc wallet create treasury --pin-file "$work/pin"
	nkc account list --wallet treasury --count 1 --json --pin-file "$work/pin" >"$work/manifest.json"
	custody=$(field "$work/manifest.json" account)
	echo "custody account: $custody"
	service_pub=$(nk approver keygen --out "$work/service.pem")
	echo "approver 'service': $service_pub"
	# A customer's address to withdraw to, and a representative.
	dest=$(echo 3239EDC57766CE3EAA8CD6E5CE8D0636DB391B743C0E1042758B60EA4FB6E7BB | nk account derive --seed-file - --index 0 --json | sed -n 's/.*"account": "\(.*\)".*/\1/p')
	rep=nano_3i1aq1cchnmbn9x5rsbap8b15akfh7wj7pwskuzi7ahz8oq6cobd99d4r3b7
}

# demo_cold_configs writes signer.toml and relay.toml (the bridge in
# $work/usb, "the USB stick").
demo_cold_configs() {
	cat >"$work/signer.toml" <<EOT
[signer]
state = "$work/signer.db"
listen = "unix://$work/signer.sock"
max_intent_ttl = "24h"

[token]
module = "$module"
label = "nanokms-demo"
pin_file = "$work/pin"

[[approvers]]
name = "service"
public_key = "$service_pub"

[[groups]]
name = "treasury"
wallets = ["treasury"]
max_send = "10 XNO"
velocity_24h = "20 XNO"
receive_automatic = true
[[groups.tiers]]
quorum = 1
approvers = ["service"]
EOT
	cat >"$work/relay.toml" <<EOT
[relay]
signer = "unix://$work/signer.sock"
retry_min = "100ms"
retry_max = "2s"

[bridge]
kind = "file"
inbound = "$work/usb/to-cold"
outbound = "$work/usb/to-hot"
poll_interval = "50ms"
EOT
}

# demo_devnode starts the dev node, funding the custody account with 25 XNO
# from the dev genesis after confirm delay $1; it sets ws (its WebSocket)
# and fund_hash (the genesis's send).
demo_devnode() {
	"$dev" devnode --listen "" --ipc "unix://$work/node.sock" --ws 127.0.0.1:0 --fund "$custody=25XNO" --confirm-delay "$1" 2>"$work/devnode.log" &
	pids+=($!)
	wait_for "the dev node" grep -q '"devnode serving"' "$work/devnode.log"
	ws=$(sed -n 's/.*"ws":"\(ws:[^"]*\)".*/\1/p' "$work/devnode.log" | head -n 1)
	fund_hash=$(sed -n 's/.*"msg":"funded".*"send":"\([0-9A-F]*\)".*/\1/p' "$work/devnode.log" | head -n 1)
	[ -n "$ws" ] && [ -n "$fund_hash" ] || fail "could not read the dev node's log"
	echo "genesis sent 25 XNO to the custody account: send block $fund_hash"
}

# demo_cold_start starts the signer on the token, adopts the custody
# account and starts the relay.
demo_cold_start() {
	"$cold" signer --config "$work/signer.toml" 2>"$work/signer.log" &
	pids+=($!)
	wait_for "the signer" nkc signer accounts --connect "unix://$work/signer.sock"
	nkc signer adopt --connect "unix://$work/signer.sock" --wallet treasury --index 0
	"$cold" relay --config "$work/relay.toml" 2>"$work/relay.log" &
	pids+=($!)
}

# demo_gateway_config FILE STATE writes a gateway configuration to FILE:
# [gateway] with the key line STATE (such as state = "…"; "" when the
# caller appends [gateway.postgres]), listening on $work/NAME.sock (NAME:
# FILE's base name without .toml), the bridge in $work/usb and the dev
# node with auto-receive. Sections may be appended to FILE (TOML takes a
# table anywhere after its parent).
demo_gateway_config() {
	local name
	name=$(basename "$1" .toml)
	cat >"$1" <<EOT
[gateway]
$2
listen = "unix://$work/$name.sock"
manifests = ["$work/manifest.json"]
resend_interval = "5s"

[bridge]
kind = "file"
inbound = "$work/usb/to-hot"
outbound = "$work/usb/to-cold"
poll_interval = "50ms"

[node]
rpc = "ipc+unix://$work/node.sock"
websocket = "$ws"
work = "cpu"
work_threshold = "ff00000000000000"
auto_receive = true
representative = "$rep"
EOT
}
