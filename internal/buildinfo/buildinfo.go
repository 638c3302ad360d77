// Package buildinfo says what a nanokms binary is: the module version, the
// VCS revision and time it was built from, the Go version, and whether its
// PKCS#11 support (which needs cgo) is built in. The three binaries print
// it (`version`, `--version`) and every role exports it as the
// nanokms_build_info metric.
//
// It reads only the binary's own build information (runtime/debug) and a
// build-tag constant; it must never import anything of the hot side, the
// cold side or the token, so that every package may link it. It builds
// with CGO_ENABLED=0.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Values reported for what the binary does not record.
const (
	// Devel is the version of a binary built from a source tree rather
	// than as a released module version (Go's "(devel)"), and of a test
	// binary.
	Devel = "devel"
	// Unknown is the revision or time of a binary built without VCS
	// stamping (go test, go build -buildvcs=false, or outside a checkout).
	Unknown = "unknown"
)

// Info is what a binary knows about its own build.
type Info struct {
	// Version is the main module's version ("v1.2.3", a pseudo-version
	// when built from a checkout with VCS stamping), or Devel.
	Version string `json:"version"`
	// Revision is the VCS revision (a git commit hash), or Unknown.
	Revision string `json:"revision"`
	// Time is the revision's commit time (RFC 3339), or Unknown.
	Time string `json:"time"`
	// Modified reports that the work tree had uncommitted changes when the
	// binary was built (false when that is unknown).
	Modified bool `json:"modified"`
	// GoVersion is the Go toolchain that built the binary ("go1.26.8").
	GoVersion string `json:"go_version"`
	// PKCS11 reports whether PKCS#11 token support is built in: it needs
	// cgo; a CGO_ENABLED=0 binary has none (package hsm returns ErrNoCgo).
	PKCS11 bool `json:"pkcs11"`
	// OS and Arch are the target platform.
	OS   string `json:"os"`
	Arch string `json:"arch"`
}

// Read returns the running binary's build information.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	return From(bi)
}

// From returns the build information that bi records (nil: none), with
// PKCS11 and the platform of this binary. It is Read for a given
// debug.BuildInfo.
func From(bi *debug.BuildInfo) Info {
	info := Info{
		Version:   Devel,
		Revision:  Unknown,
		Time:      Unknown,
		GoVersion: runtime.Version(),
		PKCS11:    PKCS11,
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
	}
	if bi == nil {
		return info
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		info.Version = v
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				info.Revision = s.Value
			}
		case "vcs.time":
			if s.Value != "" {
				info.Time = s.Value
			}
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// PKCS11Word is "yes" or "no", as the version output and the metric's
// pkcs11 label say it.
func (i Info) PKCS11Word() string {
	if i.PKCS11 {
		return "yes"
	}
	return "no"
}
