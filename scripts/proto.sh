#!/usr/bin/env bash
# Regenerates the Go code for proto/**/*.proto with pinned plugin versions.
# The generated code is committed; run this after changing a .proto file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH

PROTOC_GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC=google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
GOBIN=$tools go install "$PROTOC_GEN_GO"
GOBIN=$tools go install "$PROTOC_GEN_GO_GRPC"

mapfile -t files < <(find proto -name '*.proto' 2>/dev/null | sort)
if ((${#files[@]} == 0)); then
	echo "nanokms: no .proto files yet" >&2
	exit 0
fi
PATH=$tools:$PATH protoc -I proto \
	--go_out=. --go_opt=module=github.com/nanokms/nanokms \
	--go-grpc_out=. --go-grpc_opt=module=github.com/nanokms/nanokms \
	"${files[@]}"
