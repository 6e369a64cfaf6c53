package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// readyCollector reports each readiness check as
// viswals_dependency_up{dependency} (1 answers, 0 not), run when
// /metrics is scraped: an alert on failing readiness needs no probe of
// its own.
type readyCollector struct {
	checks  map[string]Check
	timeout time.Duration
	desc    *prometheus.Desc
}

func newReadyCollector(checks map[string]Check, timeout time.Duration) *readyCollector {
	return &readyCollector{checks: checks, timeout: timeout,
		desc: prometheus.NewDesc("viswals_dependency_up", "Whether a dependency of the process answers its readiness check (1) or not (0), checked at each scrape.", []string{"dependency"}, nil)}
}

func (c *readyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *readyCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var wg sync.WaitGroup
	for name, check := range c.checks {
		wg.Go(func() {
			up := 0.0
			if check(ctx) == nil {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, up, name)
		})
	}
	wg.Wait()
}
