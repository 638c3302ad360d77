//go:build linux

package hsm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// maxEnvironBlock bounds the environment block clearEnvironEntries reads.
const maxEnvironBlock = 64 << 20

// clearEnvironEntries overwrites with zero bytes, in place, every entry
// name=… of the process's initial environment block: the memory between
// env_start and env_end (fields 50 and 51 of /proc/self/stat), on the
// stack the kernel set up at exec, which is what /proc/PID/environ shows
// to other processes for the process's whole life. os.Unsetenv cannot
// reach it: Go keeps its own copies of the strings (and the C library's
// unsetenv only drops a pointer to them).
//
// It reads and writes that block through /proc/self/mem, at offsets it
// has checked lie within [env_start, env_end), and nothing else; the
// entries of other variables and their terminating zero bytes are left as
// they are, so the block keeps its size and every other variable reads as
// before. A variable the process set itself after it started is not in
// the block, and an entry not found is not an error.
func clearEnvironEntries(name string) error {
	start, end, err := environBlock()
	if err != nil {
		return err
	}
	if end <= start {
		return nil // no environment
	}
	if end-start > maxEnvironBlock {
		return fmt.Errorf("hsm: the environment block is %d bytes, more than %d", end-start, maxEnvironBlock)
	}
	mem, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("hsm: opening the process's memory: %w", err)
	}
	defer mem.Close()
	block := make([]byte, end-start)
	if _, err := mem.ReadAt(block, start); err != nil {
		return fmt.Errorf("hsm: reading the environment block: %w", err)
	}
	prefix := []byte(name + "=")
	var zeros []byte
	for off := 0; off < len(block); {
		n := bytes.IndexByte(block[off:], 0)
		if n < 0 {
			n = len(block) - off // the last entry without its zero byte
		}
		if entry := block[off : off+n]; bytes.HasPrefix(entry, prefix) {
			if cap(zeros) < n {
				zeros = make([]byte, n)
			}
			// off+n <= len(block): the write stays within the block.
			if _, err := mem.WriteAt(zeros[:n], start+int64(off)); err != nil {
				clear(block)
				return fmt.Errorf("hsm: clearing %s in the environment block: %w", name, err)
			}
		}
		off += n + 1
	}
	clear(block)
	return nil
}

// environBlock returns env_start and env_end from /proc/self/stat.
func environBlock() (start, end int64, err error) {
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("hsm: reading /proc/self/stat: %w", err)
	}
	// The fields after the command name (field 2, in parentheses, which
	// may hold spaces and parentheses itself) start with field 3.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, errors.New("hsm: /proc/self/stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	const first = 3
	if len(f) < 51-first+1 {
		return 0, 0, fmt.Errorf("hsm: /proc/self/stat has %d fields, want 51 (env_start, env_end: Linux 3.5 or later)", len(f)+first-1)
	}
	if start, err = strconv.ParseInt(f[50-first], 10, 64); err == nil {
		end, err = strconv.ParseInt(f[51-first], 10, 64)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("hsm: /proc/self/stat: env_start, env_end: %w", err)
	}
	return start, end, nil
}
