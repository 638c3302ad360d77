package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nanokms/nanokms/internal/health"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler returns an http.Handler serving reg at /metrics (and nothing
// else: every other path is 404). The handler's own errors are counted in
// reg (promhttp_metric_handler_errors_total); at most 4 scrapes run at
// once.
func Handler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	opts := promhttp.HandlerOpts{
		Registry:            reg,
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}
	if log != nil {
		opts.ErrorLog = slogPrinter{log}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, opts)))
	return mux
}

// slogPrinter passes promhttp's error messages to a structured log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Warn("serving metrics", "error", strings.TrimSpace(fmt.Sprintln(v...)))
}

// Serve serves h on l until ctx ends, then shuts down (in-flight scrapes
// get a second) and returns nil; it returns an error only if serving
// fails. It is health.Serve: one hardened HTTP server (timeouts, header
// limit) for every listener, the metrics listener and the health one.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	return health.Serve(ctx, l, h)
}
