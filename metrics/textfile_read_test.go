package metrics_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/nanokms/nanokms/metrics"
)

// FuzzParseTextfile: any bytes parse or fail with ErrTextfileGarbled,
// never panic; what parses encodes and parses again to the same series.
func FuzzParseTextfile(f *testing.F) {
	f.Add([]byte("# HELP a b\n# TYPE a gauge\na{store=\"bbolt\"} 1.5\n"))
	f.Add([]byte("a 1\na 2\n"))
	f.Add([]byte("a{x=\"1\",x=\"2\"} 1\n"))
	f.Add([]byte("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fams, err := metrics.ParseTextfile(data)
		if err != nil {
			if !errors.Is(err, metrics.ErrTextfileGarbled) || fams != nil {
				t.Fatalf("%v, %v", fams, err)
			}
			return
		}
		var b bytes.Buffer
		for _, mf := range fams {
			if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
				return // the parser accepts some families the encoder refuses
			}
		}
		again, err := metrics.ParseTextfile(b.Bytes())
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", b.Bytes(), err)
		}
		for name, mf := range fams {
			if len(again[name].GetMetric()) != len(mf.GetMetric()) {
				t.Fatalf("%s: %d series, %d after a round trip", name, len(mf.GetMetric()), len(again[name].GetMetric()))
			}
		}
	})
}
