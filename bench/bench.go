// Package bench is the performance harness: in one run it
// measures the yardsticks (a bare psql \copy of the CSV, a bare Go HTTP
// handler) and the project (producer start → last row committed, peak RSS
// of both processes, GET /users/{id}, GET /users?first_name=, SSE delivery
// to many subscribers, a throughput sweep over batch size and worker
// count) and prints every figure with its ratio and target.
//
// It drives the real binaries (built from ./cmd/...) against the services
// on localhost, each run in a fresh database, queue and Redis key prefix
// that it removes afterwards. `make bench` runs it at 1M rows, `make
// bench-smoke` (and TestBenchSmoke) at a tiny size.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Config says what to measure and how big.
type Config struct {
	Rows        int           // rows of the main load (clean CSV from cmd/gencsv)
	WrkDuration time.Duration // each wrk run
	WrkThreads  int
	WrkConns    int
	SSESubs     int // concurrent SSE subscribers
	SSEBatch    int // users committed per SSE round
	SSERounds   int

	SweepRows    int   // rows per sweep point; 0 skips the sweep
	BatchSizes   []int // producer batch sizes swept (workers at their default)
	WorkerCounts []int // consumer worker counts swept (batch at its default)

	LoadOnly bool // measure the load (COPY, e2e, RSS) only
	// Flood is how many unfiltered SSE streams a flooder holds open during
	// the main load (0: none); FloodRead reads them, else they are never
	// read.
	Flood     int
	FloodRead bool
	Poll      time.Duration // completion and RSS polling interval

	PostgresURL string // admin URL (a database the harness may CREATE DATABASE from)
	RedisURL    string
	RabbitURL   string

	WorkDir string    // binaries, data and logs; "" makes a temp dir
	Root    string    // module root; "" finds it from the working directory
	Out     io.Writer // progress and figures
	// Env is added to both binaries' environment (tuning knobs such as
	// CONSUMER_WORKERS, GOGC); the harness sets the connection variables.
	Env []string
}

// Smoke is the tiny configuration CI runs.
func Smoke() Config {
	return Config{
		Rows: 20_000, WrkDuration: 3 * time.Second, WrkThreads: 2, WrkConns: 64,
		SSESubs: 100, SSEBatch: 10, SSERounds: 3,
		SweepRows: 5_000, BatchSizes: []int{100, 1000}, WorkerCounts: []int{1, 2},
		Poll: 5 * time.Millisecond,
	}
}

// Full is the configuration of `make bench`.
func Full() Config {
	return Config{
		Rows: 1_000_000, WrkDuration: 10 * time.Second, WrkThreads: 2, WrkConns: 64,
		SSESubs: 2000, SSEBatch: 10, SSERounds: 10,
		SweepRows: 200_000, BatchSizes: []int{100, 500, 1000, 2000, 5000}, WorkerCounts: []int{1, 2, 4, 8},
		Poll: 5 * time.Millisecond,
	}
}

