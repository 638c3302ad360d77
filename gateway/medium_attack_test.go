package gateway

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/filemedium/mediumtest"
	"github.com/nanokms/nanokms/bridge/frame"
)

// TestBridgeOverAttackedMedium runs the whole bridge (gateway, relay,
// signer) over a medium with bad entries on both sides — the gateway's
// to-hot/done is a file and its quarantine/ a link outside, a FIFO is
// named like an answer, the relay's to-cold/done is a link outside — and
// checks that the gateway and the relay keep serving a whole account
// lifecycle, that nothing outside the medium changes, and that each side
// reports what it met.
func TestBridgeOverAttackedMedium(t *testing.T) { forEachStore(t, testBridgeOverAttackedMedium) }

func testBridgeOverAttackedMedium(t *testing.T, kind storeKind) {
	m := mediumtest.NewAttack(t)
	mediumtest.WriteFile(t, filepath.Join(m.ToHot, filemedium.DoneDir), "x")
	mediumtest.Symlink(t, filepath.Join(m.Outside, filemedium.QuarantineDir), filepath.Join(m.ToHot, filemedium.QuarantineDir))
	mediumtest.Mkfifo(t, filepath.Join(m.ToHot, "fifo.response.nkb"))
	mediumtest.Symlink(t, filepath.Join(m.Outside, filemedium.DoneDir), filepath.Join(m.ToCold, filemedium.DoneDir))
	hot, cold := &mediumtest.Reports{}, &mediumtest.Reports{}
	medium := func(t *testing.T) (frame.FrameWriter, frame.FrameReader, frame.FrameReader, frame.FrameWriter) {
		t.Helper()
		open := func(in, out string, side bridge.Side, rep *mediumtest.Reports) *bridge.Medium {
			md, err := bridge.Open(bridge.Config{Kind: "file", Inbound: in, Outbound: out, PollInterval: 5 * time.Millisecond},
				side, rep.OnReject, rep.OnError)
			if err != nil {
				t.Fatalf("the medium does not open: %v", err)
			}
			t.Cleanup(func() { md.Close() })
			return md
		}
		h, c := open(m.ToHot, m.ToCold, bridge.Hot, hot), open(m.ToCold, m.ToHot, bridge.Cold, cold)
		return h.Writer, h.Reader, c.Reader, c.Writer
	}
	runLifecycle(t, newBridgeWorld(t, kind, medium, 1))
	m.WantOutsideUnchanged(t)
	hot.WantReported(t, filemedium.IsBadEntryAt, []string{filepath.Join(m.ToHot, filemedium.DoneDir), filepath.Join(m.ToHot, filemedium.QuarantineDir)}, []string{"fifo.response.nkb"})
	cold.WantReported(t, filemedium.IsBadEntryAt, []string{filepath.Join(m.ToCold, filemedium.DoneDir)}, nil)
}
