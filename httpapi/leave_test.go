package httpapi

import (
	"slices"
	"testing"
	"time"

	"github.com/viswals/viswals/httpapi/internal/ssetest"
)

// The stream's phases and leaves as a client reads them: the snapshot's
// size first, its users, live, then users and leaves, each resumable.
func TestSSESnapshotLiveAndLeave(t *testing.T) {
	e := newEnv(t, func(s *envSettings) { s.feed.PageSize = 2 })
	e.db.insert(testUser(1, "Ann", "Lee"), testUser(2, "Andy", "Lee"), testUser(3, "Bob", "Lee"), testUser(4, "Anna", "Moe"))
	url := e.srv.URL + "/users/sse?first_name=an"
	c := ssetest.Open(t, url, "")
	ids := c.UntilLive(t)
	if !slices.Equal(ids, []int64{1, 2, 4}) || !slices.Equal(c.Snapshots, []int64{3}) {
		t.Fatalf("snapshot %v announced as %v, want [1 2 4] announced as [3]", ids, c.Snapshots)
	}
	live := c.Lives[0]

	e.db.insert(testUser(1, "Zed", "Lee")) // renamed out
	kind, u, leaveID := c.NextChange(t)
	if kind != "leave" || u.ID != 1 || u.FirstName != "" {
		t.Fatalf("%s %+v, want a leave of 1 with only its id", kind, u)
	}
	e.db.insert(testUser(3, "Anders", "Lee")) // renamed in
	if kind, u, _ := c.NextChange(t); kind != "user" || u.ID != 3 || u.FirstName != "Anders" {
		t.Fatalf("%s %+v, want user 3", kind, u)
	}
	e.db.insert(testUser(1, "Zoe", "Lee")) // still out
	c.Quiet(t, 50*time.Millisecond)
	c.Close()

	// Resumed from before the leave: 3 and the leave of 1 (from the ring
	// at its first change, or, once the ring is gone, from the store at
	// its last: 1 changed twice since that cursor); from the leave: 3
	// only. Live at once, nothing repeated.
	for _, tc := range []struct {
		from string
		want []string
	}{
		{live, []string{"leave 1", "user 3"}},
		{leaveID, []string{"user 3"}},
	} {
		r := ssetest.Open(t, url, tc.from)
		var got []string
		for range tc.want {
			kind, u, _ := r.NextChange(t)
			got = append(got, kind+" "+string(rune('0'+u.ID)))
		}
		r.Quiet(t, 50*time.Millisecond)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) || !slices.Equal(r.Snapshots, []int64{0}) || len(r.Lives) != 1 {
			t.Fatalf("resumed: %v (snapshots %v, %d live), want %v", got, r.Snapshots, len(r.Lives), tc.want)
		}
	}

	// limit counts users and leaves, not the markers.
	l := ssetest.Open(t, e.srv.URL+"/users/sse?first_name=an&limit=2", live)
	k1, u1, _ := l.NextChange(t)
	k2, u2, _ := l.NextChange(t)
	if got := []string{k1 + " " + string(rune('0'+u1.ID)), k2 + " " + string(rune('0'+u2.ID))}; !slices.Contains(got, "leave 1") {
		t.Fatalf("%v, want the leave of 1 among them", got)
	}
	l.Ended(t)
}
