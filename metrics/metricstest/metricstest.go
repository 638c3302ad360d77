// Package metricstest reads collectors' values in the metrics tests of
// every role. It is for tests only.
package metricstest

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nanokms/nanokms/nano"
)

// histCount returns a histogram's sample count and sum.
// HistCount returns a histogram's sample count and sum.
func HistCount(t *testing.T, h prometheus.Observer) (uint64, float64) {
	t.Helper()
	c, ok := h.(prometheus.Metric)
	if !ok {
		t.Fatalf("%T is not a metric", h)
	}
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// ToFloat returns a counter's or a gauge's value.
func ToFloat(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// CountSeries returns how many series c has.
func CountSeries(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}

// Work is a work provider that answers at once (nonce 1), or fails with Err.
type Work struct{ Err error }

// Generate implements the gateway's work provider.
func (w Work) Generate(context.Context, nano.Hash, uint64) (nano.Work, error) { return 1, w.Err }
