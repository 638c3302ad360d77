package buildinfo_test

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/nanokms/nanokms/internal/buildinfo"
)

func TestFrom(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var out []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	for _, c := range []struct {
		name string
		bi   *debug.BuildInfo
		want buildinfo.Info
	}{
		{"no build information", nil,
			buildinfo.Info{Version: "devel", Revision: "unknown", Time: "unknown", GoVersion: runtime.Version()}},
		{"go test or -buildvcs=false", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/nanokms/nanokms", Version: "(devel)"}},
			buildinfo.Info{Version: "devel", Revision: "unknown", Time: "unknown", GoVersion: "go1.26.8"}},
		{"a checkout with VCS stamping, uncommitted changes",
			&debug.BuildInfo{GoVersion: "go1.26.8",
				Main: debug.Module{Path: "github.com/nanokms/nanokms", Version: "v0.0.0-20261201100000-a1a541d0af9f+dirty"},
				Settings: vcs("-buildmode", "exe", "CGO_ENABLED", "1", "vcs", "git",
					"vcs.revision", "a1a541d0af9f9c2dcd38e7327b309a24713ecd21",
					"vcs.time", "2026-12-01T10:00:00Z", "vcs.modified", "true")},
			buildinfo.Info{Version: "v0.0.0-20261201100000-a1a541d0af9f+dirty", Revision: "a1a541d0af9f9c2dcd38e7327b309a24713ecd21",
				Time: "2026-12-01T10:00:00Z", Modified: true, GoVersion: "go1.26.8"}},
		{"a released module version", &debug.BuildInfo{GoVersion: "go1.27.0",
			Main:     debug.Module{Path: "github.com/nanokms/nanokms", Version: "v1.2.3"},
			Settings: vcs("vcs.modified", "false")},
			buildinfo.Info{Version: "v1.2.3", Revision: "unknown", Time: "unknown", GoVersion: "go1.27.0"}},
		{"empty VCS values stay unknown", &debug.BuildInfo{Main: debug.Module{Version: ""},
			Settings: vcs("vcs.revision", "", "vcs.time", "")},
			buildinfo.Info{Version: "devel", Revision: "unknown", Time: "unknown", GoVersion: runtime.Version()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.want.PKCS11 = buildinfo.PKCS11
			c.want.OS, c.want.Arch = runtime.GOOS, runtime.GOARCH
			if got := buildinfo.From(c.bi); got != c.want {
				t.Errorf("From = %+v\nwant   %+v", got, c.want)
			}
		})
	}
}

// TestRead: a test binary records no module version and no VCS revision,
// and is built by the toolchain running it.
func TestRead(t *testing.T) {
	got := buildinfo.Read()
	if got.Version != buildinfo.Devel || got.Revision != buildinfo.Unknown || got.Time != buildinfo.Unknown {
		t.Errorf("a test binary reads as %+v", got)
	}
	if got.GoVersion != runtime.Version() {
		t.Errorf("GoVersion = %q, want %q", got.GoVersion, runtime.Version())
	}
}
