package changefeed

import "github.com/prometheus/client_golang/prometheus"

// Metrics count the hub's reads of the changefeed.
type Metrics struct {
	changes, errors prometheus.Counter
}

// NewMetrics returns the metrics, registered on reg unless it is nil. The
// metrics keep the names they had when the hub was part of the HTTP API,
// so dashboards and alerts built on them still hold.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "viswals_sse_hub_changes_total",
			Help: "Changes the SSE hub read from the Postgres changefeed.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "viswals_sse_hub_errors_total",
			Help: "Failed changefeed reads or listens of the SSE hub (it retries).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.changes, m.errors)
	}
	return m
}
