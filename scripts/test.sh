#!/usr/bin/env bash
# Runs every check and test of nanokms: gofmt, go vet, the whole test suite
# under the race detector (SoftHSM tokens and PostgreSQL servers are
# created by the tests themselves), and a short run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
	echo "nanokms: error: gofmt would change these files:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== go vet"
go vet ./...

echo "== CGO_ENABLED=0 build of the packages that must not need cgo (only hsm/ may)"
CGO_ENABLED=0 go build ./nano/... ./intent/... ./bridge/... ./relay/... ./gateway/... ./node/... ./devnode/... ./signer/ ./signer/policy/ ./internal/... ./metrics/

echo "== test-support packages are imported by tests only"
# Test-support packages may import each other, never be imported by the rest.
support="internal/pgtest internal/killtest internal/health/healthtest signer/custodytest signer/signertest"
deps=$(go list -f '{{.ImportPath}}: {{join .Deps " "}}' ./... | grep -vE "^[^:]*/($(echo $support | tr ' ' '|')):" || true)
for pkg in $support; do
	bad=$(echo "$deps" | grep -E " [^ ]*/$pkg( |\$)" | cut -d: -f1 || true)
	if [ -n "$bad" ]; then
		echo "nanokms: error: these packages import $pkg outside their tests:" >&2
		echo "$bad" >&2
		exit 1
	fi
done

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== CGO_ENABLED=0: the PIN tests of hsm (the environment block is cleared in both builds)"
CGO_ENABLED=0 go test -count=1 -run 'PIN' ./hsm/

echo "== fuzz (short: each target its execution count in scripts/fuzz.sh)"
FUZZSCALE=1 bash scripts/fuzz.sh
