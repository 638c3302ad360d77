#!/usr/bin/env bash
# Installs what nanokms needs to build, test and run its demo on Debian 12,
# when it is missing: Go (checked, see below), SoftHSM2, OpenSC's
# pkcs11-tool, protoc, socat and PostgreSQL 15 (the tests start their own
# servers with it; internal/pgtest also installs it when missing). Safe to
# run again: it installs nothing that is already there.
set -euo pipefail

need=()
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
# The token suite's other two implementations (the tests install them too).
command -v pkcsslotd >/dev/null 2>&1 || need+=(opencryptoki)
command -v certutil >/dev/null 2>&1 || need+=(libnss3-tools)
command -v pkcs11-tool >/dev/null 2>&1 || need+=(opensc)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v socat >/dev/null 2>&1 || need+=(socat)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v git >/dev/null 2>&1 || need+=(git)

if ((${#need[@]})); then
	echo "nanokms: installing ${need[*]}" >&2
	if [ "$(id -u)" -ne 0 ]; then
		echo "nanokms: error: installing packages needs root" >&2
		echo "hint: run as root, or: sudo apt-get install -y ${need[*]}" >&2
		exit 1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Go: the module needs Go 1.26 or later (with cgo). Debian 12 ships 1.19,
# which is too old; the Go distribution at /usr/local/go is used when it is
# there and not on PATH.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH=/usr/local/go/bin:$PATH
fi
if ! command -v go >/dev/null 2>&1; then
	echo "nanokms: error: Go is not installed" >&2
	echo "hint: install Go 1.26 or later (https://go.dev/doc/install) so that 'go' is on PATH or in /usr/local/go" >&2
	exit 1
fi
minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [ "${minor:-0}" -lt 26 ]; then
	echo "nanokms: error: Go $(go env GOVERSION) is too old: nanokms needs Go 1.26 or later" >&2
	exit 1
fi
