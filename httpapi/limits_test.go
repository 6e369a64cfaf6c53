package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.yaml.in/yaml/v3"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/auth"
	"github.com/viswals/viswals/internal/wait"
)

// do sends a GET with the given Host header and returns the response,
// body read.
func (e *testEnv) do(t testing.TB, host, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func wantEnvelope(t testing.TB, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m["status"] != "error" || m["error"] == "" {
		t.Fatalf("not the error envelope: %s", body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
}

func TestAllowedHosts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		allowed []string
		host    string
		path    string
		want    int
	}{
		{"default localhost any port", nil, "localhost:1234", "/users/1", 200},
		{"default localhost no port", nil, "localhost", "/users/1", 200},
		{"default case-insensitive", nil, "LocalHost:8080", "/users/1", 200},
		{"default trailing dot", nil, "localhost.:8080", "/users/1", 200},
		{"default 127.0.0.1", nil, "127.0.0.1:9", "/users/1", 200},
		{"default [::1]", nil, "[::1]:8080", "/users/1", 200},
		{"default other name", nil, "evil.example:8080", "/users/1", 421},
		{"default other IP", nil, "10.0.0.1:8080", "/users/1", 421},
		{"default prefix of localhost", nil, "localhost.evil.example", "/users/1", 421},
		{"default the page", nil, "evil.example", "/", 421},
		{"default the stream", nil, "evil.example", "/users/sse", 421},
		{"default metrics", nil, "evil.example", "/metrics", 421},
		{"health checks open to probes", nil, "10.1.2.3:8080", "/healthz", 200},
		{"readiness open to probes", nil, "10.1.2.3:8080", "/readyz", 200},
		{"configured name any port", []string{"api.example.com"}, "api.example.com:443", "/users/1", 200},
		{"configured replaces the defaults", []string{"api.example.com"}, "localhost:8080", "/users/1", 421},
		{"configured port matches", []string{"api.example.com:8443"}, "api.example.com:8443", "/users/1", 200},
		{"configured port differs", []string{"api.example.com:8443"}, "api.example.com:8080", "/users/1", 421},
		{"configured port, none sent", []string{"api.example.com:8443"}, "api.example.com", "/users/1", 421},
		{"configured v6 with port", []string{"[fd00::1]:8080"}, "[fd00::1]:8080", "/users/1", 200},
		{"spaces and empties ignored", []string{" a.example ", ""}, "a.example", "/users/1", 200},
		{"star allows any", []string{"*"}, "anything.example:1", "/users/1", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(s *envSettings) { s.cfg.Limits.AllowedHosts = tc.allowed })
			e.db.insert(testUser(1, "A", "B"))
			path := tc.path
			if path == "/users/sse" {
				path += "?limit=1"
			}
			resp, body := e.do(t, tc.host, path)
			if tc.want == 421 {
				wantEnvelope(t, resp, body, http.StatusMisdirectedRequest)
				return
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
		})
	}
}

