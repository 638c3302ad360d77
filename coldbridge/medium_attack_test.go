package coldbridge

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
	"github.com/nanokms/nanokms/signer/signertest"
)

// mediumAttack is one entry a hostile hot side plants on the medium.
type mediumAttack struct {
	name string
	// plant runs before the relay opens the medium, late once it runs.
	plant, late func(t *testing.T, m *attackMedium)
	// entries are the paths that must be reported as bad entries,
	// frames the file names that must be reported as refused.
	entries func(m *attackMedium) []string
	frames  []string
	// check, when set, checks what became of the entry.
	check func(t *testing.T, m *attackMedium)
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// wantSetAside checks that the entry at path was renamed to
// path.bad-<16 hex digits>, and is still what was planted.
func wantSetAside(t *testing.T, path string, isLink bool) {
	t.Helper()
	matches, _ := filepath.Glob(path + setAsideMark + "*")
	if len(matches) != 1 {
		t.Fatalf("%s set aside as %q, want one %s%s… entry", path, matches, filepath.Base(path), setAsideMark)
	}
	st, err := os.Lstat(matches[0])
	if err != nil || (st.Mode()&os.ModeSymlink != 0) != isLink {
		t.Fatalf("the entry set aside as %s: %v, %v", matches[0], st.Mode(), err)
	}
	if st, err := os.Lstat(path); err != nil || !st.IsDir() {
		t.Fatalf("%s is not a directory now: %v", path, err)
	}
}

// badFrame is a file named like a request frame that is not one: the
// reader must quarantine it.
const badFrame = "bad.request.nkb"

func plantBadFrame(t *testing.T, m *attackMedium) {
	tmp := filepath.Join(m.root, "bad-frame-being-written")
	writeFile(t, tmp, "not a frame")
	if err := os.Rename(tmp, filepath.Join(m.toCold, badFrame)); err != nil {
		t.Fatal(err)
	}
}

var mediumAttacks = []mediumAttack{
	{
		name: "to-cold/done is a link to a directory outside",
		plant: func(t *testing.T, m *attackMedium) {
			symlink(t, filepath.Join(m.outside, DoneDir), filepath.Join(m.toCold, DoneDir))
		},
		entries: func(m *attackMedium) []string { return []string{filepath.Join(m.toCold, DoneDir)} },
		check:   func(t *testing.T, m *attackMedium) { wantSetAside(t, filepath.Join(m.toCold, DoneDir), true) },
	},
	{
		name:    "to-cold/done is a regular file",
		plant:   func(t *testing.T, m *attackMedium) { writeFile(t, filepath.Join(m.toCold, DoneDir), "x") },
		entries: func(m *attackMedium) []string { return []string{filepath.Join(m.toCold, DoneDir)} },
		check:   func(t *testing.T, m *attackMedium) { wantSetAside(t, filepath.Join(m.toCold, DoneDir), false) },
	},
	{
		name:    "to-cold/done is a FIFO",
		plant:   func(t *testing.T, m *attackMedium) { mkfifo(t, filepath.Join(m.toCold, DoneDir)) },
		entries: func(m *attackMedium) []string { return []string{filepath.Join(m.toCold, DoneDir)} },
	},
	{
		name: "to-cold/done is a dangling link",
		plant: func(t *testing.T, m *attackMedium) {
			symlink(t, filepath.Join(m.outside, "nothing", "here"), filepath.Join(m.toCold, DoneDir))
		},
		entries: func(m *attackMedium) []string { return []string{filepath.Join(m.toCold, DoneDir)} },
	},
	{
		name:    "to-cold/done is a link loop",
		plant:   func(t *testing.T, m *attackMedium) { symlink(t, DoneDir, filepath.Join(m.toCold, DoneDir)) },
		entries: func(m *attackMedium) []string { return []string{filepath.Join(m.toCold, DoneDir)} },
	},
	{
		name: "to-cold/done/<the frame's name> is a directory",
		plant: func(t *testing.T, m *attackMedium) {
			mkdir(t, filepath.Join(m.toCold, DoneDir, "good-1.request.nkb", "sub"))
		},
		entries: func(m *attackMedium) []string {
			return []string{filepath.Join(m.toCold, DoneDir, "good-1.request.nkb")}
		},
	},
	{
		name: "to-cold/quarantine is a link to a directory outside",
		plant: func(t *testing.T, m *attackMedium) {
			symlink(t, filepath.Join(m.outside, QuarantineDir), filepath.Join(m.toCold, QuarantineDir))
		},
		late:    plantBadFrame,
		entries: func(m *attackMedium) []string { return []string{filepath.Join(m.toCold, QuarantineDir)} },
		frames:  []string{badFrame},
		check: func(t *testing.T, m *attackMedium) {
			wantSetAside(t, filepath.Join(m.toCold, QuarantineDir), true)
			if _, err := os.Stat(filepath.Join(m.toCold, QuarantineDir, badFrame+".reason")); err != nil {
				t.Fatalf("%v; quarantine holds %q", err, ls(t, m.toCold, QuarantineDir))
			}
		},
	},
	{
		name:    "to-cold/quarantine is a regular file",
		plant:   func(t *testing.T, m *attackMedium) { writeFile(t, filepath.Join(m.toCold, QuarantineDir), "x") },
		late:    plantBadFrame,
		entries: func(m *attackMedium) []string { return []string{filepath.Join(m.toCold, QuarantineDir)} },
		frames:  []string{badFrame},
	},
	{
		name: "to-cold/quarantine/<reason> is a link outside",
		plant: func(t *testing.T, m *attackMedium) {
			mkdir(t, filepath.Join(m.toCold, QuarantineDir))
			symlink(t, filepath.Join(m.outside, "reason-victim"), filepath.Join(m.toCold, QuarantineDir, badFrame+".reason"))
			symlink(t, filepath.Join(m.outside, "reason-victim"), filepath.Join(m.toCold, QuarantineDir, "bad.request~2.nkb.reason"))
		},
		late:   plantBadFrame,
		frames: []string{badFrame},
	},
	{
		name: "to-hot is a link to a directory outside",
		plant: func(t *testing.T, m *attackMedium) {
			if err := os.Remove(m.toHot); err != nil {
				t.Fatal(err)
			}
			symlink(t, m.outside, m.toHot)
		},
		entries: func(m *attackMedium) []string { return []string{m.toHot} },
		check:   func(t *testing.T, m *attackMedium) { wantSetAside(t, m.toHot, true) },
	},
	{
		name: "to-hot is a regular file",
		plant: func(t *testing.T, m *attackMedium) {
			if err := os.Remove(m.toHot); err != nil {
				t.Fatal(err)
			}
			writeFile(t, m.toHot, "x")
		},
		entries: func(m *attackMedium) []string { return []string{m.toHot} },
	},
	{
		name: "to-cold is a link to a directory outside",
		plant: func(t *testing.T, m *attackMedium) {
			if err := os.Remove(m.toCold); err != nil {
				t.Fatal(err)
			}
			symlink(t, m.outside, m.toCold)
		},
		entries: func(m *attackMedium) []string { return []string{m.toCold} },
	},
	{
		name: "to-hot/<the answer's name> is a directory",
		plant: func(t *testing.T, m *attackMedium) {
			for _, typ := range []string{"response", "refusal"} {
				mkdir(t, filepath.Join(m.toHot, "good-1."+typ+FileSuffix, "sub"))
			}
		},
		entries: func(m *attackMedium) []string { return []string{filepath.Join(m.toHot, "good-1.refusal.nkb")} },
	},
	{
		name: "to-hot holds a link named like a temporary file",
		plant: func(t *testing.T, m *attackMedium) {
			symlink(t, filepath.Join(m.outside, outsideTmp), filepath.Join(m.toHot, ".tmp-good-1-0123456789abcdef"))
		},
		entries: func(m *attackMedium) []string {
			return []string{filepath.Join(m.toHot, ".tmp-good-1-0123456789abcdef")}
		},
		check: func(t *testing.T, m *attackMedium) {
			if _, err := os.Lstat(filepath.Join(m.toHot, ".tmp-good-1-0123456789abcdef")); err != nil {
				t.Fatalf("the link named like a temporary file was removed: %v", err)
			}
		},
	},
	{
		name: "a frame file is a link to a frame outside",
		plant: func(t *testing.T, m *attackMedium) {
			symlink(t, filepath.Join(m.outside, "outside.request.nkb"), filepath.Join(m.toCold, "outside.request.nkb"))
		},
		frames: []string{"outside.request.nkb"},
	},
	{
		name: "a frame file is a link loop",
		plant: func(t *testing.T, m *attackMedium) {
			symlink(t, "loop.request.nkb", filepath.Join(m.toCold, "loop.request.nkb"))
		},
		frames: []string{"loop.request.nkb"},
	},
	{
		name:   "a frame file is a FIFO",
		plant:  func(t *testing.T, m *attackMedium) { mkfifo(t, filepath.Join(m.toCold, "fifo.request.nkb")) },
		frames: []string{"fifo.request.nkb"},
	},
	{
		name:   "a directory is named like a frame",
		plant:  func(t *testing.T, m *attackMedium) { mkdir(t, filepath.Join(m.toCold, "dir.request.nkb", "sub")) },
		frames: []string{"dir.request.nkb"},
	},
	{
		name: "a frame with a request id beginning with a dot",
		plant: func(t *testing.T, m *attackMedium) {
			data := rawFrame(t, frametest.RequestFrame(t, "xhidden", time.Now()), ".hidden")
			if err := os.WriteFile(filepath.Join(m.toCold, ".hidden.request.nkb"), data, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		frames: []string{".hidden.request.nkb"},
		check: func(t *testing.T, m *attackMedium) {
			reason, err := os.ReadFile(filepath.Join(m.toCold, QuarantineDir, ".hidden.request.nkb.reason"))
			if err != nil || !strings.Contains(string(reason), "reason: bad request id\n") {
				t.Fatalf("the dot-file's .reason: %q, %v", reason, err)
			}
		},
	},
}

// TestRelayMediumAttacks plants, one at a time, every entry a hostile hot
// side can put on the medium where the relay works, runs the real relay
// (the signer on SoftHSM) over it, and checks that the relay writes,
// moves and deletes nothing outside the medium, keeps serving (two good
// requests after the bad entry are answered and settled into done/, and
// Run ends only when told to), and reports the entry.
func TestRelayMediumAttacks(t *testing.T) {
	env := signertest.MustEnv(t, 1)
	for _, openat2 := range []bool{true, false} {
		mode := "openat2"
		if !openat2 {
			mode = "O_NOFOLLOW"
		}
		t.Run(mode, func(t *testing.T) {
			if openat2 && !probeOpenat2() {
				t.Fatal("this kernel has no openat2(2) (Linux 5.6); the test expects it")
			}
			saved := useOpenat2
			useOpenat2 = func() bool { return openat2 }
			t.Cleanup(func() { useOpenat2 = saved })
			for _, a := range mediumAttacks {
				t.Run(a.name, func(t *testing.T) { runMediumAttack(t, env, a) })
			}
		})
	}
}

func runMediumAttack(t *testing.T, env *signertest.Env, a mediumAttack) {
	m := newAttackMedium(t)
	a.plant(t, m)
	reports := &mediumReports{}
	medium, err := OpenMedium(BridgeConfig{Kind: "file", Inbound: m.toCold, Outbound: m.toHot, PollInterval: 5 * time.Millisecond},
		Cold, reports.onReject, reports.onError)
	if err != nil {
		t.Fatalf("the relay's medium does not open: %v", err)
	}
	defer medium.Close()
	relay := &Relay{In: medium.Reader, Out: medium.Writer, Signer: env.Client, RetryMin: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	runs := make(chan error, 1)
	go func() { runs <- relay.Run(ctx) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-runs
		}
	}()
	if a.late != nil {
		a.late(t, m)
	}
	for _, id := range []string{"good-1", "good-2"} {
		putFrame(t, m.toCold, frametest.RequestFrame(t, id, time.Now()))
		answerOf(t, m.toHot, id)
	}
	// The relay settles a request before it reads the next: good-1 is in
	// done/, and the relay is still running.
	if _, err := os.Lstat(filepath.Join(m.toCold, DoneDir, "good-1.request.nkb")); err != nil {
		t.Errorf("good-1 was not settled into done/: %v", err)
	}
	select {
	case err := <-runs:
		stopped = true
		t.Fatalf("the relay stopped by itself: %v", err)
	default:
	}
	cancel()
	stopped = true
	if err := <-runs; err != nil {
		t.Errorf("Run: %v", err)
	}
	m.wantOutsideUnchanged(t)
	var entries []string
	if a.entries != nil {
		entries = a.entries(m)
	}
	reports.wantReported(t, entries, a.frames)
	for _, name := range a.frames {
		if _, err := os.Lstat(filepath.Join(m.toCold, name)); err == nil {
			t.Errorf("%s is still in to-cold, not quarantined", name)
		}
	}
	if a.check != nil {
		a.check(t, m)
	}
}

// TestBridgeOverAttackedMedium runs the whole bridge (gateway, relay,
// signer) over a medium with bad entries on both sides — the gateway's
// to-hot/done is a file and its quarantine/ a link outside, a FIFO is
// named like an answer, the relay's to-cold/done is a link outside — and
// checks that the gateway and the relay keep serving a whole account
// lifecycle, that nothing outside the medium changes, and that each side
// reports what it met.
func TestBridgeOverAttackedMedium(t *testing.T) {
	m := newAttackMedium(t)
	writeFile(t, filepath.Join(m.toHot, DoneDir), "x")
	symlink(t, filepath.Join(m.outside, QuarantineDir), filepath.Join(m.toHot, QuarantineDir))
	mkfifo(t, filepath.Join(m.toHot, "fifo.response.nkb"))
	symlink(t, filepath.Join(m.outside, DoneDir), filepath.Join(m.toCold, DoneDir))
	hot, cold := &mediumReports{}, &mediumReports{}
	medium := func(t *testing.T) (frame.FrameWriter, frame.FrameReader, frame.FrameReader, frame.FrameWriter) {
		t.Helper()
		open := func(in, out string, side Side, rep *mediumReports) *Medium {
			md, err := OpenMedium(BridgeConfig{Kind: "file", Inbound: in, Outbound: out, PollInterval: 5 * time.Millisecond},
				side, rep.onReject, rep.onError)
			if err != nil {
				t.Fatalf("the medium does not open: %v", err)
			}
			t.Cleanup(func() { md.Close() })
			return md
		}
		h, c := open(m.toHot, m.toCold, Hot, hot), open(m.toCold, m.toHot, Cold, cold)
		return h.Writer, h.Reader, c.Reader, c.Writer
	}
	runLifecycle(t, newBridgeWorld(t, medium, 1))
	m.wantOutsideUnchanged(t)
	hot.wantReported(t, []string{filepath.Join(m.toHot, DoneDir), filepath.Join(m.toHot, QuarantineDir)}, []string{"fifo.response.nkb"})
	cold.wantReported(t, []string{filepath.Join(m.toCold, DoneDir)}, nil)
}
