// Package ssetest is a Server-Sent Events client for tests: it reads a
// stream in the background and hands out events with deadlines, so tests
// wait for what they expect instead of sleeping.
package ssetest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Wait bounds every wait for an event. It is generous: with Postgres
// behind the feed, a write transaction anywhere on the server holds live
// events back until it ends (see pgtest.HorizonWait), and a starved
// machine is slow to deliver any of them.
var Wait = 2 * time.Minute

// Event is one event, or a comment, or the retry hint.
type Event struct {
	Event, ID, Data, Retry string
	Comment                string
}

// User is the API's user JSON.
type User struct {
	ID           int64   `json:"id"`
	FirstName    string  `json:"first_name"`
	LastName     string  `json:"last_name"`
	Email        string  `json:"email_address"`
	CreatedAt    string  `json:"created_at"`
	DeletedAt    *string `json:"deleted_at"`
	MergedAt     *string `json:"merged_at"`
	ParentUserID *int64  `json:"parent_user_id"`
}

// Client is one open stream. The markers of its phases (snapshot, live)
// are skipped by the methods that look for changes, and recorded.
type Client struct {
	Resp *http.Response
	// Snapshots holds the sizes the snapshot events announced and Lives
	// the ids of the live events, as far as the client has read.
	Snapshots []int64
	Lives     []string

	events chan Event
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
}

// Open opens url, sending lastEventID (if not empty) as Last-Event-ID,
// and fails the test unless the reply is a 200. The stream is closed when
// the test ends.
func Open(t testing.TB, url, lastEventID string) *Client {
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
	c := &Client{Resp: resp, events: make(chan Event, 4096), cancel: cancel, done: make(chan struct{})}
	go c.read()
	t.Cleanup(c.Close)
	return c
}

func (c *Client) read() {
	defer close(c.done)
	defer close(c.events)
	sc := bufio.NewScanner(c.Resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev Event
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			c.events <- ev
			ev = Event{}
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

// Close ends the stream from the client's side.
func (c *Client) Close() {
	c.cancel()
	c.Resp.Body.Close()
	<-c.done
}

// Err is the read error once the stream ended.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Next returns the next event or comment; ok is false when the stream
// ended.
func (c *Client) Next(t testing.TB) (ev Event, ok bool) {
	t.Helper()
	select {
	case ev, ok := <-c.events:
		return ev, ok
	case <-time.After(Wait):
		t.Fatalf("no event within %v", Wait)
		return Event{}, false
	}
}

// marker records ev if it is a phase marker, and reports whether it was
// (or a comment).
func (c *Client) marker(t testing.TB, ev Event) bool {
	t.Helper()
	switch ev.Event {
	case "":
		return true
	case "snapshot":
		var s struct {
			Size *int64 `json:"size"`
		}
		if err := json.Unmarshal([]byte(ev.Data), &s); err != nil || s.Size == nil || ev.ID != "" {
			t.Fatalf("snapshot event %+v: want {\"size\":N} and no id", ev)
		}
		c.Snapshots = append(c.Snapshots, *s.Size)
		return true
	case "live":
		if ev.ID == "" {
			t.Fatalf("live event %+v without an id", ev)
		}
		c.Lives = append(c.Lives, ev.ID)
		return true
	}
	return false
}

// NextChange skips comments and markers and returns the next user or
// leave event: its kind, the user (only the id for a leave) and its id.
func (c *Client) NextChange(t testing.TB) (kind string, u User, id string) {
	t.Helper()
	for {
		ev, ok := c.Next(t)
		if !ok {
			t.Fatalf("stream ended (%v), want a user or a leave", c.Err())
		}
		if c.marker(t, ev) {
			continue
		}
		if (ev.Event != "user" && ev.Event != "leave") || ev.ID == "" {
			t.Fatalf("event %+v, want a user or leave event with an id", ev)
		}
		if err := json.Unmarshal([]byte(ev.Data), &u); err != nil || u.ID == 0 {
			t.Fatalf("event data %q: %v", ev.Data, err)
		}
		return ev.Event, u, ev.ID
	}
}

// NextUser skips comments and markers and returns the next user event
// and its id.
func (c *Client) NextUser(t testing.TB) (User, string) {
	t.Helper()
	kind, u, id := c.NextChange(t)
	if kind != "user" {
		t.Fatalf("%s event for user %d, want a user event", kind, u.ID)
	}
	return u, id
}

// UntilLive skips comments and user events up to the live event and
// returns the ids of the users it skipped.
func (c *Client) UntilLive(t testing.TB) []int64 {
	t.Helper()
	var ids []int64
	for lives := len(c.Lives); len(c.Lives) == lives; {
		ev, ok := c.Next(t)
		if !ok {
			t.Fatalf("stream ended (%v), want a live event", c.Err())
		}
		if c.marker(t, ev) {
			continue
		}
		if ev.Event != "user" {
			t.Fatalf("event %+v before the live event", ev)
		}
		var u User
		if err := json.Unmarshal([]byte(ev.Data), &u); err != nil {
			t.Fatalf("event data %q: %v", ev.Data, err)
		}
		ids = append(ids, u.ID)
	}
	return ids
}

// Users reads n user events and returns their ids and the last event id.
func (c *Client) Users(t testing.TB, n int) ([]int64, string) {
	t.Helper()
	ids := make([]int64, 0, n)
	var last string
	for range n {
		u, id := c.NextUser(t)
		ids = append(ids, u.ID)
		last = id
	}
	return ids, last
}

// Quiet asserts that no user or leave event arrives within d. It only shows that
// something does not happen; it is never a wait for something that does.
func (c *Client) Quiet(t testing.TB, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return
			}
			if !c.marker(t, ev) {
				t.Fatalf("unexpected event %+v", ev)
			}
		case <-timeout:
			return
		}
	}
}

// Ended waits for the server to end the stream, failing on any user or
// leave event before the end.
func (c *Client) Ended(t testing.TB) {
	t.Helper()
	timeout := time.After(Wait)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return
			}
			if !c.marker(t, ev) {
				t.Fatalf("event %+v before the end", ev)
			}
		case <-timeout:
			t.Fatalf("stream did not end within %v", Wait)
		}
	}
}
