#!/usr/bin/env bash
# Runs every fuzz target in the module for a number of executions.
#
#   bash scripts/fuzz.sh              each target its own short count (below)
#   FUZZSCALE=50 bash scripts/fuzz.sh each target 50 times its short count
#   FUZZTIME=200000x bash scripts/fuzz.sh
#                                     every target 200000 executions
#
# Counts, never durations: Go 1.26's fuzz coordinator can fail a run that
# ends on a -fuzztime duration with a bare "context deadline exceeded" and
# no failing input (golang/go#75804, fixed in Go 1.27); a count has no
# deadline to race. The short counts take one to three seconds of fuzzing
# each on two loaded cores, so the whole short run (`make test`) takes
# one to two minutes (126 s at a load average of 4-6).
#
# A failing input is written to the package's testdata/fuzz/<target>
# (commit it with the fix); the inputs the fuzzer finds interesting are
# kept in Go's cache (go env GOCACHE), not in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH

# short_count prints the short run's execution count for a target
# (package path relative to the module, and the target's name). A target
# not listed gets 2000.
short_count() {
	case "$1 $2" in
	"coldbridge FuzzParseConfigFiles") echo 8000 ;;
	"coldbridge FuzzDecodeFrame") echo 10000 ;;
	"coldbridge FuzzCOBS") echo 12000 ;;
	"coldbridge FuzzSerialStream") echo 12000 ;;
	"coldbridge FuzzDecodePayload") echo 12000 ;;
	"conffile FuzzParse") echo 16000 ;;
	"devnode FuzzHandleRPC") echo 8000 ;;
	"devnode FuzzIPCFraming") echo 20000 ;;
	"intent FuzzParse") echo 12000 ;;
	"intent FuzzUnmarshalJSON") echo 12000 ;;
	"nano FuzzParseAddress") echo 20000 ;;
	"nano FuzzParseAmount") echo 20000 ;;
	"nano FuzzParseXNO") echo 20000 ;;
	"nano FuzzParseBlockJSON") echo 10000 ;;
	"nano FuzzSignVerify") echo 10000 ;;
	"node FuzzCallback") echo 16000 ;;
	"node FuzzIPCFrame") echo 20000 ;;
	"node FuzzWSMessage") echo 16000 ;;
	"signer FuzzRecordDecode") echo 12000 ;;
	"signer FuzzParseStateExport") echo 8000 ;;
	"signer/policy FuzzParse") echo 16000 ;;
	*) echo 2000 ;;
	esac
}

fixed=${FUZZTIME:-}
scale=${FUZZSCALE:-1}
if [ -n "$fixed" ] && ! [[ $fixed =~ ^[1-9][0-9]*x$ ]]; then
	echo "nanokms: error: FUZZTIME=$fixed is not an execution count" >&2
	echo "hint: give a count such as FUZZTIME=200000x, or FUZZSCALE=50 for 50 times each target's short count; a duration can fail at its end on Go 1.26 (golang/go#75804)" >&2
	exit 2
fi
if ! [[ $scale =~ ^[1-9][0-9]*$ ]]; then
	echo "nanokms: error: FUZZSCALE=$scale is not a positive whole number" >&2
	exit 2
fi

module=$(go list -m)
# The fuzz targets of each package, from its test files (go list applies
# the build constraints), without building the package's tests twice.
go list -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./... |
	while read -r pkg dir files; do
		[ -n "$files" ] || continue
		rel=${pkg#"$module"}
		rel=${rel#/}
		for target in $(cd "$dir" && sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(.*\*testing\.F\).*/\1/p' $files | sort -u); do
			if [ -n "$fixed" ]; then
				count=$fixed
			else
				count="$(($(short_count "${rel:-.}" "$target") * scale))x"
			fi
			echo "-- $pkg $target ($count)"
			go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$count" </dev/null
		done
	done
