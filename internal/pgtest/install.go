package pgtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// BinDir is where Debian 12's postgresql-15 package puts initdb and postgres.
const BinDir = "/usr/lib/postgresql/15/bin"

// User is the system account the servers run as when the tests run as
// root (PostgreSQL refuses to run as root). It is created with useradd
// --system when missing.
const User = "nanokms-pgtest"

// lockName is the file under os.TempDir() whose flock serialises package
// installation and user creation across test processes.
const lockName = "nanokms-pgtest.lock"

// account is the identity initdb and postgres run as.
type account struct {
	uid, gid int
	cred     *syscall.Credential // nil: run as this process's own user
}

var setupOnce struct {
	sync.Once
	acct account
	err  error
}

// setup installs PostgreSQL 15 and creates the server account, once per
// process.
func setup() (account, error) {
	setupOnce.Do(func() {
		setupOnce.acct, setupOnce.err = doSetup()
	})
	return setupOnce.acct, setupOnce.err
}

func doSetup() (account, error) {
	if !installed() {
		if err := withMachineLock(func() error {
			if installed() {
				return nil
			}
			return install()
		}); err != nil {
			return account{}, err
		}
	}
	if os.Geteuid() != 0 {
		return account{uid: os.Getuid(), gid: os.Getgid()}, nil
	}
	u, err := user.Lookup(User)
	if err != nil {
		if err := withMachineLock(createUser); err != nil {
			return account{}, err
		}
		if u, err = user.Lookup(User); err != nil {
			return account{}, fmt.Errorf("pgtest: user %s: %w", User, err)
		}
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return account{}, fmt.Errorf("pgtest: user %s: %w", User, err)
	}
	if uid == 0 {
		return account{}, fmt.Errorf("pgtest: user %s has uid 0: PostgreSQL refuses to run as root", User)
	}
	return account{uid: uid, gid: gid, cred: &syscall.Credential{
		Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{},
	}}, nil
}

func installed() bool {
	for _, name := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(BinDir, name)); err != nil {
			return false
		}
	}
	return true
}

// install installs Debian's postgresql package (PostgreSQL 15 on Debian
// 12), running apt-get update first only if the first try fails.
func install() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("pgtest: PostgreSQL 15 is not installed (%s/initdb is missing) and this process is not root: run apt-get install postgresql as root", BinDir)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("pgtest: PostgreSQL 15 is not installed and there is no apt-get to install it with: install Debian's postgresql package (%s)", BinDir)
	}
	apt := func(args ...string) error {
		args = append([]string{"-o", "DPkg::Lock::Timeout=600"}, args...)
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("pgtest: apt-get %s: %w\n%s", strings.Join(args, " "), err, lastBytes(out, 2000))
		}
		return nil
	}
	inst := []string{"install", "-y", "--no-install-recommends", "postgresql"}
	if err := apt(inst...); err != nil {
		if uerr := apt("update"); uerr != nil {
			return errors.Join(err, uerr)
		}
		if err := apt(inst...); err != nil {
			return err
		}
	}
	if !installed() {
		return fmt.Errorf("pgtest: apt-get installed postgresql but %s/initdb is still missing (not PostgreSQL 15? this set-up expects Debian 12)", BinDir)
	}
	return nil
}

func createUser() error {
	if _, err := user.Lookup(User); err == nil {
		return nil
	}
	out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", User).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: useradd %s: %w\n%s", User, err, lastBytes(out, 2000))
	}
	return nil
}

// withMachineLock runs f holding an exclusive flock on a file under
// os.TempDir(), so that concurrent test processes install and create the
// user one at a time.
func withMachineLock(f func() error) error {
	path := filepath.Join(os.TempDir(), lockName)
	lf, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: lock file: %w", err)
	}
	defer lf.Close()
	for {
		err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("pgtest: flock %s: %w", path, err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	return f()
}

// makeBase creates a new directory under os.TempDir() owned by the server
// account with mode 0700, after checking that the account can reach it.
func makeBase(acct account) (string, error) {
	base, err := os.MkdirTemp("", "nanokms-pgtest-")
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	if err := os.Chown(base, acct.uid, acct.gid); err != nil {
		os.RemoveAll(base)
		return "", fmt.Errorf("pgtest: %w", err)
	}
	if err := traversable(filepath.Dir(base), acct); err != nil {
		os.RemoveAll(base)
		return "", err
	}
	return base, nil
}

// traversable checks that acct may search dir and each of its parents.
func traversable(dir string, acct account) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		bit := os.FileMode(0o001)
		switch {
		case int(st.Uid) == acct.uid:
			bit = 0o100
		case int(st.Gid) == acct.gid:
			bit = 0o010
		}
		if fi.Mode().Perm()&bit == 0 {
			return fmt.Errorf("pgtest: the server's user (uid %d) cannot traverse %s (mode %v): point TMPDIR at a directory it can reach", acct.uid, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// mkdirOwned creates dir with mode 0700, owned by acct.
func mkdirOwned(dir string, acct account) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := os.Chown(dir, acct.uid, acct.gid); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

// lastBytes returns the last n bytes of b, trimmed.
func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return bytes.TrimSpace(b)
}
