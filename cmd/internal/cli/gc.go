package cli

import (
	"os"
	"runtime/debug"
)

// TuneGC sets the garbage collector's target to percent (the runtime's
// default is 100) unless GOGC is set in the environment, and returns the
// function that restores the previous target (for in-process runs). The
// long-running roles (signer, relay, gateway) keep their state in bbolt's
// memory map, not on the heap, which stays at a few megabytes: a higher
// target trades a little memory for less CPU spent collecting.
func TuneGC(percent int) (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	prev := debug.SetGCPercent(percent)
	return func() { debug.SetGCPercent(prev) }
}
