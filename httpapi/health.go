package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is reachable.
type Check func(ctx context.Context) error

// handleHealthz is liveness: the process serves HTTP.
func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, healthReply{Status: "success", Data: "ok"})
	})
}

// healthReply is the envelope of /healthz and /readyz. These are cold
// paths, so they go through encoding/json rather than the hand-written
// encoders of the user replies; Data is a string or a map of check results
// (encoding/json writes map keys sorted).
type healthReply struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	Data   any    `json:"data"`
}

// writeJSON writes v encoded by encoding/json, with the newline the other
// replies end with.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeErrorStatus(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeJSONBytes(w, status, append(b, '\n'))
}

// readiness is what /readyz checks and reports.
type readiness struct {
	checks     map[string]Check
	degradable []string            // checks reported but not failed on
	roles      map[string][]string // role: the checks it depends on
	notes      map[string]string   // facts reported beside the checks
}

// handleReadyz is readiness: every dependency answers within timeout,
// but for the degradable ones, which are reported and logged only. The
// checks run concurrently, so a dead one costs timeout, not the sum. Each
// is reported by name, with the roles and what they depend on; details of
// a failure go to the log, not the client.
func handleReadyz(rd readiness, timeout time.Duration, log *slog.Logger) http.Handler {
	checks := rd.checks
	names := slices.Sorted(maps.Keys(checks))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		results := make([]string, len(names))
		var wg sync.WaitGroup
		for i, name := range names {
			wg.Go(func() {
				err := checks[name](ctx)
				switch {
				case err == nil:
					results[i] = "ok"
					return
				case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
					results[i] = "timeout"
				default:
					results[i] = "unavailable"
				}
				log.LogAttrs(r.Context(), slog.LevelWarn, "readiness check failed",
					slog.String("check", name), slog.String("err", err.Error()))
			})
		}
		wg.Wait()

		report := make(map[string]any, len(names)+len(rd.notes)+1)
		for k, v := range rd.notes {
			report[k] = v
		}
		if len(rd.roles) > 0 {
			report["roles"] = rd.roles
		}
		var failed []string
		for i, name := range names {
			report[name] = results[i]
			if results[i] != "ok" && !slices.Contains(rd.degradable, name) {
				failed = append(failed, name+" "+results[i])
			}
		}
		if len(failed) == 0 {
			writeJSON(w, http.StatusOK, healthReply{Status: "success", Data: report})
			return
		}
		// The error envelope, with the per-check report kept under data.
		writeJSON(w, http.StatusServiceUnavailable, healthReply{Status: "error", Error: "not ready: " + strings.Join(failed, ", "), Data: report})
	})
}

// handleMetrics serves the registry in the Prometheus text format.
func handleMetrics(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
