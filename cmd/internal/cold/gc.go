package cold

import "github.com/nanokms/nanokms/cmd/internal/cli"

// signerGCPercent is the garbage collector's target for the signer
// process (the runtime default is 100). The signer's heap is small, a few
// megabytes: its state is in bbolt's memory map, not on the heap. A target
// of 400 lets the heap grow to about five times what is live between
// collections, and in docs/BENCHMARKS.md it gave 5–8% more signed requests
// per second and a lower p99. GOGC in the environment takes precedence.
const signerGCPercent = 400

// TuneSignerGC applies signerGCPercent unless GOGC is set, and returns
// the function that restores the previous target (for in-process runs).
func TuneSignerGC() (restore func()) { return cli.TuneGC(signerGCPercent) }

// relayGCPercent is the relay's garbage collector target, as the
// signer's: its heap holds a batch of frames at most.
const relayGCPercent = 400
