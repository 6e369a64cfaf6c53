package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/viswals/viswals"
)

// FuzzParseListParams: no query string makes the parser fail with
// anything but a 400, and whatever it accepts is within bounds.
func FuzzParseListParams(f *testing.F) {
	for _, q := range []string{"", "limit=10", "first_name=ann&last_name=lee", "limit=1001", "limit=-1",
		"first_name=%ff", "first_name=%00", "cursor=abc", "first_name='; DROP TABLE users;--", "a=1;b=2", "%zz", "limit=1&limit=2"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		p, _, err := parseListParams(q, testKey)
		if err != nil {
			if viswals.ErrorCode(err) != viswals.EINVALID {
				t.Fatalf("%q: error %v is not EINVALID", q, err)
			}
			return
		}
		if p.limit < 1 || p.limit > maxListLimit || p.afterID < 0 ||
			len(p.filter.FirstName) > viswals.MaxFilterBytes || len(p.filter.LastName) > viswals.MaxFilterBytes {
			t.Fatalf("%q: accepted out-of-bounds %+v", q, p)
		}
	})
}

func FuzzParseStreamParams(f *testing.F) {
	f.Add("limit=5", "")
	f.Add("last_event_id=x", "")
	f.Add("", "garbage")
	f.Fuzz(func(t *testing.T, q, lastEventID string) {
		p, _, err := parseStreamParams(q, lastEventID, testKey)
		if err != nil {
			if viswals.ErrorCode(err) != viswals.EINVALID {
				t.Fatalf("%q: error %v is not EINVALID", q, err)
			}
			return
		}
		if p.limit < 0 || p.limit > maxStreamLimit {
			t.Fatalf("%q: limit %d", q, p.limit)
		}
	})
}

// FuzzHandlers sends arbitrary queries and ids through the real handlers
// over fakes: the reply is never a 5xx.
func FuzzHandlers(f *testing.F) {
	f.Add("/users", "limit=3&first_name=a")
	f.Add("/users/1", "")
	f.Add("/users/sse", "limit=1")
	f.Add("/users/%ff", "")
	e := newEnv(f)
	for i := range 5 {
		e.db.insert(testUser(int64(i+1), "Ann", "Lee"))
	}
	f.Fuzz(func(t *testing.T, path, query string) {
		u, err := url.Parse("http://x" + path)
		if err != nil || u.Path == "" || u.Path[0] != '/' {
			return
		}
		u.RawQuery = query
		if u.Path == "/users/sse" {
			q := u.Query()
			q.Set("limit", "1") // end the stream
			if _, _, err := parseStreamParams(query, "", testKey); err == nil {
				u.RawQuery = q.Encode()
			}
		}
		// A stream that matches nothing would never reach its limit.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
		req.URL = u
		req.RequestURI = u.RequestURI()
		w := httptest.NewRecorder()
		e.api.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("GET %s: %d %s", u, w.Code, w.Body)
		}
	})
}
