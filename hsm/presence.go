//go:build cgo

package hsm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/nanokms/nanokms/internal/p11uri"
)

// A presence probe asks a fresh process whether the module sees the
// token: the process's own instance of a module may never see a token
// again once it has gone (SoftHSM), so it cannot tell. The probe runs
// this very executable again with presenceEnv set to a presenceSpec;
// package hsm's init then loads the module, looks for the token (no
// login, no PIN: only its presence), prints one line and exits, before
// main or any test starts. A fresh module instance is loaded in the
// process (recover.go) only once a probe saw the token, so that a long
// outage costs one short-lived process per recovery attempt and no
// memory.

// presenceEnv is the environment variable that makes this executable a
// presence probe.
const presenceEnv = "NANOKMS_HSM_PRESENCE_PROBE"

// presenceTimeout bounds a probe (a module may hang on a token that went
// away: a network HSM).
const presenceTimeout = 30 * time.Second

func init() {
	if spec, ok := os.LookupEnv(presenceEnv); ok {
		os.Exit(presenceMain(spec, os.Stdout))
	}
}

// presenceSpec is what a probe looks for. It holds no secret.
type presenceSpec struct {
	Module string `json:"module"`
	Params string `json:"params,omitempty"`
	Label  string `json:"label,omitempty"`
	Serial string `json:"serial,omitempty"`
	URI    string `json:"uri,omitempty"`
}

// Exit statuses of a probe.
const (
	presenceSeen    = 0
	presenceNotSeen = 1
	presenceBadSpec = 2
)

// presenceMain is the probe process: it writes "present", or why not,
// to out and returns its exit status. It never calls C_Finalize either:
// the process ends.
func presenceMain(spec string, out io.Writer) int {
	var ps presenceSpec
	if err := json.Unmarshal([]byte(spec), &ps); err != nil || ps.Module == "" {
		fmt.Fprintf(out, "hsm: bad presence probe request (%v)\n", err)
		return presenceBadSpec
	}
	want := Config{TokenLabel: ps.Label, TokenSerial: ps.Serial}
	if ps.URI != "" {
		u, err := p11uri.Parse(ps.URI)
		if err != nil {
			fmt.Fprintf(out, "hsm: bad presence probe request: %v\n", err)
			return presenceBadSpec
		}
		want.URI = u
	}
	m, err := loadModule(ps.Module, ps.Params)
	if err != nil {
		fmt.Fprintln(out, err)
		return presenceNotSeen
	}
	if _, err := findSlot(traced{p: m}, want); err != nil {
		fmt.Fprintln(out, err)
		return presenceNotSeen
	}
	fmt.Fprintln(out, "present")
	return presenceSeen
}

// selfExecutable is the file a probe runs: this process's executable.
func selfExecutable() (string, error) {
	if runtime.GOOS == "linux" {
		return "/proc/self/exe", nil // works even if the file was replaced or removed
	}
	return os.Executable()
}

// presentInFreshProcess runs a presence probe for the token want of the
// module, with the process's environment (which the module may read:
// SOFTHSM2_CONF), and returns nil if the probe saw the token.
func presentInFreshProcess(ctx context.Context, module, params string, want Config) error {
	ps := presenceSpec{Module: module, Params: params, Label: want.TokenLabel, Serial: want.TokenSerial}
	if want.URI != nil {
		ps.URI = want.URI.String()
	}
	spec, err := json.Marshal(ps)
	if err != nil {
		return err
	}
	exe, err := selfExecutable()
	if err != nil {
		return fmt.Errorf("hsm: presence probe: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), presenceEnv+"="+string(spec))
	var out bytes.Buffer
	cmd.Stdout = &capped{w: &out, n: 1024}
	err = cmd.Run()
	line := strings.TrimSpace(out.String())
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("hsm: presence probe: no answer within %s", presenceTimeout)
	case errors.As(err, &exit) && exit.ExitCode() == presenceNotSeen && line != "":
		return errors.New(line)
	}
	return fmt.Errorf("hsm: presence probe: %w (%q)", err, line)
}

// capped writes at most n bytes to w and drops the rest.
type capped struct {
	w io.Writer
	n int
}

func (c *capped) Write(p []byte) (int, error) {
	k := min(len(p), c.n)
	if k > 0 {
		if _, err := c.w.Write(p[:k]); err != nil {
			return 0, err
		}
		c.n -= k
	}
	return len(p), nil
}
