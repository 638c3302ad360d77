#!/usr/bin/env bash
# The main job, end to end on embedded defaults: a SoftHSM token with a
# master key and a wallet, the dev node, the signer, the cold relay and the
# hot gateway as separate processes joined by a file bridge in a temporary
# directory. It funds a custody account from the dev genesis, lets
# auto-receive pick it up, submits an approved withdrawal through the
# gateway's gRPC API, shows each step as it happens, then shows an attack
# being refused. It exits 0 only if every step held, and stops every process
# it started.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each role runs from the binary it ships in: the operator's nanokms (the
# gateway, its client, the approver), nanokms-cold (the isolated host: the
# token ceremony, the signer, the relay, audit and bridge inspection) and
# nanokms-dev (the dev node).
bin=$PWD/bin/nanokms
cold=$PWD/bin/nanokms-cold
dev=$PWD/bin/nanokms-dev
for b in "$bin" "$cold" "$dev"; do
	[ -x "$b" ] || { echo "nanokms: error: $b is missing" >&2; echo "hint: run 'make demo', which builds it" >&2; exit 1; }
done
module=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so; do
	[ -f "$m" ] && module=$m && break
done
[ -n "$module" ] || { echo "nanokms: error: SoftHSM is not installed" >&2; echo "hint: run 'make demo' (scripts/deps.sh installs it)" >&2; exit 1; }

