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
# shellcheck source=scripts/demo-lib.sh
source "$(dirname "$0")/demo-lib.sh"
demo_begin demo

step "1. SoftHSM token, master key, wallet (nanokms-cold), approver key (nanokms)"
demo_token

step "2. configuration for the signer, relay and gateway"
demo_cold_configs
echo "signer.toml, relay.toml written; the 'USB stick' is $work/usb"

step "3. dev node (nanokms-dev), funding the custody account with 25 XNO from the dev genesis"
demo_devnode 100ms
demo_gateway_config "$work/gateway.toml" "state = \"$work/gateway.db\""

step "4. cold side (nanokms-cold): signer (on the token) and relay; the signer adopts the custody account"
demo_cold_start

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
