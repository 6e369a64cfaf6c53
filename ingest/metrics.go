package ingest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/viswals/viswals"
)

// Metrics are the ingestion counters served on /metrics.
type Metrics struct {
	RowsIngested prometheus.Counter
	RowsRejected prometheus.Counter
	// Rows counts the rows of loads by outcome (the tally's names),
	// each message once.
	Rows         *prometheus.CounterVec
	DeadLettered prometheus.Counter
	BatchLatency prometheus.Histogram
	StoreRetries prometheus.Counter
	CacheErrors  prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		RowsIngested: prometheus.NewCounter(prometheus.CounterOpts{Name: "viswals_rows_ingested_total", Help: "Users committed to Postgres (valid rows consumed)."}),
		RowsRejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "viswals_rows_rejected_total", Help: "Rows the producers rejected (bad CSV rows), from their load summaries."}),
		Rows:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "viswals_rows_total", Help: "Rows of loads by what became of them: inserted, updated, unchanged, dead_lettered (each message counted once; the rows of a replayed dead letter count again under what became of them)."}, []string{"outcome"}),
		DeadLettered: prometheus.NewCounter(prometheus.CounterOpts{Name: "viswals_messages_dead_lettered_total", Help: "Messages sent to the dead-letter queue."}),
		BatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "viswals_batch_seconds", Help: "Time to validate, seal and commit one batch.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		StoreRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "viswals_store_retries_total", Help: "Batch writes retried because Postgres was unavailable."}),
		CacheErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "viswals_cache_errors_total", Help: "Failed Redis cache writes (ingestion continued)."}),
	}
	for _, o := range outcomes {
		m.Rows.WithLabelValues(o) // every outcome shows, at 0, from the start
	}
	if reg != nil {
		reg.MustRegister(m.RowsIngested, m.RowsRejected, m.Rows, m.DeadLettered, m.BatchLatency, m.StoreRetries, m.CacheErrors)
	}
	return m
}

// outcomes are the values of viswals_rows_total's outcome label.
var outcomes = []string{"inserted", "updated", "unchanged", "dead_lettered"}

func (m *Metrics) observeBatch(ingested int, took time.Duration) {
	m.RowsIngested.Add(float64(ingested))
	m.BatchLatency.Observe(took.Seconds())
}

func (m *Metrics) observeTally(t viswals.Tally) {
	for i, n := range []int64{t.Inserted, t.Updated, t.Unchanged, t.DeadLettered} {
		m.Rows.WithLabelValues(outcomes[i]).Add(float64(n))
	}
}
