package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxDSNLen bounds a connection string file.
const maxDSNLen = 8 << 10

// DSNSourceError is returned when the connection string of a PostgreSQL
// database (the signers', the gateway's) cannot be read from where a flag
// or a configuration key says. It never quotes the connection string (it may hold a
// password).
type DSNSourceError struct {
	// Source is the flag or the key naming the source: "--pg-dsn-file",
	// "signer.postgres.dsn_env".
	Source string
	// Path is the file's path, for a file; "" for a variable.
	Path string
	// Err says what is wrong.
	Err error
}

func (e *DSNSourceError) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("%s %s: %v", e.Source, e.Path, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Source, e.Err)
}

func (e *DSNSourceError) Unwrap() error { return e.Err }

// ReadDSNEnv reads a connection string from the environment variable
// name, which source (a flag or a key) names.
func ReadDSNEnv(source, name string) (string, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return "", WithHint(&DSNSourceError{Source: source, Err: fmt.Errorf("environment variable %s is not set or empty", name)},
			"give the name of the variable holding the connection string, not the string itself")
	}
	return v, nil
}

// ReadDSNFile reads a connection string from the file path, which source
// (a flag or a key) names: a regular file that only its owner may read or
// write, of one line. whose names the database in the hint ("the
// signers' database").
func ReadDSNFile(source, path, whose string) (string, error) {
	fail := func(err error) (string, error) {
		return "", WithHint(&DSNSourceError{Source: source, Path: path, Err: err}, "the file holds the connection string of "+whose+", mode 0600")
	}
	fh, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fail(err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return fail(err)
	}
	switch {
	case !st.Mode().IsRegular():
		return fail(errors.New("not a regular file"))
	case st.Mode().Perm()&0o077 != 0:
		return fail(fmt.Errorf("accessible to users other than its owner (mode %04o): chmod 600 it", st.Mode().Perm()))
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxDSNLen+1))
	if err != nil {
		return fail(err)
	}
	defer clear(data)
	if len(data) > maxDSNLen {
		return fail(fmt.Errorf("longer than %d bytes", maxDSNLen))
	}
	data = bytes.TrimSuffix(bytes.TrimSuffix(data, []byte("\n")), []byte("\r"))
	if len(bytes.TrimSpace(data)) == 0 {
		return fail(errors.New("empty"))
	}
	if bytes.ContainsAny(data, "\n\x00") {
		return fail(errors.New("more than one line"))
	}
	return string(data), nil
}
