package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const (
	rulesFile     = "prometheus/nanokms.rules.yml"
	rulesTestFile = "prometheus/nanokms.rules.test.yml"
	metricsDoc    = "../docs/METRICS.md"
)

// alertRule is one alerting rule of rulesFile, read by parseRules.
type alertRule struct {
	name        string
	start, end  int // its lines in the file, [start, end)
	indent      int // of its "- alert:" line
	exprStart   int // its expr's lines, [exprStart, exprEnd)
	exprEnd     int
	expr        string
	labels      map[string]string
	annotations map[string]string
}

var (
	alertLine = regexp.MustCompile(`^( *)- alert: ([A-Za-z0-9_]+)$`)
	nameLine  = regexp.MustCompile(`^( *)- name: ([A-Za-z0-9_-]+)$`)
	keyLine   = regexp.MustCompile(`^( *)([a-z_]+):(?: (.*))?$`)
)

func indentOf(line string) int { return len(line) - len(strings.TrimLeft(line, " ")) }

func blankOrComment(line string) bool {
	s := strings.TrimSpace(line)
	return s == "" || strings.HasPrefix(s, "#")
}

// item returns the end of the sequence item starting at lines[start]
// (indented ind): the first line after it that is indented no more than
// ind, trailing blank lines and comments left out.
func item(lines []string, start, ind int) int {
	end := start + 1
	for end < len(lines) && (blankOrComment(lines[end]) || indentOf(lines[end]) > ind) {
		end++
	}
	for end > start+1 && blankOrComment(lines[end-1]) {
		end--
	}
	return end
}

// yamlScalar returns the value of a plain or double-quoted YAML scalar.
func yamlScalar(t *testing.T, where, v string) string {
	t.Helper()
	if strings.HasPrefix(v, `"`) {
		u, err := strconv.Unquote(v)
		if err != nil {
			t.Fatalf("%s: %s is not a double-quoted string this test reads: %v", where, v, err)
		}
		return u
	}
	return v
}

// parseRules reads the alerting rules of rulesFile. It reads the layout
// the file keeps (one key per line; expr plain or a block scalar; labels
// and annotations one per line) and fails on anything else, so that what
// it checks is what promtool reads.
func parseRules(t *testing.T) ([]string, []alertRule) {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var rules []alertRule
	for i, line := range lines {
		m := alertLine.FindStringSubmatch(line)
		if m == nil {
			if strings.Contains(line, "- alert:") || strings.Contains(line, "record:") {
				t.Fatalf("%s:%d: not an alert line this test reads: %q", rulesFile, i+1, line)
			}
			continue
		}
		r := alertRule{name: m[2], start: i, indent: len(m[1]), labels: map[string]string{}, annotations: map[string]string{}}
		r.end = item(lines, i, r.indent)
		keyIndent := r.indent + 2
		for j := i + 1; j < r.end; j++ {
			if blankOrComment(lines[j]) {
				continue
			}
			where := fmt.Sprintf("%s:%d", rulesFile, j+1)
			k := keyLine.FindStringSubmatch(lines[j])
			if k == nil || len(k[1]) != keyIndent {
				t.Fatalf("%s: not a key of alert %s: %q", where, r.name, lines[j])
			}
			sub := item(lines, j, keyIndent)
			switch key, value := k[2], k[3]; key {
			case "expr":
				r.exprStart, r.exprEnd = j, sub
				switch value {
				case "|", "|-", ">", ">-":
					var b []string
					for _, l := range lines[j+1 : sub] {
						b = append(b, strings.TrimSpace(l))
					}
					r.expr = strings.Join(b, "\n")
				default:
					r.expr = value
				}
			case "labels", "annotations":
				if value != "" {
					t.Fatalf("%s: %s of %s must be one per line", where, key, r.name)
				}
				for n := j + 1; n < sub; n++ {
					if blankOrComment(lines[n]) {
						continue
					}
					kv := keyLine.FindStringSubmatch(lines[n])
					if kv == nil || len(kv[1]) != keyIndent+2 || kv[3] == "" {
						t.Fatalf("%s:%d: not a %s entry: %q", rulesFile, n+1, key, lines[n])
					}
					v := yamlScalar(t, fmt.Sprintf("%s:%d", rulesFile, n+1), kv[3])
					if key == "labels" {
						r.labels[kv[2]] = v
					} else {
						r.annotations[kv[2]] = v
					}
				}
			case "for", "keep_firing_for":
				if sub != j+1 {
					t.Fatalf("%s: %s takes one line", where, key)
				}
			default:
				t.Fatalf("%s: unexpected key %q in alert %s", where, key, r.name)
			}
			j = sub - 1
		}
		if r.expr == "" {
			t.Fatalf("%s:%d: alert %s has no expr", rulesFile, i+1, r.name)
		}
		rules = append(rules, r)
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no alert", rulesFile)
	}
	return lines, rules
}

