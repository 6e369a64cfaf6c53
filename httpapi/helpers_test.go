package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/viswals/viswals/changefeed"
	"github.com/viswals/viswals/internal/logbuf"
)

var testKey = bytes.Repeat([]byte("k"), 32)

// testEnv is an API over in-memory fakes, served by an httptest server,
// with its changefeed hub running.
type testEnv struct {
	db   *memDB
	feed *changefeed.Hub
	api  *API
	srv  *httptest.Server
	reg  *prometheus.Registry
	logs *logbuf.Buffer

	stop func()
}

// envSettings are what an envOption may change before the API is built.
type envSettings struct {
	cfg  Config
	deps Deps // Feed is built from feed
	feed changefeed.Options
}

type envOption func(*envSettings)

func newEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	e := &testEnv{db: newMemDB(), reg: prometheus.NewRegistry(), logs: &logbuf.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := envSettings{
		cfg: Config{
			CursorKey: testKey, Registry: e.reg, Logger: logger,
			SSE: SSEOptions{Heartbeat: time.Minute},
			// Tests of other behaviour than access run as the anonymous
			// admin; authn_test.go turns authentication on.
			AuthOff: true,
		},
		deps: Deps{Users: memUsers{e.db}, Keys: fakeKeys{}},
		feed: changefeed.Options{MinInterval: time.Millisecond, Poll: 50 * time.Millisecond,
			Logger: logger, Metrics: changefeed.NewMetrics(e.reg)},
	}
	for _, o := range opts {
		o(&s)
	}
	e.feed = changefeed.New(e.db, s.feed)
	s.deps.Feed = e.feed
	api, err := New(s.cfg, s.deps)
	if err != nil {
		t.Fatal(err)
	}
	e.api = api
	e.srv = httptest.NewServer(api)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { e.feed.Run(ctx) })
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			e.srv.Close()
			cancel()
			wg.Wait()
		})
	}
	t.Cleanup(e.stop)
	return e
}

// get performs a GET and returns the status and the decoded JSON body.
func (e *testEnv) get(t testing.TB, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q, body %s", path, ct, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET %s: body is not JSON: %v: %s", path, err, body)
	}
	return resp.StatusCode, m
}

// wantError checks an error reply: status, envelope, and that the message
// contains substr.
func wantError(t testing.TB, path string, status int, body map[string]any, wantStatus int, substr string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("GET %s: status %d, want %d (body %v)", path, status, wantStatus, body)
	}
	if body["status"] != "error" || len(body) != 2 {
		t.Errorf("GET %s: envelope %v, want {status: error, error: ...}", path, body)
	}
	msg, _ := body["error"].(string)
	if !strings.Contains(msg, substr) {
		t.Errorf("GET %s: error %q does not contain %q", path, msg, substr)
	}
}

func decodeBody(t testing.TB, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	return m
}
