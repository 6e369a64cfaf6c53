package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/viswals/viswals/httpapi/internal/ssetest"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/changefeed"
	"github.com/viswals/viswals/internal/wait"
)

func TestSSESnapshotThenLive(t *testing.T) {
	e := newEnv(t)
	e.db.insert(testUser(3, "C", "C"), testUser(1, "A", "A"))
	e.db.insert(testUser(2, "B", "B"))

	c := ssetest.Open(t, e.srv.URL+"/users/sse", "")
	if h := c.Resp.Header; h.Get("Content-Type") != "text/event-stream" || h.Get("Cache-Control") != "no-store" || h.Get("X-Accel-Buffering") != "no" {
		t.Errorf("headers %v", h)
	}
	if ev, _ := c.Next(t); ev.Retry != "2000" {
		t.Errorf("first message %+v, want the retry hint", ev)
	}
	if ids, _ := c.Users(t, 3); !slices.Equal(ids, []int64{1, 2, 3}) {
		t.Fatalf("snapshot %v, want ids in order", ids)
	}
	// Live: a new user and an update of an old one.
	e.db.insert(testUser(10, "J", "J"))
	u := testUser(1, "A2", "A")
	e.db.insert(u)
	u1, _ := c.NextUser(t)
	u2, _ := c.NextUser(t)
	if u1.ID != 10 || u2.ID != 1 || u2.FirstName != "A2" || u2.Email != "user1@example.com" {
		t.Fatalf("live events %+v %+v", u1, u2)
	}
}

func TestSSELimitEndsStream(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.db.insert(testUser(int64(i+1), "A", "A"))
	}
	c := ssetest.Open(t, e.srv.URL+"/users/sse?limit=3", "")
	if ids, _ := c.Users(t, 3); !slices.Equal(ids, []int64{1, 2, 3}) {
		t.Fatalf("ids %v", ids)
	}
	c.Ended(t)

	// A limit that spans the snapshot and live phases.
	c = ssetest.Open(t, e.srv.URL+"/users/sse?limit=7", "")
	c.Users(t, 5)
	e.db.insert(testUser(6, "A", "A"), testUser(7, "A", "A"), testUser(8, "A", "A"))
	if ids, _ := c.Users(t, 2); !slices.Equal(ids, []int64{6, 7}) {
		t.Fatalf("live ids %v", ids)
	}
	c.Ended(t)
}

func TestSSEResumeNoGapNoRepeat(t *testing.T) {
	for _, via := range []string{"header", "query"} {
		t.Run(via, func(t *testing.T) {
			e := newEnv(t, func(s *envSettings) { s.feed.PageSize = 3 })
			for i := range 10 {
				e.db.insert(testUser(int64(i+1), "A", "A"))
			}
			open := func(last string) *ssetest.Client {
				if last == "" || via == "header" {
					return ssetest.Open(t, e.srv.URL+"/users/sse?first_name=a", last)
				}
				return ssetest.Open(t, e.srv.URL+"/users/sse?first_name=a&last_event_id="+url.QueryEscape(last), "")
			}
			var got []int64
			// Disconnect mid-snapshot...
			c := open("")
			ids, last := c.Users(t, 4)
			got = append(got, ids...)
			c.Close()
			// ...resume, finish the snapshot, get some live changes...
			c = open(last)
			ids, _ = c.Users(t, 6)
			got = append(got, ids...)
			e.db.insert(testUser(11, "A", "A"))
			e.db.insert(testUser(12, "A", "A"))
			ids, last = c.Users(t, 2)
			got = append(got, ids...)
			c.Close()
			// ...changes while disconnected...
			e.db.insert(testUser(13, "A", "A"))
			e.db.insert(testUser(14, "B", "B")) // filtered out
			e.db.insert(testUser(2, "Also", "A"))
			c = open(last)
			ids, _ = c.Users(t, 2)
			got = append(got, ids...)
			c.Quiet(t, 50*time.Millisecond)
			want := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 2}
			if !slices.Equal(got, want) {
				t.Fatalf("events %v, want %v", got, want)
			}
		})
	}
}

func TestSSEFilteredLive(t *testing.T) {
	e := newEnv(t)
	e.db.insert(testUser(1, "Ann", "Lee"), testUser(2, "Bob", "Lee"))
	c := ssetest.Open(t, e.srv.URL+"/users/sse?first_name=AN&last_name=l", "")
	if ids, _ := c.Users(t, 1); ids[0] != 1 {
		t.Fatalf("snapshot %v", ids)
	}
	e.db.insert(testUser(3, "Bob", "Lewis"), testUser(4, "anna", "Lewis"), testUser(5, "Anne", "Smith"))
	e.db.insert(testUser(6, "Éanna", "L"), testUser(7, "ANDY", "LAW"))
	if ids, _ := c.Users(t, 2); !slices.Equal(ids, []int64{4, 7}) {
		t.Fatalf("live %v, want [4 7]", ids)
	}
	c.Quiet(t, 50*time.Millisecond)
}

