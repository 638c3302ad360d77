package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// tmpl is the test binary's template cluster while Run is running.
var tmpl struct {
	mu      sync.Mutex
	running bool   // inside Run
	dir     string // owned by the server account; "" until the first server
	data    string // dir/data once initdb has made it
}

// Run runs the tests (m.Run) so that initdb runs once for the test binary:
// the first server's cluster is made in a template directory and every
// server starts from a copy of it. The template is removed when the tests
// end. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
func Run(m *testing.M) int {
	tmpl.mu.Lock()
	tmpl.running = true
	tmpl.mu.Unlock()
	code := m.Run()
	tmpl.mu.Lock()
	defer tmpl.mu.Unlock()
	tmpl.running = false
	if tmpl.dir != "" {
		if err := os.RemoveAll(tmpl.dir); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: remove template: %v\n", err)
			code = max(code, 1)
		}
		tmpl.dir, tmpl.data = "", ""
	}
	return code
}

// template returns the template cluster to copy for s, making it on first
// use, or "" when Run is not in use (s then runs initdb itself).
func template(ctx context.Context, s *Server) (string, error) {
	tmpl.mu.Lock()
	defer tmpl.mu.Unlock()
	if !tmpl.running {
		return "", nil
	}
	if tmpl.data != "" {
		return tmpl.data, nil
	}
	if tmpl.dir == "" {
		dir, err := makeBase(s.acct)
		if err != nil {
			return "", err
		}
		tmpl.dir = dir
	}
	data := filepath.Join(tmpl.dir, "data")
	os.RemoveAll(data) // a failed earlier try
	maker := &Server{acct: s.acct, base: tmpl.dir}
	cmd := maker.command(ctx, "initdb", initdbArgs(data)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("pgtest: initdb: %w\n%s", err, lastBytes(out, 4000))
	}
	tmpl.data = data
	return data, nil
}
