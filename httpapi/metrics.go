package httpapi

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's Prometheus metrics. They are registered on the
// registry the caller passes in, next to the ingestion metrics.
type metrics struct {
	requests       *prometheus.HistogramVec
	sseSubscribers prometheus.Gauge
	sseEvents      prometheus.Counter
	hubChanges     prometheus.Counter
	hubErrors      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "viswals_http_request_duration_seconds",
			Help: "HTTP request latency by route pattern, method and status (SSE streams: their whole life).",
			// From 100µs, so that cached GET /users/{id} replies do not all
			// fall into the first bucket.
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"route", "method", "status"}),
		sseSubscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "viswals_sse_subscribers",
			Help: "Open GET /users/sse streams.",
		}),
		sseEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "viswals_sse_events_total",
			Help: "User events sent on SSE streams.",
		}),
		hubChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "viswals_sse_hub_changes_total",
			Help: "Changes the SSE hub read from the Postgres changefeed.",
		}),
		hubErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "viswals_sse_hub_errors_total",
			Help: "Failed changefeed reads or listens of the SSE hub (it retries).",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.sseSubscribers, m.sseEvents, m.hubChanges, m.hubErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
