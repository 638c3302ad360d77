package relay_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/filemedium/mediumtest"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer/signertest"
)

// mediumAttack is one entry a hostile hot side plants on the medium.
type mediumAttack struct {
	name string
	// plant runs before the relay opens the medium, late once it runs.
	plant, late func(t *testing.T, m *mediumtest.Attack)
	// entries are the paths that must be reported as bad entries,
	// frames the file names that must be reported as refused.
	entries func(m *mediumtest.Attack) []string
	frames  []string
	// check, when set, checks what became of the entry.
	check func(t *testing.T, m *mediumtest.Attack)
}

func plantBadFrame(t *testing.T, m *mediumtest.Attack) {
	tmp := filepath.Join(m.Root, "bad-frame-being-written")
	mediumtest.WriteFile(t, tmp, "not a frame")
	if err := os.Rename(tmp, filepath.Join(m.ToCold, mediumtest.BadFrame)); err != nil {
		t.Fatal(err)
	}
}

var mediumAttacks = []mediumAttack{
	{
		name: "to-cold/done is a link to a directory outside",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.Symlink(t, filepath.Join(m.Outside, filemedium.DoneDir), filepath.Join(m.ToCold, filemedium.DoneDir))
		},
		entries: func(m *mediumtest.Attack) []string { return []string{filepath.Join(m.ToCold, filemedium.DoneDir)} },
		check: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.WantSetAside(t, filepath.Join(m.ToCold, filemedium.DoneDir), true)
		},
	},
	{
		name: "to-cold/done is a regular file",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.WriteFile(t, filepath.Join(m.ToCold, filemedium.DoneDir), "x")
		},
		entries: func(m *mediumtest.Attack) []string { return []string{filepath.Join(m.ToCold, filemedium.DoneDir)} },
		check: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.WantSetAside(t, filepath.Join(m.ToCold, filemedium.DoneDir), false)
		},
	},
	{
		name: "to-cold/done is a FIFO",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.Mkfifo(t, filepath.Join(m.ToCold, filemedium.DoneDir))
		},
		entries: func(m *mediumtest.Attack) []string { return []string{filepath.Join(m.ToCold, filemedium.DoneDir)} },
	},
	{
		name: "to-cold/done is a dangling link",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.Symlink(t, filepath.Join(m.Outside, "nothing", "here"), filepath.Join(m.ToCold, filemedium.DoneDir))
		},
		entries: func(m *mediumtest.Attack) []string { return []string{filepath.Join(m.ToCold, filemedium.DoneDir)} },
	},
	{
		name: "to-cold/done is a link loop",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.Symlink(t, filemedium.DoneDir, filepath.Join(m.ToCold, filemedium.DoneDir))
		},
		entries: func(m *mediumtest.Attack) []string { return []string{filepath.Join(m.ToCold, filemedium.DoneDir)} },
	},
	{
		name: "to-cold/done/<the frame's name> is a directory",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.Mkdir(t, filepath.Join(m.ToCold, filemedium.DoneDir, "good-1.request.nkb", "sub"))
		},
		entries: func(m *mediumtest.Attack) []string {
			return []string{filepath.Join(m.ToCold, filemedium.DoneDir, "good-1.request.nkb")}
		},
	},
	{
		name: "to-cold/quarantine is a link to a directory outside",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.Symlink(t, filepath.Join(m.Outside, filemedium.QuarantineDir), filepath.Join(m.ToCold, filemedium.QuarantineDir))
		},
		late: plantBadFrame,
		entries: func(m *mediumtest.Attack) []string {
			return []string{filepath.Join(m.ToCold, filemedium.QuarantineDir)}
		},
		frames: []string{mediumtest.BadFrame},
		check: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.WantSetAside(t, filepath.Join(m.ToCold, filemedium.QuarantineDir), true)
			if _, err := os.Stat(filepath.Join(m.ToCold, filemedium.QuarantineDir, mediumtest.BadFrame+".reason")); err != nil {
				t.Fatalf("%v; quarantine holds %q", err, mediumtest.Ls(t, m.ToCold, filemedium.QuarantineDir))
			}
		},
	},
	{
		name: "to-cold/quarantine is a regular file",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.WriteFile(t, filepath.Join(m.ToCold, filemedium.QuarantineDir), "x")
		},
		late: plantBadFrame,
		entries: func(m *mediumtest.Attack) []string {
			return []string{filepath.Join(m.ToCold, filemedium.QuarantineDir)}
		},
		frames: []string{mediumtest.BadFrame},
	},
	{
		name: "to-cold/quarantine/<reason> is a link outside",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.Mkdir(t, filepath.Join(m.ToCold, filemedium.QuarantineDir))
			mediumtest.Symlink(t, filepath.Join(m.Outside, "reason-victim"), filepath.Join(m.ToCold, filemedium.QuarantineDir, mediumtest.BadFrame+".reason"))
			mediumtest.Symlink(t, filepath.Join(m.Outside, "reason-victim"), filepath.Join(m.ToCold, filemedium.QuarantineDir, "bad.request~2.nkb.reason"))
		},
		late:   plantBadFrame,
		frames: []string{mediumtest.BadFrame},
	},
	{
		name: "to-hot is a link to a directory outside",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			if err := os.Remove(m.ToHot); err != nil {
				t.Fatal(err)
			}
			mediumtest.Symlink(t, m.Outside, m.ToHot)
		},
		entries: func(m *mediumtest.Attack) []string { return []string{m.ToHot} },
		check:   func(t *testing.T, m *mediumtest.Attack) { mediumtest.WantSetAside(t, m.ToHot, true) },
	},
	{
		name: "to-hot is a regular file",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			if err := os.Remove(m.ToHot); err != nil {
				t.Fatal(err)
			}
			mediumtest.WriteFile(t, m.ToHot, "x")
		},
		entries: func(m *mediumtest.Attack) []string { return []string{m.ToHot} },
	},
	{
		name: "to-cold is a link to a directory outside",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			if err := os.Remove(m.ToCold); err != nil {
				t.Fatal(err)
			}
			mediumtest.Symlink(t, m.Outside, m.ToCold)
		},
		entries: func(m *mediumtest.Attack) []string { return []string{m.ToCold} },
	},
	{
		name: "to-hot/<the answer's name> is a directory",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			for _, typ := range []string{"response", "refusal"} {
				mediumtest.Mkdir(t, filepath.Join(m.ToHot, "good-1."+typ+filemedium.FileSuffix, "sub"))
			}
		},
		entries: func(m *mediumtest.Attack) []string { return []string{filepath.Join(m.ToHot, "good-1.refusal.nkb")} },
	},
	{
		name: "to-hot holds a link named like a temporary file",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.Symlink(t, filepath.Join(m.Outside, mediumtest.OutsideTmp), filepath.Join(m.ToHot, ".tmp-good-1-0123456789abcdef"))
		},
		entries: func(m *mediumtest.Attack) []string {
			return []string{filepath.Join(m.ToHot, ".tmp-good-1-0123456789abcdef")}
		},
		check: func(t *testing.T, m *mediumtest.Attack) {
			if _, err := os.Lstat(filepath.Join(m.ToHot, ".tmp-good-1-0123456789abcdef")); err != nil {
				t.Fatalf("the link named like a temporary file was removed: %v", err)
			}
		},
	},
	{
		name: "a frame file is a link to a frame outside",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.Symlink(t, filepath.Join(m.Outside, "outside.request.nkb"), filepath.Join(m.ToCold, "outside.request.nkb"))
		},
		frames: []string{"outside.request.nkb"},
	},
	{
		name: "a frame file is a link loop",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.Symlink(t, "loop.request.nkb", filepath.Join(m.ToCold, "loop.request.nkb"))
		},
		frames: []string{"loop.request.nkb"},
	},
	{
		name: "a frame file is a FIFO",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.Mkfifo(t, filepath.Join(m.ToCold, "fifo.request.nkb"))
		},
		frames: []string{"fifo.request.nkb"},
	},
	{
		name: "a directory is named like a frame",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			mediumtest.Mkdir(t, filepath.Join(m.ToCold, "dir.request.nkb", "sub"))
		},
		frames: []string{"dir.request.nkb"},
	},
	{
		name: "a frame with a request id beginning with a dot",
		plant: func(t *testing.T, m *mediumtest.Attack) {
			data := mediumtest.RawFrame(t, frametest.RequestFrame(t, "xhidden", time.Now()), ".hidden")
			if err := os.WriteFile(filepath.Join(m.ToCold, ".hidden.request.nkb"), data, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		frames: []string{".hidden.request.nkb"},
		check: func(t *testing.T, m *mediumtest.Attack) {
			reason, err := os.ReadFile(filepath.Join(m.ToCold, filemedium.QuarantineDir, ".hidden.request.nkb.reason"))
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
			if openat2 && !filemedium.Openat2Available() {
				t.Fatal("this kernel has no openat2(2) (Linux 5.6); the test expects it")
			}
			t.Cleanup(filemedium.ForceOpenMode(openat2))
			for _, a := range mediumAttacks {
				t.Run(a.name, func(t *testing.T) { runMediumAttack(t, env, a) })
			}
		})
	}
}

