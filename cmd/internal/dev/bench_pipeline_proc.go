package dev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pipeProc is one process of the pipeline: started with its log file,
// waited for by what it logs or answers, paused and resumed between
// measurements, stopped at the end.
type pipeProc struct {
	name   string // for messages: "gateway", "relay", ...
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error // the exit status, once exited is closed
}

// startProc starts bin (run under the name argv0, which a test binary
// doubling as it needs) with args, its output to logPath.
func startProc(name, bin, argv0, logPath string, args ...string) (*pipeProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Args[0] = argv0
	cmd.Stdout, cmd.Stderr = logf, logf
	// The process dies with the benchmark where the system allows it
	// (Linux's Pdeathsig, set by name so that this builds everywhere).
	attr := &syscall.SysProcAttr{}
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting the %s: %w", name, err)
	}
	p := &pipeProc{name: name, cmd: cmd, log: logf, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// pid returns the process id.
func (p *pipeProc) pid() int { return p.cmd.Process.Pid }

// logText returns what the process logged so far.
func (p *pipeProc) logText() string {
	data, _ := os.ReadFile(p.log.Name())
	return string(data)
}

// waitUntil calls ready with a bounded backoff until it is true, the
// process exits, ctx ends or limit passes.
func (p *pipeProc) waitUntil(ctx context.Context, limit time.Duration, what string, ready func() bool) error {
	deadline := time.Now().Add(limit)
	for pause := 5 * time.Millisecond; !ready(); pause = min(2*pause, 200*time.Millisecond) {
		select {
		case <-p.exited:
			return fmt.Errorf("the %s exited (%v) before %s; its log %s ends:\n%s", p.name, p.err, what, p.log.Name(), tailLines(p.logText(), 10))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s did not %s within %s; its log is %s", p.name, what, limit, p.log.Name())
		}
	}
	return nil
}

// waitLogged waits until the log holds s.
func (p *pipeProc) waitLogged(ctx context.Context, s string) error {
	return p.waitUntil(ctx, benchPipelineTimeout, "log "+s, func() bool { return strings.Contains(p.logText(), s) })
}

func (p *pipeProc) signal(sig syscall.Signal) {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// stop ends the process: SIGTERM (after SIGCONT, were it paused), then
// SIGKILL if it has not gone within 15 s.
func (p *pipeProc) stop() error {
	if p == nil {
		return nil
	}
	p.signal(syscall.SIGCONT)
	p.signal(syscall.SIGTERM)
	var err error
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		err = fmt.Errorf("the %s did not stop within 15 s of SIGTERM: killed", p.name)
	}
	return errors.Join(err, p.log.Close())
}

// cpuTime returns the process's user and system CPU time so far, from
// /proc/PID/stat (in clock ticks of 1/100 s: USER_HZ on Linux).
func (p *pipeProc) cpuTime() (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid()) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("reading the %s's CPU time: %w (this benchmark reads /proc/PID/stat: Linux)", p.name, err)
	}
	return parseProcStatCPU(data)
}

// parseProcStatCPU reads utime + stime from the contents of /proc/PID/stat:
// the 14th and 15th fields, counted past the command name, which is in
// parentheses and may hold spaces and parentheses itself.
func parseProcStatCPU(data []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("/proc/PID/stat: no command name")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 { // state is field 3, stime field 15
		return 0, fmt.Errorf("/proc/PID/stat: %d fields after the command name", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("/proc/PID/stat: CPU time %q", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100), nil
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
