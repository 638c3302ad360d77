package filemedium

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// CheckDir says whether a medium directory is there, in both open modes,
// and changes nothing: a missing directory is not made, a link or a file
// where it belongs is neither followed nor set aside.
func TestCheckDir(t *testing.T) {
	for _, openat2 := range []bool{true, false} {
		if openat2 && !Openat2Available() {
			continue
		}
		t.Run(map[bool]string{true: "openat2", false: "O_NOFOLLOW"}[openat2], func(t *testing.T) {
			defer ForceOpenMode(openat2)()
			root := t.TempDir()
			dir := filepath.Join(root, "bridge", "to-cold")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := CheckDir(root, dir); err != nil {
				t.Fatalf("present: %v", err)
			}
			if err := CheckDir("", dir); err != nil {
				t.Fatalf("present, root the parent: %v", err)
			}

			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
			err := CheckDir(root, dir)
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("missing: %v, want fs.ErrNotExist", err)
			}
			if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the check made the directory (%v)", err)
			}

			// A link to a real directory where the directory belongs.
			elsewhere := t.TempDir()
			if err := os.Symlink(elsewhere, dir); err != nil {
				t.Fatal(err)
			}
			if err := CheckDir(root, dir); !errors.Is(err, ErrBadEntry) || !IsBadEntryAt(err, dir) {
				t.Fatalf("a link: %v, want a bad entry at %s", err, dir)
			}
			if fi, err := os.Lstat(dir); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
				t.Fatalf("the link was moved (%v, %v)", fi, err)
			}
			os.Remove(dir)

			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := CheckDir(root, dir); !errors.Is(err, ErrBadEntry) {
				t.Fatalf("a file: %v, want ErrBadEntry", err)
			}
			os.Remove(dir)

			// A link above the directory, beneath the root, is not
			// followed either.
			if err := os.RemoveAll(filepath.Join(root, "bridge")); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(elsewhere, "to-cold"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(elsewhere, filepath.Join(root, "bridge")); err != nil {
				t.Fatal(err)
			}
			if err := CheckDir(root, dir); !errors.Is(err, ErrBadEntry) {
				t.Fatalf("a link above: %v, want ErrBadEntry", err)
			}

			// The root itself missing (a stick not mounted).
			if err := CheckDir(filepath.Join(root, "gone"), filepath.Join(root, "gone", "to-cold")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("no root: %v", err)
			}
			if err := CheckDir(root, "/elsewhere/to-cold"); err == nil {
				t.Fatal("a directory outside the root passed")
			}
		})
	}
}