func runMediumAttack(t *testing.T, env *signertest.Env, a mediumAttack) {
	m := mediumtest.NewAttack(t)
	a.plant(t, m)
	reports := &mediumtest.Reports{}
	medium, err := bridge.Open(bridge.Config{Kind: "file", Inbound: m.ToCold, Outbound: m.ToHot, PollInterval: 5 * time.Millisecond},
		bridge.Cold, reports.OnReject, reports.OnError)
	if err != nil {
		t.Fatalf("the relay's medium does not open: %v", err)
	}
	defer medium.Close()
	rl := &relay.Relay{In: medium.Reader, Out: medium.Writer, Signer: env.Client, RetryMin: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	runs := make(chan error, 1)
	go func() { runs <- rl.Run(ctx) }()
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
		mediumtest.PutFrame(t, m.ToCold, frametest.RequestFrame(t, id, time.Now()))
		mediumtest.AnswerOf(t, m.ToHot, id)
	}
	// The relay settles a request before it reads the next: good-1 is in
	// done/, and the relay is still running.
	if _, err := os.Lstat(filepath.Join(m.ToCold, filemedium.DoneDir, "good-1.request.nkb")); err != nil {
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
	m.WantOutsideUnchanged(t)
	var entries []string
	if a.entries != nil {
		entries = a.entries(m)
	}
	reports.WantReported(t, filemedium.IsBadEntryAt, entries, a.frames)
	for _, name := range a.frames {
		if _, err := os.Lstat(filepath.Join(m.ToCold, name)); err == nil {
			t.Errorf("%s is still in to-cold, not quarantined", name)
		}
	}
	if a.check != nil {
		a.check(t, m)
	}
}
