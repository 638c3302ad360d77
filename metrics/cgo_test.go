//go:build cgo

package metrics_test

// cgoBuild reports whether this test binary was built with cgo.
const cgoBuild = true
