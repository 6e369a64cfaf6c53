package usercache

import "github.com/prometheus/client_golang/prometheus"

// Metrics count the cache lookups of Get.
type Metrics struct {
	hit, miss, err prometheus.Counter
}

// NewMetrics returns the metrics, registered on reg unless it is nil. The
// metric keeps the name it had when the HTTP API did the lookups itself,
// so dashboards and alerts built on it still hold.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "viswals_http_user_cache_total",
		Help: "GET /users/{id} cache lookups by result (hit, miss, error).",
	}, []string{"result"})
	if reg != nil {
		reg.MustRegister(lookups)
	}
	return &Metrics{
		hit:  lookups.WithLabelValues("hit"),
		miss: lookups.WithLabelValues("miss"),
		err:  lookups.WithLabelValues("error"),
	}
}
