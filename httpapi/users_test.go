package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/changefeed"
)

func TestGetUserJSON(t *testing.T) {
	e := newEnv(t)
	deleted := time.Date(2024, 5, 6, 7, 8, 9, 120_000_000, time.FixedZone("X", 3600))
	merged := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	parent := int64(7)
	e.db.insert(
		seal(viswals.User{ID: 1, FirstName: "Ann", LastName: `O"Brien <x>`, Email: "ann@example.com",
			CreatedAt: time.UnixMilli(1700000000123)}),
		seal(viswals.User{ID: 2, FirstName: "Émile", LastName: "Zola", Email: "e@z.fr",
			CreatedAt: time.UnixMilli(0), DeletedAt: &deleted, MergedAt: &merged, ParentUserID: &parent}),
	)
	for _, tc := range []struct {
		path string
		want string
	}{
		{"/users/1", `{"status":"success","data":{"id":1,"first_name":"Ann","last_name":"O\"Brien \u003cx\u003e","email_address":"ann@example.com","created_at":"2023-11-14T22:13:20.123Z","deleted_at":null,"merged_at":null,"parent_user_id":null}}` + "\n"},
		{"/users/2", `{"status":"success","data":{"id":2,"first_name":"Émile","last_name":"Zola","email_address":"e@z.fr","created_at":"1970-01-01T00:00:00Z","deleted_at":"2024-05-06T06:08:09.12Z","merged_at":"2024-05-06T07:08:09Z","parent_user_id":7}}` + "\n"},
	} {
		resp, err := http.Get(e.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != tc.want {
			t.Errorf("GET %s: %d %s\nwant 200 %s", tc.path, resp.StatusCode, body, tc.want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
	}
}

func TestGetUserStatuses(t *testing.T) {
	e := newEnv(t)
	e.db.insert(testUser(5, "Ann", "Lee"))
	for _, tc := range []struct {
		path   string
		status int
		msg    string
	}{
		{"/users/5", 200, ""},
		{"/users/6", 404, "user 6 not found"},
		{"/users/0", 400, "id must be a positive integer"},
		{"/users/-1", 400, "id"},
		{"/users/+5", 400, "id"},
		{"/users/5.0", 400, "id"},
		{"/users/abc", 400, "id"},
		{"/users/%205", 400, "id"},
		{"/users/0x5", 400, "id"},
		{"/users/9223372036854775807", 404, "not found"},
		{"/users/9223372036854775808", 400, "id"},
		{"/users/99999999999999999999999", 400, "id"},
		{"/users/1%3B%20DROP%20TABLE%20users", 400, "id"},
		{"/users/1%20OR%201=1", 400, "id"},
		{"/users/%E2%80%AE5", 400, "id"},
		{"/users/%ff", 400, "id"},
	} {
		status, body := e.get(t, tc.path)
		if tc.status == 200 {
			if status != 200 || body["status"] != "success" {
				t.Errorf("GET %s: %d %v", tc.path, status, body)
			}
			continue
		}
		wantError(t, tc.path, status, body, tc.status, tc.msg)
	}
}

// A client that goes away while its user is read gets nothing more, and
// its cancelled request is not logged as a failure.
func TestGetUserClientGone(t *testing.T) {
	e := newEnv(t)
	e.db.insert(testUser(1, "Ann", "Lee"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest(http.MethodGet, "http://localhost/users/1", nil).WithContext(ctx)
	e.api.ServeHTTP(httptest.NewRecorder(), req)
	if logs := e.logs.String(); strings.Contains(logs, "request failed") {
		t.Errorf("logged a cancelled request: %s", logs)
	}
}

func TestGetUserStoreErrors(t *testing.T) {
	e := newEnv(t)
	e.db.getErr = viswals.Errorf(viswals.EUNAVAILABLE, "postgres: dial tcp 10.0.0.1:5432: connection refused")
	status, body := e.get(t, "/users/1")
	wantError(t, "/users/1", status, body, 503, "unavailable")
	if strings.Contains(body["error"].(string), "10.0.0.1") {
		t.Errorf("internal detail leaked: %v", body)
	}

	e.db.getErr = errors.New("pq: secret internals")
	status, body = e.get(t, "/users/1")
	wantError(t, "/users/1", status, body, 500, "internal error")
	if strings.Contains(body["error"].(string), "secret") {
		t.Errorf("internal detail leaked: %v", body)
	}
	if !strings.Contains(e.logs.String(), "secret internals") {
		t.Errorf("500 not logged with its cause")
	}
}

func TestErrorStatus(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		msg    string
	}{
		{viswals.Errorf(viswals.EINVALID, "limit is bad"), 400, "limit is bad"},
		{viswals.Errorf(viswals.ENOTFOUND, "user 1 not found"), 404, "user 1 not found"},
		{viswals.Errorf(viswals.EUNAVAILABLE, "db down at 10.1.2.3"), 503, "service unavailable, try again later"},
		{viswals.Errorf(viswals.EINTERNAL, "bug"), 500, "internal error"},
		{errors.New("anything"), 500, "internal error"},
	} {
		status, msg := errorStatus(tc.err)
		if status != tc.status || msg != tc.msg {
			t.Errorf("errorStatus(%v) = %d %q, want %d %q", tc.err, status, msg, tc.status, tc.msg)
		}
	}
}

// listIDs returns the ids of a /users reply and its next_cursor.
func listIDs(t *testing.T, body map[string]any) ([]int64, string) {
	t.Helper()
	data, ok := body["data"].([]any)
	if !ok || body["status"] != "success" {
		t.Fatalf("not a list envelope: %v", body)
	}
	if _, ok := body["next_cursor"]; !ok || len(body) != 3 {
		t.Fatalf("envelope %v: want status, data, next_cursor", body)
	}
	var ids []int64
	for _, d := range data {
		ids = append(ids, int64(d.(map[string]any)["id"].(float64)))
	}
	next, _ := body["next_cursor"].(string)
	return ids, next
}

func TestListUsersFilters(t *testing.T) {
	e := newEnv(t)
	e.db.insert(
		testUser(1, "Ann", "Lee"),
		testUser(2, "anna", "Leeds"),
		testUser(3, "ANNABEL", "Smith"),
		testUser(4, "Bob", "Lee"),
		testUser(5, "100%", "x_y"),
		testUser(6, "1000", "xay"),
		testUser(7, `a\b`, "Ölund"),
		testUser(8, "ab", "ölander"),
		testUser(9, "Robert'); DROP TABLE users;--", "Tables"),
	)
	for _, tc := range []struct {
		query string
		want  []int64
	}{
		{"", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"first_name=ann", []int64{1, 2, 3}},
		{"first_name=ANNA", []int64{2, 3}},
		{"first_name=ann&last_name=lee", []int64{1, 2}},
		{"last_name=LEE&first_name=b", []int64{4}},
		{"first_name=100%25", []int64{5}},
		{"first_name=%25", nil},
		{"last_name=x_", []int64{5}},
		{"last_name=_", nil},
		{"first_name=a%5C", []int64{7}},
		{"first_name=%5C", nil},
		{"last_name=%C3%B6l", []int64{7, 8}},
		{"last_name=%C3%96LA", []int64{8}},
		{"first_name=Robert%27%29%3B%20DROP", []int64{9}},
		{"first_name=%27%20OR%201%3D1%20--", nil},
		{"first_name=&last_name=", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"unknown=1&first_name=bob", []int64{4}},
		{"x%zz=1&a=1;b=2&first_name=bob&y=%", []int64{4}},
		{"limit=2", []int64{1, 2}},
	} {
		status, body := e.get(t, "/users?"+tc.query)
		if status != 200 {
			t.Errorf("?%s: status %d %v", tc.query, status, body)
			continue
		}
		ids, _ := listIDs(t, body)
		if !slices.Equal(ids, tc.want) {
			t.Errorf("?%s: ids %v, want %v", tc.query, ids, tc.want)
		}
	}
}

func TestListUsersBadParams(t *testing.T) {
	e := newEnv(t)
	e.db.insert(testUser(1, "Ann", "Lee"), testUser(2, "Bob", "Lee"))
	_, page := e.get(t, "/users?limit=1&first_name=a")
	_, annCursor := listIDs(t, page)
	_, page = e.get(t, "/users?limit=1")
	_, allCursor := listIDs(t, page)
	if annCursor != "" {
		t.Fatal("one Ann, limit 1: the page should be the last")
	}
	if allCursor == "" {
		t.Fatal("no next_cursor on a full page")
	}
	otherKey := changefeed.NewCodec([]byte(strings.Repeat("z", 32)), viswals.Filter{}).Append(nil, changefeed.Cursor{Kind: changefeed.KindList, AfterID: 1})
	streamCursor := changefeed.NewCodec(testKey, viswals.Filter{}).Append(nil, changefeed.Cursor{Kind: changefeed.KindLive, Pos: viswals.Pos{Xid: 1}})
	tampered := []byte(allCursor)
	tampered[3] ^= 1

	for _, tc := range []struct {
		query string
		msg   string
	}{
		{"limit=0", "limit must be an integer between 1 and 1000"},
		{"limit=1001", "limit"},
		{"limit=-1", "limit"},
		{"limit=abc", "limit"},
		{"limit=1.5", "limit"},
		{"limit=", "limit"},
		{"limit=%2B5", "limit"},
		{"limit=%205", "limit"},
		{"limit=99999999999999999999999999", "limit"},
		{"limit=1;DROP%20TABLE%20users", "limit"},
		{"limit=1%3BDROP%20TABLE%20users", "limit must be"},
		{"limit=1&limit=2", "limit is given more than once"},
		{"first_name=" + strings.Repeat("a", 257), "first_name is longer than 256 bytes"},
		{"last_name=%ff", "last_name is not valid UTF-8"},
		{"first_name=a%00b", "first_name contains a NUL byte"},
		{"first_name=a&first_name=b", "first_name"},
		{"first_name=%zz", "first_name is malformed"},
		{"limit=1;DROP", "limit is malformed"},
		{"x=" + strings.Repeat("a", 9000), "query string is longer"},
		{"cursor=", "invalid cursor"},
		{"cursor=garbage", "invalid cursor"},
		{"cursor=" + strings.Repeat("A", 5000), "invalid cursor"},
		{"cursor=%27%20OR%201%3D1", "invalid cursor"},
		{"cursor=" + string(tampered), "invalid cursor"},
		{"cursor=" + allCursor[:len(allCursor)-2], "invalid cursor"},
		{"cursor=" + string(otherKey), "invalid cursor"},
		{"cursor=" + string(streamCursor), "invalid cursor"},
		{"cursor=" + allCursor + "&first_name=a", "invalid cursor: it was made for other filters"},
		{"cursor=" + allCursor + "&last_name=lee", "other filters"},
	} {
		status, body := e.get(t, "/users?"+tc.query)
		wantError(t, "?"+tc.query, status, body, 400, tc.msg)
	}
}

func TestListUsersPaging(t *testing.T) {
	for _, tc := range []struct {
		users, limit int
	}{
		{0, 10}, {1, 1}, {10, 10}, {11, 10}, {2500, 1000}, {2000, 1000}, {7, 3},
	} {
		e := newEnv(t)
		for i := range tc.users {
			// ids with gaps, inserted out of order
			e.db.insert(testUser(int64(3*(tc.users-i)), "N", "M"))
		}
		var got []int64
		q := url.Values{"limit": {itoa(tc.limit)}}
		pages := 0
		for {
			status, body := e.get(t, "/users?"+q.Encode())
			if status != 200 {
				t.Fatalf("status %d %v", status, body)
			}
			ids, next := listIDs(t, body)
			pages++
			if len(ids) > tc.limit {
				t.Fatalf("page of %d > limit %d", len(ids), tc.limit)
			}
			got = append(got, ids...)
			if next == "" {
				break
			}
			if len(ids) != tc.limit {
				t.Fatalf("short page %d with a next_cursor", len(ids))
			}
			q.Set("cursor", next)
		}
		if len(got) != tc.users || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("%d users, limit %d: got %d ids (sorted %v)", tc.users, tc.limit, len(got), slices.IsSorted(got))
		}
		if want := max(1, (tc.users+tc.limit-1)/tc.limit); pages != want {
			t.Errorf("%d users, limit %d: %d pages, want %d", tc.users, tc.limit, pages, want)
		}
		e.stop()
	}
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + string(appendInt(nil, n))) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func TestListUsersStoreFails(t *testing.T) {
	e := newEnv(t)
	for i := range 2000 {
		e.db.insert(testUser(int64(i+1), "Name", "Surname"))
	}
	// Before the first row: a clean error reply.
	e.db.listErr, e.db.listErrAfter = viswals.Errorf(viswals.EUNAVAILABLE, "down"), 0
	status, body := e.get(t, "/users")
	wantError(t, "/users", status, body, 503, "unavailable")

	// After a few rows, still inside the buffer: a clean error too.
	e.db.listErrAfter = 3
	status, body = e.get(t, "/users")
	wantError(t, "/users", status, body, 503, "unavailable")

	// After the first 32 KiB went out: the connection is cut, so the client
	// cannot mistake a partial page for a whole one.
	e.db.listErrAfter = 900
	resp, err := http.Get(e.srv.URL + "/users?limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("a reply broken mid-stream was read as complete")
	}
}

func TestListUsersDecryptFailure(t *testing.T) {
	e := newEnv(t)
	bad := testUser(1, "A", "B")
	bad.EmailSealed = "not sealed"
	e.db.insert(bad)
	status, body := e.get(t, "/users")
	wantError(t, "/users", status, body, 500, "internal error")
}
