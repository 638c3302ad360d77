package main

import (
	"math"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/nanokms/nanokms/metrics"
)

// cmdTextfile implements `textfile FILE SERIES OP VALUE`: read the
// node_exporter textfile FILE (strictly, with metrics.ReadTextfile) and
// fail unless the gauge SERIES (name{label="value",...} as the file
// writes it, the labels sorted) compares to VALUE with OP (==, !=, <, <=,
// >, >=). VALUE is a number or another SERIES of FILE. With !, fail if
// SERIES is in FILE at all (OP and VALUE are then not given).
func cmdTextfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		if len(args) != 2 {
			ts.Fatalf("usage: ! textfile FILE SERIES")
		}
		if _, ok := textfileSeries(ts, args[0])[args[1]]; ok {
			ts.Fatalf("%s holds %s", args[0], args[1])
		}
		return
	}
	if len(args) != 4 {
		ts.Fatalf("usage: textfile FILE SERIES OP VALUE")
	}
	series := textfileSeries(ts, args[0])
	value := func(s string) float64 {
		if v, ok := series[s]; ok {
			return v
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			ts.Fatalf("%s: no series %s (it holds %v)", args[0], s, series)
		}
		return v
	}
	a, b := value(args[1]), value(args[3])
	var ok bool
	switch args[2] {
	case "==":
		ok = a == b
	case "!=":
		ok = a != b
	case "<":
		ok = a < b
	case "<=":
		ok = a <= b
	case ">":
		ok = a > b
	case ">=":
		ok = a >= b
	default:
		ts.Fatalf("textfile: unknown comparison %q", args[2])
	}
	if !ok || math.IsNaN(a) {
		ts.Fatalf("%s: %s is %v, not %s %s (%v)", args[0], args[1], a, args[2], args[3], b)
	}
}

// textfileSeries returns every gauge series of FILE by name and labels.
func textfileSeries(ts *testscript.TestScript, file string) map[string]float64 {
	fams, err := metrics.ReadTextfile(ts.MkAbs(file))
	ts.Check(err)
	out := map[string]float64{}
	for name, mf := range fams {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			key := name
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}
