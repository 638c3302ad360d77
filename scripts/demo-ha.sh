#!/usr/bin/env bash
# The failover demo: the cold side and the dev node as in demo.sh, and two
# hot gateways sharing one throw-away PostgreSQL database (nanokms-dev
# postgres) and one file bridge, one of them elected to drive the bridge
# ([gateway.leader], docs/HA.md). A withdrawal is submitted, the leading
# gateway is SIGKILLed before it confirms, the other gateway takes the
# bridge under a higher epoch and the withdrawal confirms, watched through
# the surviving gateway. It exits 0 only if it did, and stops every process
# it started and the database.
set -euo pipefail
# shellcheck source=scripts/demo-lib.sh
source "$(dirname "$0")/demo-lib.sh"
demo_begin demo-ha

step "1. SoftHSM token, master key, wallet (nanokms-cold), approver key (nanokms)"
demo_token

step "2. a throw-away PostgreSQL (nanokms-dev postgres) for the gateways' state"
# The server runs as an unprivileged user, who must reach its directory:
# that one is its own, apart from the token and the PIN in $work.
pgdir=$work/pg
mkdir -m 0755 "$pgdir"
chmod 0711 "$work"
"$dev" postgres --dir "$pgdir" --dsn-out "$work/gateway.dsn" 2>"$work/postgres.log" &
pids+=($!)
wait_for "PostgreSQL" grep -q '"postgres serving"' "$work/postgres.log"
echo "PostgreSQL 15 serving on a Unix socket under $pgdir; its connection string is in $work/gateway.dsn"

step "3. dev node (funding the custody account), signer and relay, as in make demo"
demo_cold_configs
# Confirmation takes 3 s on the dev node: long enough that the leader is
# killed while the withdrawal is on its way.
demo_devnode 3s
demo_cold_start

step "4. two gateways on the database, one bridge: gw-a and gw-b elect a leader"
for g in gw-a gw-b; do
	demo_gateway_config "$work/$g.toml" ""
	cat >>"$work/$g.toml" <<EOT

[gateway.postgres]
dsn_file = "$work/gateway.dsn"

[gateway.leader]
medium = "demo-usb"
holder = "$g"
check_interval = "200ms"
EOT
done
declare -A gw_pid
for g in gw-a gw-b; do
	"$bin" gateway --config "$work/$g.toml" 2>"$work/$g.log" &
	gw_pid[$g]=$!
	pids+=($!)
done
for g in gw-a gw-b; do
	NANOKMS_GATEWAY=unix://$work/$g.sock wait_for "gateway $g" nk client accounts
done
# leader_of LOG prints the epoch of the last term LOG's gateway began.
leader_epoch() { sed -n 's/.*"msg":"leading the medium".*"epoch":\([0-9]*\).*/\1/p' "$1" | tail -n 1; }
wait_for "a leader" bash -c "grep -q '\"leading the medium\"' '$work/gw-a.log' '$work/gw-b.log'"
if grep -q '"leading the medium"' "$work/gw-a.log"; then leader=gw-a other=gw-b; else leader=gw-b other=gw-a; fi
epoch=$(leader_epoch "$work/$leader.log")
echo "$leader leads the bridge (epoch $epoch); $other serves the Custody API and waits"
grep -q '"leading the medium"' "$work/$other.log" && fail "both gateways lead"

step "5. auto-receive of the funding, watched through $other (the gateway not leading)"
export NANOKMS_GATEWAY=unix://$work/$other.sock
receive_id=ar-${fund_hash:0:56}-1
wait_for "the auto-receive request" nk client watch "$receive_id" --timeout 1s
nk client watch "$receive_id" --json --timeout 2m >"$work/receive.json"
[ "$(field "$work/receive.json" status)" = confirmed ] || fail "the receive is $(field "$work/receive.json" status)"
echo "the receive confirmed: $(field "$work/receive.json" hash)"

step "6. withdrawal: 3 XNO to a customer, submitted through $leader"
nk client intent --kind send --account "$custody" --amount "3 XNO" --destination "$dest" --id wd-ha-0001 >"$work/intent.json"
nk approve --key-file "$work/service.pem" "$work/intent.json" >"$work/approval.json"
NANOKMS_GATEWAY=unix://$work/$leader.sock nk client submit --intent "$work/intent.json" --approval "$work/approval.json" --json >"$work/submitted.json"
echo "queued: $(field "$work/submitted.json" status)"
# Kill the leader once the withdrawal is on its way: signed by the cold
# side, its block going to the node, not yet confirmed (the dev node takes
# 3 s).
wait_for "the withdrawal to be signed" grep -q '"msg":"signed","request_id":"wd-ha-0001"' "$work/$leader.log"
NANOKMS_GATEWAY=unix://$work/$other.sock nk client requests --json >"$work/before-kill.json"
# The status is the line after the request id (client requests --json).
before=$(grep -A1 '"request_id": "wd-ha-0001"' "$work/before-kill.json" | sed -n 's/.*"status": "\([a-z_]*\)".*/\1/p')
[ "$before" != confirmed ] || fail "the withdrawal confirmed before the leader could be killed"
t_kill=$EPOCHREALTIME
kill -KILL "${gw_pid[$leader]}"
wait "${gw_pid[$leader]}" 2>/dev/null || true
echo "SIGKILLed $leader: the withdrawal was $before, not yet confirmed"

step "7. $other takes the bridge; the withdrawal confirms"
wait_for "$other to lead" grep -q '"leading the medium"' "$work/$other.log"
new_epoch=$(leader_epoch "$work/$other.log")
takeover=$(elapsed "$t_kill")
[ -n "$new_epoch" ] && [ "$new_epoch" -gt "$epoch" ] || fail "$other leads at epoch '$new_epoch', not above $epoch"
echo "$other leads the bridge (epoch $new_epoch) ${takeover}s after the kill"
nk client watch wd-ha-0001 --json --timeout 2m >"$work/send.json"
[ "$(field "$work/send.json" status)" = confirmed ] || fail "the withdrawal is $(field "$work/send.json" status)"
send_hash=$(field "$work/send.json" hash)
echo "confirmed: $send_hash"

step "8. the signer's audit chain and the account"
nkc audit verify --connect "unix://$work/signer.sock"
nkc signer accounts --connect "unix://$work/signer.sock"

printf '\n%sSummary%s\n' "$bold" "$off"
printf '%-30s %s\n' "leader before the kill" "$leader (epoch $epoch)"
printf '%-30s %s\n' "leader after the kill" "$other (epoch $new_epoch), ${takeover}s later"
printf '%-30s %s\n' "withdrawal wd-ha-0001" "confirmed, block $send_hash"
printf '\n%sdemo-ha: the withdrawal confirmed through the failover%s (%ss in all)\n' "$bold" "$off" "$(elapsed "$t0")"
