package ingest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the ingestion counters served on /metrics.
type Metrics struct {
	RowsIngested prometheus.Counter
	RowsRejected prometheus.Counter
	DeadLettered prometheus.Counter
	BatchLatency prometheus.Histogram
	StoreRetries prometheus.Counter
	CacheErrors  prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		RowsIngested: prometheus.NewCounter(prometheus.CounterOpts{Name: "viswals_rows_ingested_total", Help: "Users committed to Postgres (valid rows consumed)."}),
		RowsRejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "viswals_rows_rejected_total", Help: "Users in messages that failed validation and were dead-lettered."}),
		DeadLettered: prometheus.NewCounter(prometheus.CounterOpts{Name: "viswals_messages_dead_lettered_total", Help: "Messages sent to the dead-letter queue."}),
		BatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "viswals_batch_seconds", Help: "Time to validate, seal and commit one batch.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		StoreRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "viswals_store_retries_total", Help: "Batch writes retried because Postgres was unavailable."}),
		CacheErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "viswals_cache_errors_total", Help: "Failed Redis cache writes (ingestion continued)."}),
	}
	if reg != nil {
		reg.MustRegister(m.RowsIngested, m.RowsRejected, m.DeadLettered, m.BatchLatency, m.StoreRetries, m.CacheErrors)
	}
	return m
}

func (m *Metrics) observeBatch(ingested, rejected int, took time.Duration) {
	m.RowsIngested.Add(float64(ingested))
	m.RowsRejected.Add(float64(rejected))
	m.BatchLatency.Observe(took.Seconds())
}