func (c *Config) defaults() {
	if c.Poll <= 0 {
		c.Poll = 5 * time.Millisecond
	}
	if c.PostgresURL == "" {
		c.PostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	if c.RedisURL == "" {
		c.RedisURL = "redis://127.0.0.1:6379/0"
	}
	if c.RabbitURL == "" {
		c.RabbitURL = "amqp://guest:guest@127.0.0.1:5672/"
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.WrkThreads <= 0 {
		c.WrkThreads = 2
	}
	if c.WrkConns <= 0 {
		c.WrkConns = 64
	}
}

// Results are the figures of one run. Durations in seconds, sizes in
// bytes, rates per second; a figure not measured is zero.
type Results struct {
	Started time.Time
	Machine string
	Config  Config

	Rows        int
	CopySeconds float64
	// SchemaCopySeconds is the bare COPY of the loaded rows into a copy
	// of the project's table: the floor of its storage (harness.schemaCopy).
	SchemaCopySeconds float64
	E2ESeconds        float64
	ProducerSeconds   float64
	ConsumerPeakRSS   int64
	Flood             *FloodResult // the SSE flood during the main load, if any
	ProducerPeakRSS   int64
	RSS               []RSSSample // consumer RSS over the main load
	CPU               []CPUShare  // CPU seconds by part over the main load

	API      bool   // the consumer serves the users API
	APIError string // why the read figures are missing
	Bare     Wrk
	GetByID  Wrk
	List     Wrk
	SSE      SSEResult

	Sweep []SweepPoint
}

// Ratio is e2e time over bare COPY time (target ≤ 2.0).
func (r *Results) Ratio() float64 { return safeDiv(r.E2ESeconds, r.CopySeconds) }

// ReadRatio is GET /users/{id} req/s over the bare handler's (target ≥ 0.40).
func (r *Results) ReadRatio() float64 { return safeDiv(r.GetByID.RPS, r.Bare.RPS) }

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// SweepPoint is the throughput of one load of the sweep.
type SweepPoint struct {
	Knob       string // "batch" or "workers"
	Value      int
	Rows       int
	Seconds    float64
	RowsPerSec float64
}

// Run measures everything cfg asks for and returns the figures. It prints
// progress and each figure to cfg.Out as it goes.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	cfg.defaults()
	res := &Results{Started: time.Now(), Config: cfg, Machine: machine()}
	h, err := newHarness(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer h.close()

	csv, err := h.generate(ctx, cfg.Rows)
	if err != nil {
		return nil, err
	}
	res.Rows = cfg.Rows

	// The yardstick and the project back to back, so that they see the
	// same machine.
	h.logf("yardstick: psql \\copy of %d rows into a table with a primary key", cfg.Rows)
	if res.CopySeconds, err = h.bareCopy(ctx, csv); err != nil {
		return nil, err
	}
	h.logf("  copy: %.2fs", res.CopySeconds)

	h.logf("project: producer start → last row committed, %d rows", cfg.Rows)
	ld, cons, err := h.load(ctx, csv, cfg.Rows, nil, !cfg.LoadOnly, true)
	if err != nil {
		return nil, err
	}
	res.E2ESeconds, res.ProducerSeconds, res.Flood = ld.Seconds, ld.ProducerSeconds, ld.Flood
	res.ConsumerPeakRSS, res.ProducerPeakRSS, res.RSS, res.CPU = ld.ConsumerPeakRSS, ld.ProducerPeakRSS, ld.RSS, ld.CPU
	h.logf("  e2e: %.2fs (%.0f rows/s), ratio e2e/copy %.2f (target ≤ 2.0)", res.E2ESeconds, float64(cfg.Rows)/res.E2ESeconds, res.Ratio())
	h.logf("  consumer peak RSS %s (target ≤ 200 MB), producer peak RSS %s (target ≤ 50 MB)", mb(res.ConsumerPeakRSS), mb(res.ProducerPeakRSS))
	h.logf("  CPU seconds during the load: %s", cpuLine(res.CPU))

	h.logf("floor: psql \\copy of the loaded rows into a copy of the project's users table (same columns and indexes)")
	if res.SchemaCopySeconds, err = h.schemaCopy(ctx, ld.DBURL); err != nil {
		return nil, err
	}
	h.logf("  schema copy: %.2fs (%.2f× the yardstick); e2e / schema copy %.2f", res.SchemaCopySeconds, safeDiv(res.SchemaCopySeconds, res.CopySeconds), safeDiv(res.E2ESeconds, res.SchemaCopySeconds))

	if cons != nil {
		err := h.reads(ctx, cons, cfg, res)
		cons.stop()
		if err != nil {
			return nil, err
		}
	}
	if !cfg.LoadOnly && cfg.SweepRows > 0 {
		if err := h.sweep(ctx, cfg, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// reads runs the read benchmarks against the loaded consumer.
func (h *harness) reads(ctx context.Context, cons *consumer, cfg Config, res *Results) error {
	var err error
	res.API, res.APIError = apiAvailable(ctx, cons.addr, h.apiKey)
	if !res.API {
		h.logf("reads: API not available yet (%s); skipping GET /users/{id}, GET /users and SSE", res.APIError)
		return nil
	}
	h.logf("reads: bare net/http handler, wrk -t%d -c%d -d%s", cfg.WrkThreads, cfg.WrkConns, cfg.WrkDuration)
	if res.Bare, err = h.bareReads(ctx, cfg); err != nil {
		return err
	}
	h.logf("  bare: %.0f req/s, p99 %s", res.Bare.RPS, ms(res.Bare.P99))
	h.logf("reads: GET /users/{id}, random ids of %d", cfg.Rows)
	if res.GetByID, err = h.wrk(ctx, cfg, cons.addr, "/users/1", getByIDScript(cfg.Rows)); err != nil {
		return err
	}
	h.logf("  get: %.0f req/s (ratio %.2f, target ≥ 0.40), p99 %s (target ≤ 10 ms), errors %d",
		res.GetByID.RPS, res.ReadRatio(), ms(res.GetByID.P99), res.GetByID.Errors)
	h.logf("reads: GET /users?first_name=..&limit=100")
	if res.List, err = h.wrk(ctx, cfg, cons.addr, "/users?limit=100", listScript); err != nil {
		return err
	}
	h.logf("  list: %.0f req/s, p99 %s (target ≤ 20 ms), errors %d", res.List.RPS, ms(res.List.P99), res.List.Errors)
	h.logf("sse: %d subscribers, %d rounds of %d users", cfg.SSESubs, cfg.SSERounds, cfg.SSEBatch)
	if res.SSE, err = h.sse(ctx, cons, cfg); err != nil {
		return err
	}
	h.logf("  sse: delivered %d/%d, p50 %s, p99 %s (target ≤ 250 ms), max %s",
		res.SSE.Delivered, res.SSE.Expected, ms(res.SSE.P50), ms(res.SSE.P99), ms(res.SSE.Max))
	return nil
}

// sweep loads cfg.SweepRows rows at each batch size and worker count.
func (h *harness) sweep(ctx context.Context, cfg Config, res *Results) error {
	csv, err := h.generate(ctx, cfg.SweepRows)
	if err != nil {
		return err
	}
	point := func(knob string, v int, env string) error {
		ld, _, err := h.load(ctx, csv, cfg.SweepRows, []string{env}, false, false)
		if err != nil {
			return fmt.Errorf("sweep %s=%d: %w", knob, v, err)
		}
		p := SweepPoint{Knob: knob, Value: v, Rows: cfg.SweepRows, Seconds: ld.Seconds, RowsPerSec: float64(cfg.SweepRows) / ld.Seconds}
		res.Sweep = append(res.Sweep, p)
		h.logf("  sweep %s=%d: %.2fs, %.0f rows/s", knob, v, p.Seconds, p.RowsPerSec)
		return nil
	}
	h.logf("sweep: %d rows per point", cfg.SweepRows)
	for _, b := range cfg.BatchSizes {
		if err := point("batch", b, fmt.Sprintf("PRODUCER_BATCH_SIZE=%d", b)); err != nil {
			return err
		}
	}
	for _, w := range cfg.WorkerCounts {
		if err := point("workers", w, fmt.Sprintf("CONSUMER_WORKERS=%d", w)); err != nil {
			return err
		}
	}
	return nil
}

// FindRoot returns the module root at or above dir.
func FindRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/viswals/viswals\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of github.com/viswals/viswals at or above %s", dir)
		}
	}
}

// machine describes the host: CPUs, memory, kernel and service versions.
func machine() string {
	var parts []string
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		n, model := 0, ""
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "processor") {
				n++
			}
			if model == "" && strings.HasPrefix(l, "model name") {
				_, model, _ = strings.Cut(l, ": ")
			}
		}
		parts = append(parts, fmt.Sprintf("%d CPUs (%s)", n, strings.TrimSpace(model)))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb)
		parts = append(parts, fmt.Sprintf("%.0f GB RAM", float64(kb)/1024/1024))
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		parts = append(parts, strings.TrimSpace(string(out)))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 0 {
			parts = append(parts, "load average at start "+f[0])
		}
	}
	return strings.Join(parts, ", ")
}

func cpuLine(cpu []CPUShare) string {
	parts := make([]string, len(cpu))
	for i, c := range cpu {
		parts[i] = fmt.Sprintf("%s %.1f", c.Part, c.Seconds)
	}
	return strings.Join(parts, ", ")
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
