package filemedium

import (
	"testing"

	"github.com/nanokms/nanokms/bridge/filemedium/mediumtest"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
)

func TestFileNames(t *testing.T) {
	f := &frame.Frame{Type: frame.TypeResponse, RequestID: "w.2026:1"}
	if got := FileName(f); got != "w.2026:1.response.nkb" {
		t.Fatalf("FileName = %q", got)
	}
	if err := CheckFileName("w.2026:1.response.nkb", f); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"w.2026:1.request.nkb", "w.2026.response.nkb", "x.nkb", "w.2026:1.response.nkb.nkb"} {
		frametest.WantCode(t, CheckFileName(name, f), frame.ErrCodeFileName)
	}
	for in, want := range map[string]string{
		"a.request.nkb":           "a.request.nkb",
		"a.request~2.nkb":         "a.request.nkb",
		"a.request~123.nkb":       "a.request.nkb",
		"a.request~0a1b2c3d.nkb":  "a.request~0a1b2c3d.nkb",
		"a.request~x.nkb":         "a.request~x.nkb",
		"a.request.nkb.reason":    "a.request.nkb.reason",
		"b~1.c.d.heartbeat~4.nkb": "b~1.c.d.heartbeat.nkb",
	} {
		if got := QuarantineBase(in); got != want {
			t.Errorf("QuarantineBase(%q) = %q, want %q", in, got, want)
		}
	}
	for typ := frame.TypeRequest; typ <= frame.TypeHeartbeat; typ++ {
		if got, ok := frame.ParseFrameType(typ.String()); !ok || got != typ {
			t.Errorf("ParseFrameType(%q) = %v, %v", typ, got, ok)
		}
	}
}

// TestMediumtestNames: the names package mediumtest spells again (it
// cannot import this package) are this package's.
func TestMediumtestNames(t *testing.T) {
	f := frametest.RequestFrame(t, "names", frametest.Time)
	for _, c := range []struct{ got, want string }{
		{mediumtest.DoneDir, DoneDir}, {mediumtest.QuarantineDir, QuarantineDir}, {mediumtest.FileSuffix, FileSuffix},
		{mediumtest.TempPrefix, TempPrefix}, {mediumtest.SetAsideMark, SetAsideMark}, {mediumtest.FileName(f), FileName(f)},
	} {
		if c.got != c.want {
			t.Errorf("mediumtest says %q, filemedium %q", c.got, c.want)
		}
	}
}
