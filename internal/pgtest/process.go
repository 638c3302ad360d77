package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"
)

// command prepares program path to run as the server account, in its own
// process group, killed by the kernel if this process dies. A bare name is
// one of PostgreSQL's programs in BinDir.
//
// The parent-death signal fires when the OS thread that started the
// program ends; Go ends a thread only when a goroutine exits while locked
// to it (runtime.LockOSThread), so do not start servers from such a
// goroutine.
func (s *Server) command(ctx context.Context, path string, args ...string) *exec.Cmd {
	if !filepath.IsAbs(path) {
		path = filepath.Join(BinDir, path)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = s.base
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
		Credential: s.acct.cred,
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Minute
	return cmd
}

// initdbArgs are the same for every server, so that one cluster made by
// initdb can be copied for each server of a test binary (see Run).
// --no-sync: the tests crash the server's processes, never the machine.
func initdbArgs(data string) []string {
	return []string{"-D", data, "-U", Superuser, "--auth=trust", "--encoding=UTF8",
		"--locale=C", "--no-sync", "--no-instructions"}
}

// initCluster fills s.data: a copy of the test binary's template cluster
// when Run is in use, else a fresh initdb.
func (s *Server) initCluster(ctx context.Context) error {
	tmpl, err := template(ctx, s)
	if err != nil {
		return err
	}
	cmd := s.command(ctx, "initdb", initdbArgs(s.data)...)
	if tmpl != "" {
		cp, err := exec.LookPath("cp")
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		cmd = s.command(ctx, cp, "-a", tmpl, s.data)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: %s: %w\n%s", filepath.Base(cmd.Path), err, lastBytes(out, 4000))
	}
	return nil
}

// serverArgs is the postgres command line: unix socket only, in s.sock.
func (s *Server) serverArgs() []string {
	onoff := "on"
	if s.opts.NoFsync {
		onoff = "off"
	}
	set := map[string]string{
		"listen_addresses":           "",
		"unix_socket_directories":    s.sock,
		"unix_socket_permissions":    "0700",
		"port":                       strconv.Itoa(Port),
		"max_connections":            "200",
		"shared_buffers":             "16MB",
		"fsync":                      onoff,
		"synchronous_commit":         onoff,
		"full_page_writes":           onoff,
		"dynamic_shared_memory_type": "mmap", // segments in the data dir, removed with it
		"huge_pages":                 "off",
		"jit":                        "off",
		"logging_collector":          "off",
		"log_destination":            "stderr",
		"lc_messages":                "C",
		"timezone":                   "UTC",
		"log_timezone":               "UTC",
	}
	for k, v := range s.opts.Settings {
		set[k] = v
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := []string{"-D", s.data}
	for _, k := range keys {
		args = append(args, "-c", k+"="+set[k])
	}
	return args
}

// startLocked starts the postmaster on s.data and waits until a real
// connection succeeds, the postmaster exits, or ctx ends.
func (s *Server) startLocked(ctx context.Context) error {
	if s.closed {
		return ErrClosed
	}
	if s.cmd != nil {
		return errors.New("pgtest: the server is already running")
	}
	fmt.Fprintf(s.logf, "pgtest: starting postgres\n")
	// The postmaster must outlive ctx: it is stopped by Stop, Kill or Close.
	cmd := s.command(context.Background(), "postgres", s.serverArgs()...)
	cmd.Stdout, cmd.Stderr = s.logf, s.logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited, s.paused = cmd, exited, false
	if err := s.waitReady(ctx); err != nil {
		s.killLocked()
		return fmt.Errorf("%w\nserver log (end):\n%s", err, lastBytes([]byte(s.Log()), 4000))
	}
	return nil
}

// waitReady polls with real connections until one succeeds.
func (s *Server) waitReady(ctx context.Context) error {
	dsn := s.ConnString(Superuser)
	delay := 5 * time.Millisecond
	var last error
	for {
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			return conn.Close(context.Background())
		}
		last = err
		select {
		case <-s.exited:
			return fmt.Errorf("pgtest: postgres exited during start-up (%v); last connection error: %w", s.cmd.ProcessState, last)
		case <-ctx.Done():
			return fmt.Errorf("pgtest: postgres not ready: %w; last connection error: %w", context.Cause(ctx), last)
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// stopLocked asks the postmaster to stop with sig (SIGINT: fast shutdown)
// and waits; if it has not exited after StopTimeout, every process of the
// server is killed and an error is returned. The postmaster exits only
// after all its children, so any process left then is an error too.
func (s *Server) stopLocked(sig syscall.Signal) error {
	if s.cmd == nil {
		return nil
	}
	if s.paused {
		s.signalAllLocked(syscall.SIGCONT)
		s.paused = false
	}
	pm := s.cmd.Process.Pid
	s.cmd.Process.Signal(sig) // through a pidfd: never a reused pid
	select {
	case <-s.exited:
	case <-time.After(s.opts.StopTimeout):
		err := fmt.Errorf("pgtest: postgres did not stop within %v after %v: killed", s.opts.StopTimeout, sig)
		return errors.Join(err, s.killLocked())
	}
	s.cmd, s.exited = nil, nil
	left, err := s.reap()
	if len(left) > 0 {
		err = errors.Join(fmt.Errorf("pgtest: processes %v outlived postmaster %d: killed", left, pm), err)
	}
	return err
}

// killLocked SIGKILLs the postmaster (so that it forks no more) and then
// every process it started, as a crash of the database host would, and
// waits until they are gone.
func (s *Server) killLocked() error {
	if s.cmd == nil {
		return nil
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.cmd, s.exited, s.paused = nil, nil, false
	_, err := s.reap()
	return err
}

// reap SIGKILLs the server's remaining processes and waits (bounded by
// StopTimeout) until they are gone; it returns those it found.
func (s *Server) reap() ([]int, error) {
	deadline := time.Now().Add(s.opts.StopTimeout)
	var found []int
	for {
		fds := s.openProcs()
		if len(fds) == 0 {
			return found, nil
		}
		for pid, fd := range fds {
			found = append(found, pid)
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		}
		for _, fd := range fds {
			waitExit(fd, deadline)
			unix.Close(fd)
		}
		if time.Now().After(deadline) {
			if left := s.Processes(); len(left) > 0 {
				return found, fmt.Errorf("pgtest: processes %v still alive after SIGKILL", left)
			}
		}
	}
}

// waitExit waits until the process of pidfd fd exits or deadline passes.
func waitExit(fd int, deadline time.Time) {
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms <= 0 {
			return
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if n != 0 || (err != nil && !errors.Is(err, unix.EINTR)) {
			return
		}
	}
}

// pauseLocked stops the postmaster, waits until it is stopped (so that it
// forks no more), then stops every other process of the server. A process
// is stopped before it next runs: nothing is answered after Pause returns.
func (s *Server) pauseLocked() error {
	pm := s.cmd.Process.Pid
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pgtest: SIGSTOP: %w", err)
	}
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pm, &info, unix.WSTOPPED|unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	s.paused = true
	s.signalAllLocked(syscall.SIGSTOP)
	return nil
}

// signalAllLocked sends sig to every process of the server.
func (s *Server) signalAllLocked(sig syscall.Signal) {
	for _, fd := range s.openProcs() {
		unix.PidfdSendSignal(fd, sig, nil, 0)
		unix.Close(fd)
	}
}

// Processes lists the live processes of the server: the postmaster and
// every process it started. PostgreSQL's children each start their own
// process group and session, and after a crash they are no longer the
// postmaster's children, so they are found by their working directory,
// which PostgreSQL sets to the data directory.
func (s *Server) Processes() []int {
	var pids []int
	for pid, fd := range s.openProcs() {
		pids = append(pids, pid)
		unix.Close(fd)
	}
	sort.Ints(pids)
	return pids
}

// openProcs returns a pidfd for each live process of the server, checked
// after opening so that a reused pid is never signalled.
func (s *Server) openProcs() map[int]int {
	if s.dataReal == "" {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	fds := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !s.ownsProc(pid) {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone
		}
		if !s.ownsProc(pid) {
			unix.Close(fd)
			continue
		}
		fds[pid] = fd
	}
	return fds
}

// ownsProc reports whether pid is a live process working in the data
// directory (a zombie has no working directory).
func (s *Server) ownsProc(pid int) bool {
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	return err == nil && strings.TrimSuffix(cwd, " (deleted)") == s.dataReal
}

// removeStaleShm removes the System V segment a killed postmaster leaves
// behind (a clean shutdown removes it, and the next start on the same data
// directory would reuse it). Its id is on line 7 of postmaster.pid.
func (s *Server) removeStaleShm() error {
	f, err := os.Open(filepath.Join(s.data, "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if n != 7 {
			continue
		}
		fs := strings.Fields(sc.Text())
		if len(fs) != 2 {
			return nil
		}
		id, err := strconv.Atoi(fs[1])
		if err != nil {
			return nil
		}
		var desc unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil || desc.Nattch != 0 {
			return nil // gone already, or still attached: not ours to remove
		}
		if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
			return fmt.Errorf("pgtest: remove shared memory segment %d: %w", id, err)
		}
		return nil
	}
	return nil
}
