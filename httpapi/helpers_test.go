package httpapi

import (
	"bufio"
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
)

var testKey = bytes.Repeat([]byte("k"), 32)

// testEnv is an API over in-memory fakes, served by an httptest server,
// with its hub running.
type testEnv struct {
	db    *memDB
	cache *memCache
	api   *API
	srv   *httptest.Server
	reg   *prometheus.Registry
	logs  *syncBuffer

	stop func()
}

type envOption func(*Config, *Deps)

func newEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	e := &testEnv{db: newMemDB(), cache: newMemCache(), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	cfg := Config{
		CursorKey: testKey, Registry: e.reg,
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		SSE:    SSEOptions{Heartbeat: time.Minute},
		Hub:    HubOptions{MinInterval: time.Millisecond, Poll: 50 * time.Millisecond},
	}
	deps := Deps{Store: e.db, Cache: e.cache, Keys: fakeKeys{}, Feed: e.db}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	api, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	e.api = api
	e.srv = httptest.NewServer(api)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { api.Run(ctx) })
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

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sseEvent is one event (or comment) read from a stream.
type sseEvent struct {
	Event, ID, Data, Retry string
	Comment                string
}

// sseClient reads a stream in the background.
type sseClient struct {
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
}

// openSSE opens url; lastEventID, if not empty, is sent as the header.
func openSSE(t testing.TB, url, lastEventID string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: status %d: %s", url, resp.StatusCode, body)
	}
	c := &sseClient{resp: resp, events: make(chan sseEvent, 1024), cancel: cancel, done: make(chan struct{})}
	go c.read()
	t.Cleanup(c.close)
	return c
}

func (c *sseClient) read() {
	defer close(c.done)
	defer close(c.events)
	sc := bufio.NewScanner(c.resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			c.events <- ev
			ev = sseEvent{}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			ev.Comment = value
		case "event":
			ev.Event = value
		case "id":
			ev.ID = value
		case "data":
			ev.Data = value
		case "retry":
			ev.Retry = value
		}
	}
	c.err = sc.Err()
}

func (c *sseClient) close() {
	c.cancel()
	c.resp.Body.Close()
	<-c.done
}

// next returns the next event or comment, failing after a deadline.
func (c *sseClient) next(t testing.TB) (sseEvent, bool) {
	t.Helper()
	select {
	case ev, ok := <-c.events:
		return ev, ok
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return sseEvent{}, false
	}
}

// nextUser skips comments and returns the next user event.
func (c *sseClient) nextUser(t testing.TB) (jsonUser, string) {
	t.Helper()
	for {
		ev, ok := c.next(t)
		if !ok {
			t.Fatalf("stream ended (err %v), want a user", c.err)
		}
		if ev.Event == "" {
			continue // a comment or the retry hint
		}
		if ev.Event != "user" || ev.ID == "" {
			t.Fatalf("event %+v, want a user event with an id", ev)
		}
		var u jsonUser
		if err := json.Unmarshal([]byte(ev.Data), &u); err != nil {
			t.Fatalf("event data %q: %v", ev.Data, err)
		}
		return u, ev.ID
	}
}

// users reads n user events and returns their ids and the last event id.
func (c *sseClient) users(t testing.TB, n int) ([]int64, string) {
	t.Helper()
	var ids []int64
	var last string
	for range n {
		u, id := c.nextUser(t)
		ids = append(ids, u.ID)
		last = id
	}
	return ids, last
}

// quiet asserts that no user event arrives within d. (Only used to show
// that something does NOT happen; never to wait for something that does.)
func (c *sseClient) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return
			}
			if ev.Event != "" {
				t.Fatalf("unexpected event %+v", ev)
			}
		case <-timeout:
			return
		}
	}
}

// ended waits for the server to end the stream.
func (c *sseClient) ended(t testing.TB) {
	t.Helper()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return
			}
			if ev.Event != "" {
				t.Fatalf("event %+v after the end", ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("stream did not end within 5s")
		}
	}
}

// jsonUser is the API's user JSON, decoded.
type jsonUser struct {
	ID           int64   `json:"id"`
	FirstName    string  `json:"first_name"`
	LastName     string  `json:"last_name"`
	Email        string  `json:"email_address"`
	CreatedAt    string  `json:"created_at"`
	DeletedAt    *string `json:"deleted_at"`
	MergedAt     *string `json:"merged_at"`
	ParentUserID *int64  `json:"parent_user_id"`
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