// runPromtool runs promtool in dir and returns its output, failing the
// test if it cannot be run at all.
func runPromtool(t *testing.T, promtool, dir string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(promtool, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("promtool %s: %v", strings.Join(args, " "), err)
		}
	}
	return string(out), err == nil
}

// TestAlertRulesPromtool checks the rules with promtool check rules and
// runs their unit tests with promtool test rules.
func TestAlertRulesPromtool(t *testing.T) {
	promtool := ensurePromtool(t)
	_, rules := parseRules(t)
	out, ok := runPromtool(t, promtool, ".", "check", "rules", rulesFile)
	if !ok {
		t.Fatalf("promtool check rules %s:\n%s", rulesFile, out)
	}
	// promtool counts the rules it read: the same as this test's reading.
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(rules)); !strings.Contains(out, want) {
		t.Errorf("promtool check rules found another number of rules than the %d alerts this test read:\n%s", len(rules), out)
	}
	if out, ok := runPromtool(t, promtool, ".", "test", "rules", rulesTestFile); !ok {
		t.Fatalf("promtool test rules %s:\n%s", rulesTestFile, out)
	}
}

// TestAlertRulesTestsBite checks that every alert's unit tests would catch
// a rule that is wrong: with its expression made to fire always, or
// never, its test group must fail. Each alert has a test group of its
// name (its own series), run alone against a rules file holding only that
// alert, first unchanged (it must pass: the cut-out is sound), then with
// each change.
func TestAlertRulesTestsBite(t *testing.T) {
	promtool := ensurePromtool(t)
	lines, rules := parseRules(t)
	data, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	testLines := strings.Split(string(data), "\n")
	header, groups := testGroups(t, testLines)
	for _, r := range rules {
		if _, ok := groups[r.name]; !ok {
			t.Errorf("%s: no test group named %s", rulesTestFile, r.name)
		}
	}
	for name := range groups {
		if !slices.ContainsFunc(rules, func(r alertRule) bool { return r.name == name }) {
			t.Errorf("%s: test group %s tests no alert of %s", rulesTestFile, name, rulesFile)
		}
	}
	for _, r := range rules {
		g, ok := groups[r.name]
		if !ok {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range []struct {
				what, expr string
				pass       bool
				// caught is how promtool reports the case that must
				// fail: one expecting no alert that got one, or one
				// expecting alerts that got none.
				caught, checks string
			}{
				{what: "unchanged", pass: true},
				{what: "always firing", expr: "vector(1)", caught: "exp:[], ", checks: "stays quiet"},
				{what: "never firing", expr: "vector(1) == 0", caught: "got:[]", checks: "fires"},
			} {
				dir := t.TempDir()
				rulesText := oneRule(lines, r, c.expr)
				testText := strings.Join(header, "\n") + "\n" + strings.Join(testLines[g[0]:g[1]], "\n") + "\n"
				if err := os.WriteFile(filepath.Join(dir, filepath.Base(rulesFile)), []byte(rulesText), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "test.yml"), []byte(testText), 0o644); err != nil {
					t.Fatal(err)
				}
				out, ok := runPromtool(t, promtool, dir, "test", "rules", "test.yml")
				switch {
				case c.pass && !ok:
					t.Fatalf("%s alone does not pass its test group:\n%s\n--- rules:\n%s", r.name, out, rulesText)
				case !c.pass && ok:
					t.Errorf("%s %s still passes its test group: its tests do not check that it %s", r.name, c.what, c.checks)
				case !c.pass && (!strings.Contains(out, "alertname: "+r.name) || !strings.Contains(out, c.caught)):
					t.Errorf("%s %s fails its test group, but no case checks that it %s (no failure with %q):\n%s", r.name, c.what, c.checks, c.caught, out)
				}
			}
		})
	}
}

