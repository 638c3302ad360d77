package cold

import (
	"os"
	"runtime/debug"
)

// signerGCPercent is the garbage collector's target for the signer
// process (the runtime default is 100). The signer's heap is small, a few
// megabytes: its state is in bbolt's memory map, not on the heap. A target
// of 400 lets the heap grow to about five times what is live between
// collections, and in docs/BENCHMARKS.md it gave 5–8% more signed requests
// per second and a lower p99. GOGC in the environment takes precedence.
const signerGCPercent = 400

// TuneSignerGC applies signerGCPercent unless GOGC is set, and returns
// the function that restores the previous target (for in-process runs).
func TuneSignerGC() (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	prev := debug.SetGCPercent(signerGCPercent)
	return func() { debug.SetGCPercent(prev) }
}
