package bench

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"
)

// Targets the report holds each figure against: the load's time within
// TargetRatio of the bare COPY's, GET /users/{id} at TargetReadRatio or more
// of the bare handler's throughput, caps on each process's peak RSS and on
// the latency p99s.
const (
	TargetRatio       = 2.0
	TargetConsumerRSS = 200e6
	TargetProducerRSS = 50e6
	TargetReadRatio   = 0.40
	TargetGetP99      = 10 * time.Millisecond
	TargetListP99     = 20 * time.Millisecond
	TargetSSEP99      = 250 * time.Millisecond
)

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// Markdown renders the figures as the results section of docs/benchmarks.md.
func (r *Results) Markdown(command string) string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "Run `%s` on %s, started %s.\n\n", command, r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Machine)
	fmt.Fprintf(&b, "| what | figure | target | |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| bare `psql \\copy` of %d rows into a table with a primary key | %.2f s | yardstick | |\n", r.Rows, r.CopySeconds)
	fmt.Fprintf(&b, "| producer start → last row committed, %d rows | %.2f s (%.0f rows/s; producer done after %.2f s) | | |\n",
		r.Rows, r.E2ESeconds, float64(r.Rows)/r.E2ESeconds, r.ProducerSeconds)
	if f := r.Flood; f != nil {
		mode := "never read"
		if f.Read {
			mode = "read and discarded"
		}
		fmt.Fprintf(&b, "| during the load, a flooder held %d unfiltered `GET /users/sse` streams open (%s) | %d opened in all, %d refused, %d failed | | |\n",
			f.Streams, mode, f.Opened, f.Refused, f.Failures)
	}
	fmt.Fprintf(&b, "| **e2e / COPY** | **%.2f** | ≤ %.1f | %s |\n", r.Ratio(), TargetRatio, verdict(r.Ratio() <= TargetRatio))
	if r.SchemaCopySeconds > 0 {
		fmt.Fprintf(&b, "| the floor: bare `psql \\copy` of the loaded rows into a copy of the project's `users` table (same columns and indexes) | %.2f s (%.2f× the yardstick) | | |\n",
			r.SchemaCopySeconds, safeDiv(r.SchemaCopySeconds, r.CopySeconds))
		fmt.Fprintf(&b, "| e2e / that floor | %.2f | | |\n", safeDiv(r.E2ESeconds, r.SchemaCopySeconds))
	}
	fmt.Fprintf(&b, "| consumer peak RSS | %s | ≤ 200 MB | %s |\n", mb(r.ConsumerPeakRSS), verdict(r.ConsumerPeakRSS <= TargetConsumerRSS))
	fmt.Fprintf(&b, "| producer peak RSS | %s | ≤ 50 MB | %s |\n", mb(r.ProducerPeakRSS), verdict(r.ProducerPeakRSS <= TargetProducerRSS))
	if len(r.CPU) > 0 {
		fmt.Fprintf(&b, "| CPU seconds used during the load (services: whole process, shared with the rest of the machine) | %s | | |\n", cpuLine(r.CPU))
	}
	switch {
	case c.LoadOnly:
	case !r.API:
		fmt.Fprintf(&b, "| reads | API not available yet: %s | | |\n", r.APIError)
	default:
		wrk := fmt.Sprintf("`wrk -t%d -c%d -d%s --latency`", c.WrkThreads, c.WrkConns, c.WrkDuration)
		fmt.Fprintf(&b, "| bare net/http handler, constant user, %s | %.0f req/s, p99 %s | yardstick | |\n", wrk, r.Bare.RPS, ms(r.Bare.P99))
		fmt.Fprintf(&b, "| `GET /users/{id}`, random loaded ids | %.0f req/s, p50 %s, p99 %s, %d errors | | |\n", r.GetByID.RPS, ms(r.GetByID.P50), ms(r.GetByID.P99), r.GetByID.Errors)
		fmt.Fprintf(&b, "| **get / bare** | **%.2f** | ≥ %.2f | %s |\n", r.ReadRatio(), TargetReadRatio, verdict(r.ReadRatio() >= TargetReadRatio))
		fmt.Fprintf(&b, "| `GET /users/{id}` p99 | %s | ≤ 10 ms | %s |\n", ms(r.GetByID.P99), verdict(r.GetByID.P99 <= TargetGetP99))
		fmt.Fprintf(&b, "| `GET /users?first_name=<random prefix>&limit=100`, %d connections | %.0f req/s, p50 %s, p99 %s, %d errors | ≤ 20 ms p99 | %s |\n",
			c.WrkConns, r.List.RPS, ms(r.List.P50), ms(r.List.P99), r.List.Errors, verdict(r.List.P99 <= TargetListP99))
		fmt.Fprintf(&b, "| SSE, %d subscribers, %d commits of %d users: delivery after commit | %d/%d delivered, p50 %s, p99 %s, max %s | ≤ 250 ms p99 | %s |\n",
			r.SSE.Subscribers, c.SSERounds, c.SSEBatch, r.SSE.Delivered, r.SSE.Expected, ms(r.SSE.P50), ms(r.SSE.P99), ms(r.SSE.Max),
			verdict(r.SSE.P99 <= TargetSSEP99 && r.SSE.Delivered == r.SSE.Expected))
	}
	if len(r.Sweep) > 0 {
		fmt.Fprintf(&b, "\nSweep, %d rows per point (producer start → last row committed; the other knob at its default):\n\n", r.Sweep[0].Rows)
		fmt.Fprintf(&b, "| knob | value | seconds | rows/s |\n|---|---|---|---|\n")
		for _, p := range r.Sweep {
			fmt.Fprintf(&b, "| %s | %d | %.2f | %.0f |\n", p.Knob, p.Value, p.Seconds, p.RowsPerSec)
		}
	}
	return b.String()
}

