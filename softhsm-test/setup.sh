#!/usr/bin/env bash
# setup.sh — a throw-away SoftHSM token directory for nanokms.
#
# Usage:  eval "$(softhsm-test/setup.sh [-d DIR] [-l LABEL])"
#
# Installs softhsm2 with apt-get when softhsm2-util is missing (as root; runs
# apt-get update first), creates DIR (default: a new temporary directory)
# with DIR/softhsm2.conf and DIR/tokens, and, with -l, initialises a token
# LABEL whose user PIN is written to DIR/pin (mode 0600) so that nanokms can
# read it with a PIN file. Messages go to stderr; stdout carries only the
# export lines, so the output can be eval'ed:
#
#   export SOFTHSM2_CONF=DIR/softhsm2.conf
#   export NANOKMS_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so
#   export NANOKMS_TOKEN_LABEL=LABEL NANOKMS_PIN_FILE=DIR/pin   (with -l)
#
# The Go tests do not need this script: softhsm-test/softhsmtest sets up its
# own directory per test binary.
set -euo pipefail

dir=""
label=""
while getopts "d:l:h" opt; do
	case "$opt" in
	d) dir=$OPTARG ;;
	l) label=$OPTARG ;;
	h)
		sed -n '2,21p' "$0" >&2
		exit 0
		;;
	*) exit 2 ;;
	esac
done

say() { printf 'setup.sh: %s\n' "$*" >&2; }

if ! command -v softhsm2-util >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		say "error: softhsm2 is not installed and this is not root; run: sudo apt-get install softhsm2"
		exit 1
	fi
	say "installing softhsm2"
	apt-get update >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends softhsm2 >&2
fi

module=""
for c in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
	/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
	if [ -f "$c" ]; then
		module=$c
		break
	fi
done
if [ -z "$module" ] && command -v dpkg >/dev/null 2>&1; then
	module=$(dpkg -L softhsm2 libsofthsm2 2>/dev/null | grep '/libsofthsm2\.so$' | head -n1 || true)
fi
if [ -z "$module" ]; then
	say "error: libsofthsm2.so not found"
	exit 1
fi

if [ -z "$dir" ]; then
	dir=$(mktemp -d "${TMPDIR:-/tmp}/nanokms-softhsm-XXXXXX")
fi
mkdir -p "$dir/tokens"
chmod 700 "$dir" "$dir/tokens"
dir=$(cd "$dir" && pwd)
conf="$dir/softhsm2.conf"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir/tokens" >"$conf"
export SOFTHSM2_CONF=$conf
say "token directory $dir/tokens"

printf 'export SOFTHSM2_CONF=%q\n' "$conf"
printf 'export NANOKMS_PKCS11_MODULE=%q\n' "$module"

if [ -n "$label" ]; then
	pin=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
	so_pin=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
	(umask 077 && printf '%s\n' "$pin" >"$dir/pin" && printf '%s\n' "$so_pin" >"$dir/so-pin")
	# softhsm2-util takes PINs as arguments; acceptable for a throw-away test
	# token only. nanokms itself never takes a PIN from argv.
	softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$pin" >&2
	printf 'export NANOKMS_TOKEN_LABEL=%q\n' "$label"
	printf 'export NANOKMS_PIN_FILE=%q\n' "$dir/pin"
fi
