package hsm

import (
	"bytes"
	"os"

	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The environment of the child process of TestReadPINClearsEnvironBlock.
const (
	pinChildFlag   = "NANOKMS_HSM_TEST_PIN_CHILD"
	pinChildVar    = "NANOKMS_HSM_TEST_ENV_PIN"
	pinChildValue  = "s3cret-pin-9f81c2"
	pinChildShadow = "s3cret-shadow-77ab" // a second, later entry of the same name
	pinNeighbour   = "NANOKMS_HSM_TEST_NEIGHBOUR=kept-as-it-was"
)

// TestReadPINClearsEnvironBlock runs the test binary again as a child
// with the PIN in its initial environment (twice, as a process may be
// started with a duplicated variable), between two other variables. The
// child reads the PIN with ReadPIN and checks /proc/self/environ (what
// other processes of the user see): neither PIN nor the variable's name is
// left in it, and the neighbours are intact.
func TestReadPINClearsEnvironBlock(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Fatalf("the environment block is only cleared on Linux (%s)", runtime.GOOS)
	}
	if os.Getenv(pinChildFlag) == "1" {
		pinEnvironChild(t)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NANOKMS_HSM_TEST_") {
			env = append(env, kv)
		}
	}
	env = append(env, pinNeighbour, pinChildVar+"="+pinChildValue, pinChildFlag+"=1", pinChildVar+"="+pinChildShadow, "NANOKMS_HSM_TEST_LAST=last")
	// os.StartProcess passes the environment as given (exec.Cmd would
	// drop the duplicate).
	out, err := os.CreateTemp(t.TempDir(), "child")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p, err := os.StartProcess(exe, []string{exe, "-test.run=^TestReadPINClearsEnvironBlock$", "-test.count=1", "-test.v"},
		&os.ProcAttr{Env: env, Files: []*os.File{nil, out, out}, Dir: filepath.Dir(exe)})
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(out.Name())
	if !st.Success() || !bytes.Contains(log, []byte("--- PASS: TestReadPINClearsEnvironBlock")) {
		t.Fatalf("the child (%v):\n%s", st, log)
	}
}

func pinEnvironChild(t *testing.T) {
	environ := func() []byte {
		t.Helper()
		b, err := os.ReadFile("/proc/self/environ")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := environ()
	for _, want := range []string{pinChildVar + "=" + pinChildValue, pinChildVar + "=" + pinChildShadow} {
		if !bytes.Contains(before, []byte("\x00"+want+"\x00")) {
			t.Fatalf("the child's environment block lacks %s: the test tests nothing", want[:len(pinChildVar)])
		}
	}
	pin, err := ReadPIN("", pinChildVar)
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Wipe()
	if string(pin.bytes()) != pinChildValue {
		t.Fatal("ReadPIN read another value than the variable's first entry")
	}
	after := environ()
	for what, gone := range map[string]string{"the PIN": pinChildValue, "the second entry's value": pinChildShadow, "the variable's name": pinChildVar + "="} {
		if bytes.Contains(after, []byte(gone)) {
			t.Errorf("/proc/self/environ still holds %s", what)
		}
	}
	if len(after) != len(before) {
		t.Errorf("the environment block changed size: %d bytes, was %d", len(after), len(before))
	}
	for _, kept := range []string{pinNeighbour, pinChildFlag + "=1", "NANOKMS_HSM_TEST_LAST=last"} {
		if !bytes.Contains(after, []byte("\x00"+kept+"\x00")) && !bytes.HasPrefix(after, []byte(kept+"\x00")) {
			t.Errorf("%s is no longer in /proc/self/environ", kept)
		}
	}
	if _, ok := os.LookupEnv(pinChildVar); ok {
		t.Error("the variable is still in the Go environment")
	}
	if v := os.Getenv("NANOKMS_HSM_TEST_NEIGHBOUR"); v != "kept-as-it-was" {
		t.Errorf("the neighbour reads %q", v)
	}
	// A variable the process set itself is not in the block: nothing is
	// written, and ReadPIN still takes and removes it.
	t.Setenv("NANOKMS_HSM_TEST_SET_LATER", "late-pin")
	late, err := ReadPIN("", "NANOKMS_HSM_TEST_SET_LATER")
	if err != nil {
		t.Fatal(err)
	}
	defer late.Wipe()
	if string(late.bytes()) != "late-pin" || !bytes.Equal(environ(), after) {
		t.Error("reading a variable set after start changed the environment block")
	}
	if _, ok := os.LookupEnv("NANOKMS_HSM_TEST_SET_LATER"); ok {
		t.Error("the late variable is still in the Go environment")
	}
}
