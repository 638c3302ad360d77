package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdFullTmpfs implements `fulltmpfs DIR`: mount a small tmpfs (64 KiB) on
// the new directory DIR and fill it, so that the next write there fails
// with ENOSPC (a full disk, for real); it is unmounted when the script
// ends. It fails, never skips, when the test cannot mount (not root).
func cmdFullTmpfs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: fulltmpfs DIR")
	}
	if os.Geteuid() != 0 {
		ts.Fatalf("fulltmpfs mounts a tmpfs to fill a file system for real and must run as root (CI does); running as uid %d", os.Geteuid())
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.Mkdir(dir, 0o700))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=65536,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		ts.Fatalf("mounting a tmpfs on %s: %v: %s", dir, err, out)
	}
	ts.Defer(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			ts.Logf("unmounting %s: %v: %s", dir, err, out)
		}
	})
	f, err := os.OpenFile(filepath.Join(dir, "filler"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	ts.Check(err)
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				ts.Fatalf("filling %s: %v", dir, err)
			}
			break
		}
	}
	// Whatever a partial page kept free is taken too.
	for _, n := range []int{1024, 64, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	ts.Check(f.Sync())
}
