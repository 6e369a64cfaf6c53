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

// Wait bounds every wait for an event.
var Wait = 10 * time.Second

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

// Client is one open stream.
type Client struct {
	Resp   *http.Response
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

// NextUser skips comments and returns the next user event and its id.
func (c *Client) NextUser(t testing.TB) (User, string) {
	t.Helper()
	for {
		ev, ok := c.Next(t)
		if !ok {
			t.Fatalf("stream ended (%v), want a user", c.Err())
		}
		if ev.Event == "" {
			continue
		}
		if ev.Event != "user" || ev.ID == "" {
			t.Fatalf("event %+v, want a user event with an id", ev)
		}
		var u User
		if err := json.Unmarshal([]byte(ev.Data), &u); err != nil {
			t.Fatalf("event data %q: %v", ev.Data, err)
		}
		return u, ev.ID
	}
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

// Quiet asserts that no user event arrives within d. It only shows that
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
			if ev.Event != "" {
				t.Fatalf("unexpected event %+v", ev)
			}
		case <-timeout:
			return
		}
	}
}

// Ended waits for the server to end the stream, failing on any user
// event before the end.
func (c *Client) Ended(t testing.TB) {
	t.Helper()
	timeout := time.After(Wait)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return
			}
			if ev.Event != "" {
				t.Fatalf("event %+v before the end", ev)
			}
		case <-timeout:
			t.Fatalf("stream did not end within %v", Wait)
		}
	}
}
