package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/viswals/viswals/httpapi/internal/ssetest"
)

func TestUnknownRouteAndMethod(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		method, path string
		status       int
		msg          string
	}{
		{"GET", "/nope", 404, "no such route"},
		{"GET", "/users/1/extra", 404, "no such route"},
		{"GET", "/index.html", 404, "no such route"},
		{"POST", "/users", 405, "method POST not allowed"},
		{"DELETE", "/users/1", 405, "method DELETE not allowed"},
		{"PUT", "/users/sse", 405, "not allowed"},
		{"POST", "/healthz", 405, "not allowed"},
	} {
		req, _ := http.NewRequest(tc.method, e.srv.URL+tc.path, strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, ct)
		}
		if tc.status == 405 && !strings.Contains(resp.Header.Get("Allow"), "GET") {
			t.Errorf("%s %s: Allow %q", tc.method, tc.path, resp.Header.Get("Allow"))
		}
		wantError(t, tc.method+" "+tc.path, resp.StatusCode, decodeBody(t, resp), tc.status, tc.msg)
	}
	// HEAD is served wherever GET is.
	resp, err := http.Head(e.srv.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HEAD /healthz: %v %v", resp, err)
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t)
	status, body := e.get(t, "/healthz")
	if status != 200 || body["status"] != "success" || body["data"] != "ok" {
		t.Fatalf("%d %v", status, body)
	}
}

func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("dial tcp 10.0.0.9:6379: refused") }
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for _, tc := range []struct {
		name       string
		checks     map[string]Check
		degradable []string
		status     int
		data       map[string]any
		msg        string
	}{
		{"all up", map[string]Check{"postgres": ok, "redis": ok, "rabbitmq": ok}, nil, 200,
			map[string]any{"postgres": "ok", "redis": "ok", "rabbitmq": "ok"}, ""},
		{"one down, one hanging", map[string]Check{"postgres": ok, "redis": down, "rabbitmq": hang}, nil, 503,
			map[string]any{"postgres": "ok", "redis": "unavailable", "rabbitmq": "timeout"}, "not ready: rabbitmq timeout, redis unavailable"},
		{"a degradable one down is reported, and ready", map[string]Check{"postgres": ok, "redis": down}, []string{"redis"}, 200,
			map[string]any{"postgres": "ok", "redis": "unavailable"}, ""},
		{"a degradable one down beside a needed one", map[string]Check{"postgres": down, "redis": down}, []string{"redis"}, 503,
			map[string]any{"postgres": "unavailable", "redis": "unavailable"}, "not ready: postgres unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(s *envSettings) {
				s.deps.Checks = tc.checks
				s.deps.Degradable = tc.degradable
				s.cfg.ReadyTimeout = 100 * time.Millisecond
			})
			start := time.Now()
			status, body := e.get(t, "/readyz")
			if took := time.Since(start); took > time.Second {
				t.Errorf("took %v: checks not bounded or not concurrent", took)
			}
			if status != tc.status {
				t.Errorf("status %d, want %d: %v", status, tc.status, body)
			}
			data, _ := body["data"].(map[string]any)
			for k, v := range tc.data {
				if data[k] != v {
					t.Errorf("data %v, want %v", data, tc.data)
				}
			}
			if tc.msg != "" && body["error"] != tc.msg {
				t.Errorf("error %q, want %q", body["error"], tc.msg)
			}
			if strings.Contains(e.logs.String(), "10.0.0.9") != (data["redis"] == "unavailable" || data["postgres"] == "unavailable") {
				t.Errorf("failure cause should be logged (and only then)")
			}
			if strings.Contains(fmt.Sprint(body), "10.0.0.9") {
				t.Errorf("failure cause reached the client: %v", body)
			}
		})
	}
}

// /readyz names the process's roles and what each depends on.
func TestReadyzRoles(t *testing.T) {
	ok := func(context.Context) error { return nil }
	e := newEnv(t, func(s *envSettings) {
		s.deps.Checks = map[string]Check{"postgres": ok, "redis": ok}
		s.deps.Roles = map[string][]string{"api": {"postgres", "redis"}}
	})
	status, body := e.get(t, "/readyz")
	data, _ := body["data"].(map[string]any)
	if status != 200 || fmt.Sprint(data["roles"]) != "map[api:[postgres redis]]" || data["postgres"] != "ok" {
		t.Fatalf("%d %v", status, body)
	}
}