// Every reply says no-store: data, errors, the router's own 404 and 405,
// the stream, the page and the probes.
func TestNoStoreOnEveryReply(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(s *envSettings) { s.cfg.Limits = Limits{Rate: 1000, Burst: 1000} })
	e.db.insert(testUser(1, "A", "B"))
	for _, tc := range []struct {
		path, host string
		status     int
	}{
		{"/users/1", "", 200},
		{"/users/2", "", 404},
		{"/users?limit=x", "", 400},
		{"/users", "", 200},
		{"/users/sse?limit=1", "", 200},
		{"/", "", 200},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/metrics", "", 200},
		{"/openapi.yaml", "", 200},
		{"/no/such/route", "", 404},
		{"/users/1", "evil.example", 421},
	} {
		t.Run(tc.path+tc.host, func(t *testing.T) {
			resp, body := e.do(t, tc.host, tc.path)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Values("Cache-Control"); len(got) != 1 || got[0] != "no-store" {
				t.Fatalf("Cache-Control %q", got)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/users", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("405: status %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
}

func TestRateLimitOverHTTP(t *testing.T) {
	t.Parallel()
	// A rate so low that no token comes back during the test.
	e := newEnv(t, func(s *envSettings) { s.cfg.Limits = Limits{Rate: 0.001, Burst: 3} })
	e.db.insert(testUser(1, "A", "B"))
	for i := range 3 {
		if resp, body := e.do(t, "", "/users/1"); resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d: %s", i, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/users/1", "/users", "/users/sse", "/", "/metrics"} {
		resp, body := e.do(t, "", path)
		wantEnvelope(t, resp, body, http.StatusTooManyRequests)
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Fatalf("%s: Retry-After %q", path, resp.Header.Get("Retry-After"))
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp, body := e.do(t, "", path); resp.StatusCode != 200 {
			t.Fatalf("%s is exempt, got %d: %s", path, resp.StatusCode, body)
		}
	}
	if n := testutil.ToFloat64(e.api.metrics.rejected.WithLabelValues("rate")); n != 5 {
		t.Fatalf("%v rejections counted, want 5", n)
	}
}

// The buckets are per client key, refill at the rate, and the idle ones
// are forgotten.
func TestRateLimiterBuckets(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	a, b := clientKey{"apikey", "a"}, clientKey{"apikey", "b"}
	type step struct {
		key  clientKey
		at   time.Duration // after now
		ok   bool
		wait time.Duration // when refused
	}
	for _, tc := range []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{"burst then refused", 1, 2, []step{{a, 0, true, 0}, {a, 0, true, 0}, {a, 0, false, time.Second}}},
		{"refills at the rate", 2, 1, []step{{a, 0, true, 0}, {a, 0, false, 500 * time.Millisecond}, {a, 500 * time.Millisecond, true, 0}}},
		{"keys apart", 1, 1, []step{{a, 0, true, 0}, {a, 0, false, time.Second}, {b, 0, true, 0}}},
		{"burst defaults to the rate", 3, 0, []step{{a, 0, true, 0}, {a, 0, true, 0}, {a, 0, true, 0}, {a, 0, false, time.Second / 3}}},
		{"a refusal takes no token", 1, 1, []step{{a, 0, true, 0}, {a, 0, false, time.Second}, {a, 0, false, time.Second}, {a, time.Second, true, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newRateLimiter(tc.rate, tc.burst)
			for i, s := range tc.steps {
				ok, wait := l.allow(s.key, now.Add(s.at))
				if ok != s.ok || (!ok && (wait-s.wait).Abs() > time.Millisecond) {
					t.Fatalf("step %d: allow = %v, %v; want %v, %v", i, ok, wait, s.ok, s.wait)
				}
			}
		})
	}

	l := newRateLimiter(1, 1)
	for i := range 5000 {
		l.allow(clientKey{"ip", strconv.Itoa(i)}, now.Add(time.Duration(i)*time.Second))
	}
	if n := len(l.buckets); n > 2048 {
		t.Fatalf("%d buckets kept for clients long idle", n)
	}
}

func TestClientKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		p      *auth.Principal
		remote string
		want   clientKey
	}{
		{"api key", &auth.Principal{Name: "ci", Kind: auth.KindAPIKey, Role: auth.RoleReader}, "10.0.0.1:5", clientKey{"apikey", "ci"}},
		{"oidc subject", &auth.Principal{Name: "alice", Kind: auth.KindOIDC}, "10.0.0.1:5", clientKey{"oidc", "alice"}},
		{"authentication off: the client IP", &anonymous, "10.0.0.1:5", clientKey{"ip", "10.0.0.1"}},
		{"no principal: the client IP", nil, "[::1]:5", clientKey{"ip", "::1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			if tc.p != nil {
				r = r.WithContext(withPrincipal(r.Context(), *tc.p, ""))
			}
			if got := keyOf(r); got != tc.want {
				t.Fatalf("keyOf = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestStreamCaps(t *testing.T) {
	t.Parallel()
	a, b := clientKey{"apikey", "a"}, clientKey{"apikey", "b"}
	type op struct {
		release bool
		key     clientKey
		want    string // acquire: "" ok, else the cap that refused
	}
	for _, tc := range []struct {
		name        string
		max, perKey int
		ops         []op
	}{
		{"global", 2, 0, []op{{false, a, ""}, {false, b, ""}, {false, a, "sse_global"}, {true, b, ""}, {false, a, ""}}},
		{"per principal", 0, 2, []op{{false, a, ""}, {false, a, ""}, {false, a, "sse_principal"}, {false, b, ""}, {true, a, ""}, {false, a, ""}}},
		{"both, global first", 2, 1, []op{{false, a, ""}, {false, b, ""}, {false, clientKey{"ip", "c"}, "sse_global"}}},
		{"a refused principal frees its global slot", 3, 1, []op{{false, a, ""}, {false, a, "sse_principal"}, {false, a, "sse_principal"}, {false, b, ""}, {false, clientKey{"ip", "c"}, ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &streamCaps{max: tc.max, perKey: tc.perKey, byKey: map[clientKey]int{}}
			for i, o := range tc.ops {
				if o.release {
					c.release(o.key)
					continue
				}
				if ok, which := c.acquire(o.key); which != o.want || ok != (o.want == "") {
					t.Fatalf("op %d: acquire(%v) = %v %q, want %q", i, o.key, ok, which, o.want)
				}
			}
		})
	}
}

func TestSSECapsOverHTTP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		limits Limits
		msg    string
	}{
		{"global", Limits{MaxStreams: 2}, "too many open streams"},
		// Without authentication every request is one principal, so the
		// per-principal cap applies per client IP: here all of them.
		{"per principal", Limits{MaxStreams: 100, MaxStreamsPerPrincipal: 2}, "for this principal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(s *envSettings) { s.cfg.Limits = tc.limits })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			open := func() *http.Response {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/users/sse", nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}
			first, second := open(), open()
			for _, r := range []*http.Response{first, second} {
				if r.StatusCode != 200 {
					t.Fatalf("status %d", r.StatusCode)
				}
			}
			resp := open()
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantEnvelope(t, resp, body, http.StatusTooManyRequests)
			if !strings.Contains(string(body), tc.msg) || resp.Header.Get("Retry-After") != "10" {
				t.Fatalf("body %s, Retry-After %q", body, resp.Header.Get("Retry-After"))
			}
			// Closing a stream frees its slot once the handler has ended,
			// which the gauge of open streams shows.
			first.Body.Close()
			wait.Until(t, time.Minute, "one stream left open", func() bool {
				return testutil.ToFloat64(e.api.metrics.sseSubscribers) == 1
			})
			again := open()
			defer again.Body.Close()
			if again.StatusCode != 200 {
				t.Fatalf("after a stream closed: status %d", again.StatusCode)
			}
			second.Body.Close()
		})
	}
}

// A client that stops reading is dropped once the buffers between it and
// the stream are full and WriteTimeout passes, and what those buffers
// held is small: the server bounds its connection's send buffer rather
// than letting the kernel grow it to megabytes.
func TestSSEDropsAClientThatStopsReading(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(s *envSettings) {
		s.cfg.SSE.WriteTimeout = 300 * time.Millisecond
		s.cfg.Limits.MaxStreams = 1
	})
	// About 12 MB of events: far more than any buffer on the way.
	const n = 60_000
	users := make([]viswals.SealedUser, n)
	long := strings.Repeat("x", 150)
	for i := range users {
		users[i] = testUser(int64(i+1), "F"+long, "L"+long)
	}
	e.db.insert(users...)
	ts := httptest.NewUnstartedServer(e.api)
	ts.Config = NewServer("", e.api)
	ts.Start()
	defer ts.Close()

	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(64 << 10) // the client's share, not under test
	fmt.Fprintf(conn, "GET /users/sse HTTP/1.1\r\nHost: localhost\r\n\r\n")
	// The stream must hold the only slot before the probes below start:
	// a probe that came first would take the slot itself, succeed at once,
	// and leave this stream refused and its connection idle.
	wait.Until(t, time.Minute, "the stream to open", func() bool {
		return testutil.ToFloat64(e.api.metrics.sseSubscribers) == 1
	})
	// Read nothing until the server has given up on the stream: its slot
	// is free again. A probe cut short (its own writes have the same short
	// deadline, which a starved machine can miss) is tried again.
	wait.For(t, time.Minute, "the stream's slot to be free", func() (bool, string) {
		resp, err := http.Get(ts.URL + "/users/sse?limit=1")
		if err != nil {
			return false, err.Error()
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && err == nil, fmt.Sprintf("%s (%v)", resp.Status, err)
	})
	// What reached the client before the drop was what the buffers held.
	got, err := io.Copy(io.Discard, bufio.NewReader(conn))
	if err != nil {
		t.Fatalf("after %d bytes: %v", got, err)
	}
	if got >= 2<<20 {
		t.Fatalf("the stream wrote %d bytes into buffers for a client that read none", got)
	}
	t.Logf("%d bytes buffered for a client that read none", got)
}

// With authentication on, the rate and the stream cap are each
// principal's: one key spending its budget leaves the other's whole.
func TestLimitsArePerPrincipal(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "api-keys")
	keys := map[string]string{}
	var lines []string
	for _, name := range []string{"a", "b"} {
		key, line, err := auth.GenerateKey(name, auth.RoleReader)
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = key
		lines = append(lines, line)
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kf, err := auth.OpenKeyFile(path, auth.KeyFileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(s *envSettings) {
		s.cfg.AuthOff = false
		s.cfg.Auth = auth.NewAuthenticator(kf, nil)
		// No token comes back during the test: a's budget is 4 requests.
		s.cfg.Limits = Limits{Rate: 0.001, Burst: 4, MaxStreamsPerPrincipal: 1}
	})
	e.db.insert(testUser(1, "A", "B"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	get := func(who, path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+keys[who])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	stream := get("a", "/users/sse") // a: 1 of 4
	defer stream.Body.Close()
	if stream.StatusCode != 200 {
		t.Fatalf("a's stream: %d", stream.StatusCode)
	}
	for _, step := range []struct {
		who, path string
		want      int
	}{
		{"a", "/users/sse", 429}, // a: 2 of 4, over a's stream cap
		{"b", "/users/sse?limit=1", 200},
		{"a", "/users/1", 200}, // 3 of 4
		{"a", "/users/1", 200}, // 4 of 4
		{"a", "/users/1", 429},
		{"b", "/users/1", 200},
	} {
		resp := get(step.who, step.path)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != step.want {
			t.Fatalf("%s %s: status %d, want %d: %s", step.who, step.path, resp.StatusCode, step.want, body)
		}
	}
	// Credentials that do not authenticate are refused before any budget.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/users/1", nil)
	req.Header.Set("Authorization", "Bearer nope")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("bad token: %d", resp.StatusCode)
	}
}

// The OpenAPI document declares the limits' answers on every route they
// apply to, and on none of the probes.
func TestOpenAPIDeclaresLimits(t *testing.T) {
	t.Parallel()
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]any `yaml:"responses"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		t.Fatal(err)
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			probe := path == "/healthz" || path == "/readyz"
			for _, code := range []string{"421", "429"} {
				if _, ok := op.Responses[code]; ok == probe {
					t.Errorf("%s %s: declares %s: %v", method, path, code, ok)
				}
			}
		}
	}
}