// Panels are the charts of the run: throughput against batch size and
// against workers (from the sweep), and the consumer's RSS over the load.
func (r *Results) Panels() []Panel {
	var batch, workers Panel
	batch = Panel{Title: "Throughput vs batch size", XLabel: "users per message", YLabel: "rows/s", LogX: true}
	workers = Panel{Title: "Throughput vs consumer workers", XLabel: "consumer workers", YLabel: "rows/s"}
	for _, p := range r.Sweep {
		if p.Knob == "batch" {
			batch.X, batch.Y = append(batch.X, float64(p.Value)), append(batch.Y, p.RowsPerSec)
		} else {
			workers.X, workers.Y = append(workers.X, float64(p.Value)), append(workers.Y, p.RowsPerSec)
		}
	}
	var out []Panel
	if len(batch.X) > 0 {
		out = append(out, batch)
	}
	if len(workers.X) > 0 {
		out = append(out, workers)
	}
	return append(out, r.RSSPanel())
}

// RSSPanel is the consumer's RSS over the main load, with the
// TargetConsumerRSS bound.
func (r *Results) RSSPanel() Panel {
	p := Panel{Title: fmt.Sprintf("Consumer RSS, %s rows", formatTick(float64(r.Rows))), XLabel: "seconds", YLabel: "MB", Limit: TargetConsumerRSS / 1e6}
	for _, s := range r.RSS {
		p.X, p.Y = append(p.X, s.Seconds), append(p.Y, float64(s.RSS)/1e6)
	}
	return p
}

// UpdateSection replaces the text between "<!-- bench:NAME -->" and
// "<!-- /bench:NAME -->" in the file at path, appending the section when
// it is missing.
func UpdateSection(path, name, body string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	begin, end := []byte("<!-- bench:"+name+" -->\n"), []byte("<!-- /bench:"+name+" -->")
	i, j := bytes.Index(old, begin), bytes.Index(old, end)
	var out []byte
	if i >= 0 && j > i {
		out = append(append(append(append([]byte{}, old[:i+len(begin)]...), body...), '\n'), old[j:]...)
	} else {
		out = append(append(append(append(append(append([]byte{}, old...), '\n'), begin...), body...), '\n'), append(end, '\n')...)
	}
	return os.WriteFile(path, out, 0o644)
}
