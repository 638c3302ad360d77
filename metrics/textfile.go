package metrics

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// DefaultTextfileInterval is how often RunTextfile rewrites the file when
// no interval is given. node_exporter reads the file on every scrape.
const DefaultTextfileInterval = 15 * time.Second

// WriteTextfile writes what g gathers to path in the Prometheus text
// exposition format, for the node_exporter textfile collector. The write
// is atomic: the metrics go to a temporary file in the same directory
// (a hidden name not ending in .prom, which the collector ignores), which
// is synced and renamed over path, and the directory is synced. The file
// is mode 0644: the collector runs as another user.
func WriteTextfile(g prometheus.Gatherer, path string) (err error) {
	if !strings.HasSuffix(path, ".prom") {
		return fmt.Errorf("metrics: textfile %s: the name must end in .prom", path)
	}
	families, gerr := g.Gather()
	if gerr != nil && len(families) == 0 {
		return fmt.Errorf("metrics: gathering: %w", gerr)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("metrics: textfile: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriter(tmp)
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return fmt.Errorf("metrics: textfile: encoding %s: %w", mf.GetName(), err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("metrics: textfile: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("metrics: textfile: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("metrics: textfile: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("metrics: textfile: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("metrics: textfile: %w", err)
	}
	if d, derr := os.Open(dir); derr == nil {
		// Best effort: the rename is atomic either way; syncing the
		// directory makes it durable.
		_ = d.Sync()
		d.Close()
	}
	if gerr != nil {
		return fmt.Errorf("metrics: gathering (the rest was written): %w", gerr)
	}
	return nil
}

// RunTextfile writes g to path at once, then every interval (0 means
// DefaultTextfileInterval), and a last time when ctx ends; then it
// returns nil. Write errors are passed to onError (nil ignores them) and
// do not stop it: the next tick tries again.
func RunTextfile(ctx context.Context, g prometheus.Gatherer, path string, interval time.Duration, onError func(error)) error {
	if interval <= 0 {
		interval = DefaultTextfileInterval
	}
	if !strings.HasSuffix(path, ".prom") {
		return fmt.Errorf("metrics: textfile %s: the name must end in .prom", path)
	}
	write := func() {
		if err := WriteTextfile(g, path); err != nil && onError != nil {
			onError(err)
		}
	}
	write()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			write()
			return nil
		case <-t.C:
			write()
		}
	}
}

// StartTextfile runs RunTextfile in the background and returns a function
// that waits for its last write (after ctx ends). With an empty path it
// does nothing and the function returns at once.
func StartTextfile(ctx context.Context, g prometheus.Gatherer, path string, interval time.Duration, onError func(error)) (wait func()) {
	if path == "" {
		return func() {}
	}
	done := make(chan error, 1)
	go func() { done <- RunTextfile(ctx, g, path, interval, onError) }()
	return func() {
		if err := <-done; err != nil && onError != nil {
			onError(err)
		}
	}
}
