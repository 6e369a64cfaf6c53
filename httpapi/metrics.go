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
	rejected       *prometheus.CounterVec
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
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "viswals_http_rejected_total",
			Help: "Requests refused by a limit: host (421), rate, sse_global or sse_principal (429).",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.sseSubscribers, m.sseEvents, m.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