// An ingest-only process serves its probes and metrics, and nothing else.
func TestOpsOnly(t *testing.T) {
	reg := prometheus.NewRegistry()
	api, err := New(Config{Registry: reg, AuthOff: true, OpsOnly: true},
		Deps{Checks: map[string]Check{"rabbitmq": func(context.Context) error { return nil }}, Roles: map[string][]string{"ingest": {"rabbitmq"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/users/1": 404, "/users": 404, "/users/sse": 404, "/": 404, "/openapi.yaml": 404} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if _, err := New(Config{Registry: prometheus.NewRegistry(), OpsOnly: true}, Deps{}); err == nil {
		t.Error("ops-only without Auth or AuthOff: want an error (its /metrics is for admins)")
	}
}

func TestMetricsAndRequestLog(t *testing.T) {
	e := newEnv(t)
	e.db.insert(testUser(1, "A", "A"))
	e.get(t, "/users/1")
	e.get(t, "/users/2")
	e.get(t, "/nope")
	c := ssetest.Open(t, e.srv.URL+"/users/sse", "")
	c.Users(t, 1)

	resp, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`viswals_http_request_duration_seconds_count{method="GET",route="GET /users/{id}",status="200"} 1`,
		`viswals_http_request_duration_seconds_count{method="GET",route="GET /users/{id}",status="404"} 1`,
		`viswals_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 1`,
		`viswals_sse_subscribers 1`,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	logs := e.logs.String()
	for _, want := range []string{`"level":"DEBUG","msg":"http request","request_id":"`, `"method":"GET","route":"GET /users/{id}","status":200,"duration":"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "@example.com") {
		t.Errorf("an email reached the log")
	}
}

func TestPage(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'sha256-") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	page := string(body)
	for _, want := range []string{".getReader()", `"Last-Event-ID"`, "/users/sse", "textContent", `id="first_name"`, `id="last_name"`, `id="count"`, `id="state"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "innerHTML") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Errorf("page uses innerHTML or loads something from elsewhere")
	}
}

// The router and the OpenAPI document describe the same set of routes.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                               `yaml:"openapi"`
		Paths   map[string]map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
			if _, ok := op["responses"]; !ok {
				t.Errorf("%s %s has no responses", method, path)
			}
		}
	}
	e := newEnv(t)
	var served []string
	for _, rt := range e.api.routes() {
		served = append(served, strings.Replace(rt.pattern, "{$}", "", 1))
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("documented %v\nserved     %v", documented, served)
	}

	resp, err := http.Get(e.srv.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != string(openapiYAML) {
		t.Errorf("GET /openapi.yaml: %d", resp.StatusCode)
	}
}

func TestNewServerHardening(t *testing.T) {
	s := NewServer(":0", http.NotFoundHandler())
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 || s.MaxHeaderBytes > 64<<10 {
		t.Errorf("server %+v", s)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		cfg  Config
		deps Deps
	}{
		{Config{CursorKey: []byte("short"), Registry: e.reg}, Deps{Users: memUsers{e.db}, Keys: fakeKeys{}, Feed: e.feed}},
		{Config{CursorKey: testKey}, Deps{Users: memUsers{e.db}, Keys: fakeKeys{}, Feed: e.feed}},
		{Config{CursorKey: testKey, Registry: e.reg}, Deps{Keys: fakeKeys{}, Feed: e.feed}},
	} {
		if _, err := New(tc.cfg, tc.deps); err == nil {
			t.Errorf("New(%+v) accepted", tc.cfg)
		}
	}
	// A second API on the same registry is refused, not a panic.
	if _, err := New(Config{CursorKey: testKey, Registry: e.reg}, Deps{Users: memUsers{e.db}, Keys: fakeKeys{}, Feed: e.feed}); err == nil {
		t.Errorf("metrics registered twice")
	}
}

// The access log goes at debug, but server errors and slow requests at
// info, with one set of fields, the request id being the one sent back.
func TestAccessLogLevels(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.db.insert(testUser(1, "A", "A"))
	resp, err := http.Get(e.srv.URL + "/users/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if len(id) != 16 {
		t.Fatalf("X-Request-Id = %q, want 16 hex digits", id)
	}
	e.db.mu.Lock()
	e.db.getErr = errors.New("disk on fire")
	e.db.mu.Unlock()
	e.get(t, "/users/2")

	var lines []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "http request" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("want 2 access lines, got %v", lines)
	}
	if lines[0]["level"] != "DEBUG" || lines[0]["request_id"] != id || lines[0]["status"] != 200.0 {
		t.Errorf("a fast 200: %v, want DEBUG with request_id %s", lines[0], id)
	}
	if lines[1]["level"] != "INFO" || lines[1]["status"] != 500.0 {
		t.Errorf("a 500: %v, want INFO", lines[1])
	}
	for _, l := range lines {
		if d, ok := l["duration"].(string); !ok || d == "" {
			t.Errorf("duration %v is not a string", l["duration"])
		}
	}
}

func TestAccessLevel(t *testing.T) {
	t.Parallel()
	slow := 500 * time.Millisecond
	for _, tc := range []struct {
		name        string
		status      int
		d, slow     time.Duration
		contentType string
		want        slog.Level
	}{
		{"fast ok", 200, time.Millisecond, slow, "application/json", slog.LevelDebug},
		{"fast client error", 404, time.Millisecond, slow, "application/json", slog.LevelDebug},
		{"server error", 503, time.Millisecond, slow, "application/json", slog.LevelInfo},
		{"slow", 200, slow, slow, "application/json", slog.LevelInfo},
		{"slow threshold off", 200, time.Hour, 0, "application/json", slog.LevelDebug},
		{"long event stream", 200, time.Hour, slow, "text/event-stream", slog.LevelDebug},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{ResponseWriter: httptest.NewRecorder()}
			rec.Header().Set("Content-Type", tc.contentType)
			if got := accessLevel(rec, tc.status, tc.d, tc.slow); got != tc.want {
				t.Errorf("accessLevel = %v, want %v", got, tc.want)
			}
		})
	}
}
