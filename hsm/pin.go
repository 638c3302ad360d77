package hsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxPINLen bounds a PIN read from a file or the environment.
const maxPINLen = 256

// PIN is a token user PIN held in locked memory. Its String and GoString
// never print it. Call Wipe when done; Open keeps its own copy, so the
// caller may wipe its PIN as soon as Open returns.
type PIN struct {
	mem *lockedMem
	n   int
}

// NewPIN copies b into a new PIN. The caller wipes b. An empty b is
// refused.
func NewPIN(b []byte) (*PIN, error) {
	if len(b) == 0 {
		return nil, &ConfigError{Field: "PIN", Reason: "empty"}
	}
	if len(b) > maxPINLen {
		return nil, &ConfigError{Field: "PIN", Reason: fmt.Sprintf("longer than %d bytes", maxPINLen)}
	}
	m, err := newLockedMem(len(b))
	if err != nil {
		return nil, err
	}
	copy(m.b, b)
	return &PIN{mem: m, n: len(b)}, nil
}

// ReadPIN reads the user PIN from exactly one source: the file at path file,
// or the environment variable envVar. A PIN is never taken from the command
// line (argv is readable by every user of the host).
//
// The file must be a regular file accessible to its owner only (mode 0600
// or 0400: no permission bit for its group or other users); one trailing
// newline (LF or CRLF) is removed.
//
// The environment variable is removed once read: from Go's environment
// (so child processes do not inherit it) and, on Linux, from the process's
// environment block, which /proc/PID/environ shows for the process's whole
// life: every entry of that name there is overwritten with zero bytes in
// place (other variables are left as they were). If that cannot be done,
// ReadPIN returns an error and no PIN.
func ReadPIN(file, envVar string) (*PIN, error) {
	switch {
	case file != "" && envVar != "":
		return nil, &ConfigError{Field: "PIN", Reason: "give a PIN file or an environment variable, not both"}
	case file != "":
		return readPINFile(file)
	case envVar != "":
		v, ok := os.LookupEnv(envVar)
		if !ok {
			return nil, &ConfigError{Field: "PIN", Reason: "environment variable " + envVar + " is not set"}
		}
		b := []byte(v)
		defer clear(b)
		if err := os.Unsetenv(envVar); err != nil {
			return nil, fmt.Errorf("hsm: removing %s from the environment: %w", envVar, err)
		}
		if err := clearEnvironEntries(envVar); err != nil {
			return nil, fmt.Errorf("hsm: removing %s from the process's environment block: %w", envVar, err)
		}
		return NewPIN(b)
	}
	return nil, &ConfigError{Field: "PIN", Reason: "no source: give a PIN file or an environment variable"}
}

func readPINFile(path string) (*PIN, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("hsm: PIN file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("hsm: PIN file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, &ConfigError{Field: "PIN", Reason: "PIN file " + path + " is not a regular file"}
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, &ConfigError{Field: "PIN", Reason: fmt.Sprintf("PIN file %s is accessible to users other than its owner (mode %04o): chmod 600 it", path, st.Mode().Perm())}
	}
	var buf [maxPINLen + 3]byte
	defer clear(buf[:])
	n, err := io.ReadFull(f, buf[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("hsm: PIN file: %w", err)
	}
	b := buf[:n]
	if n == len(buf) {
		return nil, &ConfigError{Field: "PIN", Reason: fmt.Sprintf("PIN file holds more than %d bytes", maxPINLen)}
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return NewPIN(b)
}

// Len returns the PIN's length in bytes (0 after Wipe).
func (p *PIN) Len() int {
	if p == nil || p.mem == nil {
		return 0
	}
	return p.n
}

// bytes returns the PIN in place; callers must not retain it.
func (p *PIN) bytes() []byte { return p.mem.b[:p.n] }

// Wipe overwrites the PIN and releases its memory. It is safe to call twice.
func (p *PIN) Wipe() {
	if p == nil {
		return
	}
	p.mem.free()
	p.mem, p.n = nil, 0
}

// String never prints the PIN.
func (*PIN) String() string { return "hsm.PIN(REDACTED)" }

// GoString never prints the PIN.
func (*PIN) GoString() string { return "hsm.PIN(REDACTED)" }