// oneRule returns a rules file holding only r, with its expr replaced by
// expr unless that is empty.
func oneRule(lines []string, r alertRule, expr string) string {
	var b strings.Builder
	b.WriteString("groups:\n  - name: one\n    rules:\n")
	for i := r.start; i < r.end; i++ {
		if expr != "" && i >= r.exprStart && i < r.exprEnd {
			if i == r.exprStart {
				fmt.Fprintf(&b, "%*sexpr: %s\n", 6+2, "", expr)
			}
			continue
		}
		line := lines[i]
		if strings.TrimSpace(line) != "" {
			line = strings.Repeat(" ", 6) + line[r.indent:]
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// testGroups returns the lines of rulesTestFile up to and including
// "tests:", and each test group's lines [start, end) by name.
func testGroups(t *testing.T, lines []string) ([]string, map[string][2]int) {
	t.Helper()
	at := slices.Index(lines, "tests:")
	if at < 0 {
		t.Fatalf("%s: no tests: line", rulesTestFile)
	}
	groups := map[string][2]int{}
	for i := at + 1; i < len(lines); i++ {
		if blankOrComment(lines[i]) {
			continue
		}
		m := nameLine.FindStringSubmatch(lines[i])
		if m == nil || len(m[1]) != 2 {
			t.Fatalf("%s:%d: a test group must start with \"  - name: ALERT\": %q", rulesTestFile, i+1, lines[i])
		}
		if _, dup := groups[m[2]]; dup {
			t.Fatalf("%s:%d: a second test group named %s", rulesTestFile, i+1, m[2])
		}
		end := item(lines, i, 2)
		groups[m[2]] = [2]int{i, end}
		i = end - 1
	}
	return lines[:at+1], groups
}

// documentedMetrics returns the metric names docs/METRICS.md's tables list.
func documentedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "| `nanokms_"); ok {
			name, _, _ := strings.Cut(rest, "`")
			out["nanokms_"+name] = true
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s lists no metric", metricsDoc)
	}
	return out
}

var nanokmsMetric = regexp.MustCompile(`nanokms_[a-z0-9_]+`)

// metricNames returns the nanokms_ metric names an expression uses, a
// histogram's _bucket, _sum and _count series under the histogram's name.
func metricNames(expr string) []string {
	var out []string
	for _, n := range nanokmsMetric.FindAllString(expr, -1) {
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, s); ok {
				n = b
				break
			}
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// TestAlertRulesDocumented checks every alert's labels and annotations,
// that its runbook is its entry under "Alerts" in docs/METRICS.md (and
// that every entry there is an alert), and that every nanokms_ metric its
// expression uses is listed in docs/METRICS.md.
func TestAlertRulesDocumented(t *testing.T) {
	_, rules := parseRules(t)
	metrics := documentedMetrics(t)
	entries := alertEntries(t)
	seen := map[string]bool{}
	for _, r := range rules {
		if seen[r.name] {
			t.Errorf("alert %s is defined twice", r.name)
		}
		seen[r.name] = true
		if !strings.HasPrefix(r.name, "Nanokms") {
			t.Errorf("alert %s: the name does not start with Nanokms", r.name)
		}
		if s := r.labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("alert %s: severity %q, want critical or warning", r.name, s)
		}
		for _, a := range []string{"summary", "description", "runbook"} {
			if strings.TrimSpace(r.annotations[a]) == "" {
				t.Errorf("alert %s has no %s annotation", r.name, a)
			}
		}
		if want := "docs/METRICS.md#" + strings.ToLower(r.name); r.annotations["runbook"] != want {
			t.Errorf("alert %s: runbook %q, want %q", r.name, r.annotations["runbook"], want)
		}
		if !entries[r.name] {
			t.Errorf("alert %s has no \"### %s\" entry under \"## Alerts\" in %s", r.name, r.name, metricsDoc)
		}
		for _, n := range metricNames(r.expr) {
			if !metrics[n] {
				t.Errorf("alert %s uses %s, which %s does not list", r.name, n, metricsDoc)
			}
		}
	}
	for e := range entries {
		if !seen[e] {
			t.Errorf("%s has an entry for %s, which is no alert of %s", metricsDoc, e, rulesFile)
		}
	}
}

// alertEntries returns the "### " headings of the "## Alerts" section of
// docs/METRICS.md.
func alertEntries(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	in := false
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\n")
		if h, ok := strings.CutPrefix(line, "## "); ok {
			in = h == "Alerts"
			continue
		}
		if h, ok := strings.CutPrefix(line, "### "); ok && in {
			out[strings.TrimSpace(h)] = true
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no \"## Alerts\" section with an entry per alert", metricsDoc)
	}
	return out
}

func TestMetricNames(t *testing.T) {
	for _, tt := range []struct {
		expr string
		want []string
	}{
		{`rate(nanokms_signer_decisions_total{decision="refused"}[5m])`, []string{"nanokms_signer_decisions_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(nanokms_signer_decision_seconds_bucket[5m])))`, []string{"nanokms_signer_decision_seconds"}},
		{`nanokms_work_seconds_count / nanokms_work_seconds_sum`, []string{"nanokms_work_seconds"}},
		{`node_textfile_mtime_seconds{file=~"(.*/)?nanokms_(signer|relay)\\.prom"}`, nil},
		{`up{job=~"nanokms-.*"}`, nil},
	} {
		if got := metricNames(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("metricNames(%s) = %v, want %v", tt.expr, got, tt.want)
		}
	}
}