work=$(mktemp -d /tmp/nanokms-demo.XXXXXX)
pids=()
cleanup() {
	local code=$?
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
trap cleanup EXIT
trap 'exit 130' INT TERM

bold=$'\033[1m' dim=$'\033[2m' off=$'\033[0m'
[ -t 1 ] || { bold= dim= off=; }
t0=$EPOCHREALTIME
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

step "1. SoftHSM token, master key, wallet (nanokms-cold), approver key (nanokms)"
export SOFTHSM2_CONF=$work/softhsm2.conf
mkdir -p "$work/tokens" "$work/usb"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" >"$SOFTHSM2_CONF"
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

step "2. configuration for the signer, relay and gateway"
cat >"$work/signer.toml" <<EOF
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
EOF
cat >"$work/relay.toml" <<EOF
[relay]
signer = "unix://$work/signer.sock"
retry_min = "100ms"
retry_max = "2s"

[bridge]
kind = "file"
inbound = "$work/usb/to-cold"
outbound = "$work/usb/to-hot"
poll_interval = "50ms"
EOF
echo "signer.toml, relay.toml written; the 'USB stick' is $work/usb"

step "3. dev node (nanokms-dev), funding the custody account with 25 XNO from the dev genesis"
"$dev" devnode --listen "" --ipc "unix://$work/node.sock" --ws 127.0.0.1:0 --fund "$custody=25XNO" --confirm-delay 100ms 2>"$work/devnode.log" &
pids+=($!)
wait_for "the dev node" grep -q '"devnode serving"' "$work/devnode.log"
ws=$(sed -n 's/.*"ws":"\(ws:[^"]*\)".*/\1/p' "$work/devnode.log" | head -n 1)
fund_hash=$(sed -n 's/.*"msg":"funded".*"send":"\([0-9A-F]*\)".*/\1/p' "$work/devnode.log" | head -n 1)
[ -n "$ws" ] && [ -n "$fund_hash" ] || fail "could not read the dev node's log"
echo "genesis sent 25 XNO to the custody account: send block $fund_hash"
cat >"$work/gateway.toml" <<EOF
[gateway]
state = "$work/gateway.db"
listen = "unix://$work/gateway.sock"
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
EOF

step "4. cold side (nanokms-cold): signer (on the token) and relay; the signer adopts the custody account"
"$cold" signer --config "$work/signer.toml" 2>"$work/signer.log" &
pids+=($!)
wait_for "the signer" nkc signer accounts --connect "unix://$work/signer.sock"
nkc signer adopt --connect "unix://$work/signer.sock" --wallet treasury --index 0
"$cold" relay --config "$work/relay.toml" 2>"$work/relay.log" &
pids+=($!)

step "5. hot side (nanokms): gateway (Custody gRPC API, bridge, node)"
"$bin" gateway --config "$work/gateway.toml" 2>"$work/gateway.log" &
pids+=($!)
export NANOKMS_GATEWAY=unix://$work/gateway.sock
wait_for "the gateway" nk client accounts
nk client accounts

step "6. auto-receive: the gateway saw the send and queued a receive; watching it"
t_recv=$EPOCHREALTIME
receive_id=ar-${fund_hash:0:56}-1
wait_for "the auto-receive request" nk client watch "$receive_id" --timeout 1s
nk client watch "$receive_id" --json --timeout 2m >"$work/receive.json"
[ "$(field "$work/receive.json" status)" = confirmed ] || fail "the receive is $(field "$work/receive.json" status)"
receive_time=$(elapsed "$t_recv")
receive_hash=$(field "$work/receive.json" hash)

step "7. withdrawal: 3 XNO to a customer, approved by 'service', submitted over gRPC"
t_send=$EPOCHREALTIME
nk client intent --kind send --account "$custody" --amount "3 XNO" --destination "$dest" --id wd-0001 >"$work/intent.json"
nk approve --key-file "$work/service.pem" "$work/intent.json" >"$work/approval.json"
nk client submit --intent "$work/intent.json" --approval "$work/approval.json" --wait --json --block-out "$work/head.json" >"$work/send.json"
[ "$(field "$work/send.json" status)" = confirmed ] || fail "the withdrawal is $(field "$work/send.json" status)"
send_time=$(elapsed "$t_send")
send_hash=$(field "$work/send.json" hash)

step "8. what crossed the bridge (as the operator carrying the stick sees it)"
nkc bridge inspect "$work/usb/to-cold"
nkc bridge inspect "$work/usb/to-hot"

step "9. attack: the hot side lies about the head's balance (claims 1000 XNO)"
sed 's/"balance": "[0-9]*"/"balance": "1000000000000000000000000000000000"/' "$work/head.json" >"$work/tampered_head.json"
nk client intent --kind send --account "$custody" --amount "5 XNO" --destination "$dest" --id wd-0002 >"$work/intent2.json"
nk approve --key-file "$work/service.pem" "$work/intent2.json" >"$work/approval2.json"
if nk client submit --intent "$work/intent2.json" --approval "$work/approval2.json" --head "$work/tampered_head.json" --wait --json >"$work/attack.json"; then
	fail "the tampered request was signed"
fi
attack_reason=$(field "$work/attack.json" refusal_reason)
[ "$(field "$work/attack.json" status)" = refused ] && [ -n "$attack_reason" ] || fail "the tampered request was not refused"
echo "refused by the cold signer: $attack_reason"

step "10. the signer's audit chain"
nkc audit verify --connect "unix://$work/signer.sock"
nkc signer accounts --connect "unix://$work/signer.sock"

printf '\n%sSummary%s\n' "$bold" "$off"
printf '%-22s %-10s %-66s %s\n' STEP AMOUNT "BLOCK HASH" SECONDS
printf '%-22s %-10s %-66s %s\n' "fund (dev genesis)" "25 XNO" "$fund_hash" "-"
printf '%-22s %-10s %-66s %s\n' "auto-receive (open)" "25 XNO" "$receive_hash" "$receive_time"
printf '%-22s %-10s %-66s %s\n' "withdrawal (send)" "3 XNO" "$send_hash" "$send_time"
printf '%-22s %-10s %-66s %s\n' "tampered head" "5 XNO" "refused: $attack_reason" "-"
printf '\n%sdemo: all steps held%s (%ss in all)\n' "$bold" "$off" "$(elapsed "$t0")"
