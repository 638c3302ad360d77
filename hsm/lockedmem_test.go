package hsm

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// lockedKB returns the process's locked memory in kB (Linux), or -1.
func lockedKB(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmLck:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return -1
}

func TestLockedMem(t *testing.T) {
	before := lockedKB(t)
	m, err := newLockedMem(3 * 4096)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.b) != 3*4096 {
		t.Fatalf("len %d", len(m.b))
	}
	for i := range m.b {
		m.b[i] = 0xA5
	}
	if memLocked && before >= 0 {
		if after := lockedKB(t); after < before+12 {
			t.Fatalf("VmLck went from %d kB to %d kB, want +12", before, after)
		}
	}
	m.free()
	m.free() // twice is fine
	if m.b != nil {
		t.Fatal("buffer still reachable after free")
	}
	if memLocked && before >= 0 {
		if after := lockedKB(t); after != before {
			t.Fatalf("VmLck %d kB after free, want %d", after, before)
		}
	}
}