// A transaction that started before another but commits after it must
// still be delivered: a reader that moved past the later transaction's
// position would skip it.
func TestSSEOutOfOrderCommit(t *testing.T) {
	e := newEnv(t)
	// In flight when the stream opens: not in the snapshot, so it must
	// come live.
	inflight := e.db.begin().put(testUser(1, "A", "A"))
	c := ssetest.Open(t, e.srv.URL+"/users/sse", "")
	c.Quiet(t, 30*time.Millisecond)

	slow := e.db.begin().put(testUser(2, "A", "A"))
	fast := e.db.begin().put(testUser(3, "A", "A"))
	fast.commit()
	e.db.insert(testUser(4, "A", "A"))
	slow.commit()
	inflight.commit()
	ids, _ := c.Users(t, 4)
	slices.Sort(ids)
	if !slices.Equal(ids, []int64{1, 2, 3, 4}) {
		t.Fatalf("live %v, want all four", ids)
	}
	c.Quiet(t, 50*time.Millisecond)
}

// Resuming from a cursor older than the hub's ring reads Postgres until it
// is back inside the ring.
func TestSSECatchUpBehindRing(t *testing.T) {
	e := newEnv(t, func(s *envSettings) {
		s.feed.RingSize = 4
		s.feed.PageSize = 3
	})
	e.db.insert(testUser(1, "A", "A"))
	c := ssetest.Open(t, e.srv.URL+"/users/sse", "")
	_, last := c.Users(t, 1)
	// Keep the hub reading while we are away: another stream stays open.
	other := ssetest.Open(t, e.srv.URL+"/users/sse", "")
	other.Users(t, 1)
	c.Close()
	for i := range 20 {
		e.db.insert(testUser(int64(100+i), "A", "A"))
	}
	other.Users(t, 20) // the hub has seen them all; the ring holds the last 4
	c = ssetest.Open(t, e.srv.URL+"/users/sse", last)
	ids, _ := c.Users(t, 20)
	for i, id := range ids {
		if id != int64(100+i) {
			t.Fatalf("resumed ids %v", ids)
		}
	}
	e.db.insert(testUser(200, "A", "A"))
	if ids, _ := c.Users(t, 1); ids[0] != 200 {
		t.Fatalf("after catching up: %v", ids)
	}
}

func TestSSEHeartbeat(t *testing.T) {
	e := newEnv(t, func(s *envSettings) { s.cfg.SSE.Heartbeat = 20 * time.Millisecond })
	c := ssetest.Open(t, e.srv.URL+"/users/sse", "")
	for pings := 0; pings < 3; {
		ev, ok := c.Next(t)
		if !ok {
			t.Fatal("stream ended")
		}
		if ev.Comment == "ping" {
			pings++
		}
	}
}

