package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/internal/testenv"
)

const observability = "observability"

// The alert rules are valid Prometheus rules, and their unit tests (each
// alert firing on the series that should fire it, and not before) pass.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtool := testenv.Program(t, "promtool", "apt-get install prometheus", "promtool")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = observability
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %v:\n%s", args, out)
		assert.Contains(t, string(out), "SUCCESS", "promtool %v", args)
	}
}

// Dashboard is the part of a Grafana dashboard the test reads.
type Dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		ID      int    `json:"id"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// The dashboard parses, and every panel queries something.
func TestDashboard(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(observability, "dashboard.json"))
	require.NoError(t, err)
	var d Dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	assert.NotEmpty(t, d.UID)
	require.NotEmpty(t, d.Panels)
	ids := map[int]bool{}
	for _, p := range d.Panels {
		assert.False(t, ids[p.ID], "panel id %d repeats", p.ID)
		ids[p.ID] = true
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			assert.NotEmpty(t, MetricNames(tg.Expr), "panel %q: %q names no metric", p.Title, tg.Expr)
		}
	}
}

var metricName = regexp.MustCompile(`\b(?:viswals|process|go)_[a-z0-9_]+\b`)

// MetricNames returns the metric names an expression reads.
func MetricNames(expr string) []string { return metricName.FindAllString(expr, -1) }
