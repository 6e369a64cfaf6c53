package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is reachable.
type Check func(ctx context.Context) error

// handleHealthz is liveness: the process serves HTTP.
func handleHealthz() http.Handler {
	body := []byte(`{"status":"success","data":"ok"}` + "\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONBytes(w, http.StatusOK, body)
	})
}

// handleReadyz is readiness: every dependency answers within timeout. The
// checks run concurrently, so a dead one costs timeout, not the sum. Each
// is reported by name; details of a failure go to the log, not the client.
func handleReadyz(checks map[string]Check, timeout time.Duration, log *slog.Logger) http.Handler {
	names := make([]string, 0, len(checks))
	for name := range checks {
		names = append(names, name)
	}
	slices.Sort(names)
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

		ok := true
		b := []byte(`{"status":"success","data":{`)
		var failed []string
		for i, name := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, name)
			b = append(b, ':')
			b = appendJSONString(b, results[i])
			if results[i] != "ok" {
				ok = false
				failed = append(failed, name)
			}
		}
		b = append(b, "}}\n"...)
		if ok {
			writeJSONBytes(w, http.StatusOK, b)
			return
		}
		// The error envelope, with the per-check report kept under data.
		msg := "not ready: "
		for i, name := range failed {
			if i > 0 {
				msg += ", "
			}
			msg += name + " " + results[slices.Index(names, name)]
		}
		e := []byte(`{"status":"error","error":`)
		e = appendJSONString(e, msg)
		e = append(e, `,"data":`...)
		e = append(e, b[len(`{"status":"success","data":`):]...)
		writeJSONBytes(w, http.StatusServiceUnavailable, e)
	})
}

// handleMetrics serves the registry in the Prometheus text format.
func handleMetrics(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
