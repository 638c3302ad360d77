package hsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPIN(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name      string
		file, env string
		setEnv    *string
		want      string
		wantError bool
	}{
		{name: "file", file: write("a", "1234", 0o600), want: "1234"},
		{name: "file LF", file: write("b", "1234\n", 0o600), want: "1234"},
		{name: "file CRLF", file: write("c", "1234\r\n", 0o400), want: "1234"},
		{name: "file keeps inner spaces", file: write("d", " 12 34 \n", 0o600), want: " 12 34 "},
		{name: "file empty", file: write("e", "\n", 0o600), wantError: true},
		{name: "file world readable", file: write("f", "1234", 0o644), wantError: true},
		{name: "file group readable", file: write("f2", "1234", 0o640), wantError: true},
		{name: "file too long", file: write("g", string(make([]byte, maxPINLen+1)), 0o600), wantError: true},
		{name: "file missing", file: filepath.Join(dir, "none"), wantError: true},
		{name: "file is a directory", file: dir, wantError: true},
		{name: "env", env: "NANOKMS_TEST_PIN", setEnv: ptr("5678"), want: "5678"},
		{name: "env unset", env: "NANOKMS_TEST_PIN_UNSET", wantError: true},
		{name: "env empty", env: "NANOKMS_TEST_PIN", setEnv: ptr(""), wantError: true},
		{name: "both", file: write("h", "1", 0o600), env: "X", wantError: true},
		{name: "neither", wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setEnv != nil {
				t.Setenv(tt.env, *tt.setEnv)
			}
			pin, err := ReadPIN(tt.file, tt.env)
			if tt.wantError {
				if err == nil {
					pin.Wipe()
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer pin.Wipe()
			if got := string(pin.bytes()); got != tt.want {
				t.Fatalf("PIN %q, want %q", got, tt.want)
			}
			if tt.env != "" {
				if _, ok := os.LookupEnv(tt.env); ok {
					t.Error("the PIN variable is still in the environment")
				}
			}
		})
	}
}

func ptr(s string) *string { return &s }

// TestReadPINFileModes: a PIN file is accepted only with no permission
// bit for its group or other users; a refusal is a ConfigError naming the
// file and the fix.
func TestReadPINFileModes(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o700, true},
		{0o640, false}, {0o660, false}, {0o620, false}, {0o610, false}, {0o440, false},
		{0o604, false}, {0o602, false}, {0o601, false}, {0o644, false}, {0o666, false}, {0o777, false},
	} {
		t.Run(fmt.Sprintf("%04o", tt.mode), func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("pin-%04o", tt.mode))
			if err := os.WriteFile(path, []byte("1234\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			pin, err := ReadPIN(path, "")
			if tt.mode&0o400 == 0 && tt.ok {
				t.Fatal("bad table: an unreadable file cannot be accepted")
			}
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				pin.Wipe()
				return
			}
			if err == nil {
				pin.Wipe()
				t.Fatal("accepted")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.Contains(ce.Reason, path) || !strings.Contains(ce.Reason, "chmod 600") ||
				!strings.Contains(ce.Reason, fmt.Sprintf("mode %04o", tt.mode)) {
				t.Fatalf("refusal %v, want a ConfigError naming %s, its mode and chmod 600", err, path)
			}
		})
	}
}

func TestPINNeverPrinted(t *testing.T) {
	pin, err := NewPIN([]byte("secret-pin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(pin), fmt.Sprintf("%v %+v %#v %s", pin, pin, pin, pin)} {
		if strings.Contains(s, "secret-pin") {
			t.Fatalf("PIN printed: %s", s)
		}
	}
	pin.Wipe()
	pin.Wipe() // twice is fine
	if pin.Len() != 0 {
		t.Fatal("Len after Wipe")
	}
	var ce *ConfigError
	if _, err := NewPIN(nil); !errors.As(err, &ce) {
		t.Fatalf("NewPIN(nil) = %v", err)
	}
}
