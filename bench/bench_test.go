package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/viswals/viswals/internal/testenv"
)

// TestBenchSmoke runs the whole harness at the smoke size so that it never
// rots. Timings on a shared machine are noisy, so it asserts only that
// every figure was produced, not the targets.
func TestBenchSmoke(t *testing.T) {
	testenv.SkipShort(t, "runs the real binaries against PostgreSQL, Redis and RabbitMQ, and wrk")
	testenv.Program(t, "wrk", "apt-get install -y wrk", "wrk")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := Smoke()
	cfg.WorkDir = t.TempDir()
	cfg.Out = testLog{t}
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + res.Markdown("make bench-smoke"))

	positive := map[string]float64{
		"copy seconds":         res.CopySeconds,
		"e2e seconds":          res.E2ESeconds,
		"producer seconds":     res.ProducerSeconds,
		"consumer peak RSS":    float64(res.ConsumerPeakRSS),
		"producer peak RSS":    float64(res.ProducerPeakRSS),
		"e2e/copy ratio":       res.Ratio(),
		"bare req/s":           res.Bare.RPS,
		"bare p99":             float64(res.Bare.P99),
		"get req/s":            res.GetByID.RPS,
		"get p99":              float64(res.GetByID.P99),
		"get/bare ratio":       res.ReadRatio(),
		"list req/s":           res.List.RPS,
		"list p99":             float64(res.List.P99),
		"sse p99":              float64(res.SSE.P99),
		"sse events delivered": float64(res.SSE.Delivered),
		"rss samples":          float64(len(res.RSS)),
		"sweep points":         float64(len(res.Sweep)),
	}
	if !res.API {
		t.Fatalf("the consumer does not serve the users API: %s", res.APIError)
	}
	for name, v := range positive {
		if !(v > 0) {
			t.Errorf("%s was not measured (%v)", name, v)
		}
	}
	// A wrong answer is a bug; a timeout is the machine's load (go test
	// runs this next to the other packages), reported but not failed.
	if res.GetByID.Non2xx > 0 || res.List.Non2xx > 0 {
		t.Errorf("reads answered errors: get %d, list %d non-2xx responses", res.GetByID.Non2xx, res.List.Non2xx)
	}
	if res.GetByID.Errors > 0 || res.List.Errors > 0 {
		t.Logf("reads with errors or timeouts: get %d, list %d", res.GetByID.Errors, res.List.Errors)
	}
	if res.SSE.Delivered != res.SSE.Expected {
		t.Errorf("SSE delivered %d of %d events", res.SSE.Delivered, res.SSE.Expected)
	}
	if want := len(cfg.BatchSizes) + len(cfg.WorkerCounts); len(res.Sweep) != want {
		t.Errorf("sweep has %d points, want %d", len(res.Sweep), want)
	}
	var png strings.Builder
	if err := WritePNG(&png, res.Panels(), 600, 420); err != nil || !strings.HasPrefix(png.String(), "\x89PNG") {
		t.Errorf("plot: %v", err)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