func TestSSEBadRequests(t *testing.T) {
	e := newEnv(t)
	list := changefeed.NewCodec(testKey, viswals.Filter{}).Append(nil, changefeed.Cursor{Kind: changefeed.KindList, AfterID: 1})
	other := changefeed.NewCodec(testKey, viswals.Filter{FirstName: "x"}).Append(nil, changefeed.Cursor{Kind: changefeed.KindLive, Pos: viswals.Pos{Xid: 1}})
	for _, tc := range []struct {
		query, header, msg string
	}{
		{"limit=0", "", "limit must be an integer between 1 and 1000000000"},
		{"limit=x", "", "limit"},
		{"first_name=%ff", "", "first_name is not valid UTF-8"},
		{"last_event_id=garbage", "", "invalid last_event_id"},
		{"", "garbage", "invalid Last-Event-ID"},
		{"", string(list), "invalid Last-Event-ID"},
		{"", string(other), "Last-Event-ID: it was made for other filters"},
		{"last_event_id=" + string(other), "", "invalid last_event_id"},
	} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/users/sse?"+tc.query, nil)
		if tc.header != "" {
			req.Header.Set("Last-Event-ID", tc.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := decodeBody(t, resp)
		wantError(t, "/users/sse?"+tc.query, resp.StatusCode, body, 400, tc.msg)
	}

	e.db.snapErr = viswals.Errorf(viswals.EUNAVAILABLE, "down")
	status, body := e.get(t, "/users/sse")
	wantError(t, "/users/sse", status, body, 503, "unavailable")
}

// The server's read and write timeouts must not cut a healthy stream.
func TestSSESurvivesServerTimeouts(t *testing.T) {
	e := newEnv(t, func(s *envSettings) { s.cfg.SSE.Heartbeat = 30 * time.Millisecond })
	ts := httptest.NewUnstartedServer(e.api)
	ts.Config = NewServer("", e.api)
	ts.Config.ReadTimeout, ts.Config.WriteTimeout = 100*time.Millisecond, 100*time.Millisecond
	ts.Start()
	defer ts.Close()
	c := ssetest.Open(t, ts.URL+"/users/sse", "")
	defer c.Close()
	start := time.Now()
	for time.Since(start) < 400*time.Millisecond {
		if ev, ok := c.Next(t); !ok {
			t.Fatalf("stream cut after %v (err %v)", time.Since(start), c.Err())
		} else if ev.Event != "" && ev.Event != "snapshot" && ev.Event != "live" {
			t.Fatalf("unexpected %+v", ev)
		}
	}
	e.db.insert(testUser(1, "A", "A"))
	if ids, _ := c.Users(t, 1); ids[0] != 1 {
		t.Fatal(ids)
	}
}

// Many streams share one changefeed reader: the number of changefeed
// queries does not grow with the number of streams.
func TestSSEManySubscribersShareTheHub(t *testing.T) {
	e := newEnv(t)
	const n = 300
	t0 := time.Now()
	clients := make([]*ssetest.Client, n)
	for i := range clients {
		clients[i] = ssetest.Open(t, e.srv.URL+"/users/sse", "")
	}
	t.Logf("opened %d streams in %v", n, time.Since(t0))
	t0 = time.Now()
	e.db.mu.Lock()
	before := e.db.changesCalls
	e.db.mu.Unlock()
	for round := range 5 {
		e.db.insert(testUser(int64(round+1), "A", "A"))
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Go(func() {
				if ids, _ := c.Users(t, 1); ids[0] != int64(round+1) {
					t.Errorf("round %d: got %v", round, ids)
				}
			})
		}
		wg.Wait()
	}
	e.db.mu.Lock()
	calls := e.db.changesCalls - before
	e.db.mu.Unlock()
	if calls > 3*n/2 {
		t.Errorf("%d changefeed queries for %d streams × 5 changes: streams are polling", calls, n)
	}
	t.Logf("%d changefeed queries for %d streams × 5 changes, in %v", calls, n, time.Since(t0))
}

func TestSSENoLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	e := newEnv(t, func(s *envSettings) { s.cfg.SSE.Heartbeat = 10 * time.Millisecond })
	e.db.insert(testUser(1, "A", "A"))
	var clients []*ssetest.Client
	for i := range 20 {
		q := ""
		if i%2 == 0 {
			q = "?first_name=a"
		}
		c := ssetest.Open(t, e.srv.URL+"/users/sse"+q, "")
		c.Users(t, 1)
		clients = append(clients, c)
	}
	e.db.insert(testUser(2, "A", "A"))
	for _, c := range clients {
		c.Users(t, 1)
		c.Close()
	}
	// The hub stops reading once every stream is gone.
	wait.For(t, time.Minute, "the hub to have no stream", func() (bool, string) {
		n := e.feed.Streams()
		return n == 0, fmt.Sprintf("%d streams", n)
	})
	e.stop()
	http.DefaultClient.CloseIdleConnections()
	goleak.VerifyNone(t, ignore)
}

func TestSSECursorShape(t *testing.T) {
	e := newEnv(t)
	e.db.insert(testUser(1, "A", "A"))
	c := ssetest.Open(t, e.srv.URL+"/users/sse", "")
	_, id := c.NextUser(t)
	if strings.ContainsAny(id, "\n\r:") || len(id) > 200 {
		t.Errorf("event id %q", id)
	}
	codec := changefeed.NewCodec(testKey, viswals.Filter{})
	cur, err := codec.Decode(id, changefeed.KindSnapshot)
	if err != nil || cur.AfterID != 1 || !cur.HasSnap {
		t.Fatalf("cursor %+v %v", cur, err)
	}
	e.db.insert(testUser(2, "A", "A"))
	_, id = c.NextUser(t)
	cur, err = codec.Decode(id, changefeed.KindLive)
	if err != nil || cur.Pos.ID != 2 || cur.HasSnap {
		t.Fatalf("live cursor %+v %v (the snapshot should be dropped once passed)", cur, err)
	}
}

// A notified commit held back by an older transaction that ends without
// notifying (another application's, say) is delivered without waiting for
// the slow poll.
func TestSSEHeldBackCommitWithoutPoll(t *testing.T) {
	e := newEnv(t, func(s *envSettings) { s.feed.Poll = time.Hour })
	c := ssetest.Open(t, e.srv.URL+"/users/sse", "")
	c.Quiet(t, 20*time.Millisecond)
	other := e.db.begin()
	e.db.insert(testUser(1, "A", "A"))
	c.Quiet(t, 50*time.Millisecond)
	other.abort()
	if ids, _ := c.Users(t, 1); ids[0] != 1 {
		t.Fatal(ids)
	}
}
