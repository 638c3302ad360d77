package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const dashboardFile = "grafana/nanokms.json"

// dashPanel is what the tests read of a Grafana panel.
type dashPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource *dashDatasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Datasource *dashDatasource `json:"datasource"`
		Expr       string          `json:"expr"`
		RefID      string          `json:"refId"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // a collapsed row's
}

type dashDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboard struct {
	Title         string      `json:"title"`
	UID           string      `json:"uid"`
	SchemaVersion int         `json:"schemaVersion"`
	Panels        []dashPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name, Type, Query string
		} `json:"list"`
	} `json:"templating"`
}

// loadDashboard parses the dashboard and returns it with every panel, rows'
// panels included.
func loadDashboard(t *testing.T) (*dashboard, []dashPanel) {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	var all []dashPanel
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return &d, all
}

// dashboardExprs returns every query of the dashboard, by "panel N refId".
func dashboardExprs(panels []dashPanel) map[string]string {
	out := map[string]string{}
	for _, p := range panels {
		for _, tg := range p.Targets {
			out[fmt.Sprintf("panel %d (%s) %s", p.ID, p.Title, tg.RefID)] = tg.Expr
		}
	}
	return out
}

// TestGrafanaDashboard checks that the dashboard is valid JSON Grafana can
// import: a title and uid, panels with unique ids inside the 24-column
// grid, every query on the dashboard's Prometheus data source variable,
// and every nanokms_ metric a query uses listed in docs/METRICS.md.
func TestGrafanaDashboard(t *testing.T) {
	d, panels := loadDashboard(t)
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 || len(panels) == 0 {
		t.Fatalf("%s: title %q, uid %q, schemaVersion %d, %d panels", dashboardFile, d.Title, d.UID, d.SchemaVersion, len(panels))
	}
	hasDS := false
	for _, v := range d.Templating.List {
		hasDS = hasDS || v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus"
	}
	if !hasDS {
		t.Errorf("%s: no Prometheus data source variable named datasource", dashboardFile)
	}
	const ds = "${datasource}"
	ids := map[int]bool{}
	queries := 0
	for _, p := range panels {
		if ids[p.ID] || p.ID <= 0 {
			t.Errorf("panel %q: id %d is not a unique positive number", p.Title, p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if p.Title == "" || g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 || g.Y < 0 {
			t.Errorf("panel %d %q: no title, or outside the grid: %+v", p.ID, p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != ds {
			t.Errorf("panel %d %q: data source %+v, want the %s variable", p.ID, p.Title, p.Datasource, ds)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %d %q has no query", p.ID, p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			queries++
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %d %q: a query without expr, or without a unique refId (%q)", p.ID, p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource == nil || tg.Datasource.UID != ds {
				t.Errorf("panel %d %q query %s: data source %+v, want the %s variable", p.ID, p.Title, tg.RefID, tg.Datasource, ds)
			}
		}
	}
	metrics := documentedMetrics(t)
	used := map[string]bool{}
	for where, expr := range dashboardExprs(panels) {
		for _, n := range metricNames(expr) {
			used[n] = true
			if !metrics[n] {
				t.Errorf("%s %s uses %s, which %s does not list", dashboardFile, where, n, metricsDoc)
			}
		}
	}
	if len(used) == 0 {
		t.Errorf("%s: %d queries and no nanokms_ metric", dashboardFile, queries)
	}
}

// grafanaVars are Grafana's interval variables, replaced by a duration so
// that promtool can parse the queries.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// TestGrafanaQueriesParse checks every query of the dashboard with
// promtool: each becomes a recording rule of a rules file that promtool
// check rules must accept.
func TestGrafanaQueriesParse(t *testing.T) {
	promtool := ensurePromtool(t)
	_, panels := loadDashboard(t)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for where, expr := range dashboardExprs(panels) {
		expr = grafanaVars.Replace(expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s %s: a variable this test does not know: %s", dashboardFile, where, expr)
		}
		n++
		// A JSON string is a YAML double-quoted scalar.
		q, _ := json.Marshal(expr)
		fmt.Fprintf(&b, "      - record: dashboard_query_%d # %s\n        expr: %s\n", n, strconv.Quote(where), q)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard.rules.yml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, ok := runPromtool(t, promtool, dir, "check", "rules", "dashboard.rules.yml")
	if !ok {
		t.Fatalf("promtool check rules on the dashboard's queries:\n%s\n--- rules:\n%s", out, b.String())
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", n); !strings.Contains(out, want) {
		t.Errorf("promtool read another number of queries than %d:\n%s", n, out)
	}
}
