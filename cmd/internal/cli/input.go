package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/nanokms/nanokms/nano"
)

// MaxInputLen bounds what a command reads from a file or standard input.
const MaxInputLen = 1 << 20

// ReadInput reads the whole of the named file, or stdin when name is "" or
// "-", up to MaxInputLen bytes.
func ReadInput(e *Env, name string) ([]byte, error) {
	return readNamed(e, name, name)
}

// ReadSecretInput is ReadInput for a file named by flag that holds a
// secret: errors name the flag, never the path (which could itself be a
// secret pasted in the wrong place).
func ReadSecretInput(e *Env, flag, name string) ([]byte, error) {
	return readNamed(e, name, flag)
}

func readNamed(e *Env, name, label string) ([]byte, error) {
	var r io.Reader = e.Stdin
	if name == "" || name == "-" {
		label = "standard input"
	} else {
		f, err := os.Open(name)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("opening %s: %w", label, pe.Err)
			}
			return nil, fmt.Errorf("opening %s: %w", label, err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxInputLen+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", label, err)
	}
	if len(data) > MaxInputLen {
		return nil, fmt.Errorf("reading %s: more than %d bytes", label, MaxInputLen)
	}
	return data, nil
}

// ReadBlock reads a state block in a node's JSON form from file (or
// standard input).
func ReadBlock(e *Env, file string) (nano.ParsedBlock, error) {
	data, err := ReadInput(e, file)
	if err != nil {
		return nano.ParsedBlock{}, err
	}
	pb, err := nano.ParseBlockJSON(data)
	if err != nil {
		return nano.ParsedBlock{}, WithHint(err, "the input must be a state block in a node's JSON form")
	}
	return pb, nil
}

// PrintJSON writes v as indented JSON.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// LogLevel parses a service's log level setting, info when it is not one.
func LogLevel(name string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(name)); err != nil {
		return slog.LevelInfo
	}
	return l
}
