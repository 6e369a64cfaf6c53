package changefeed_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/changefeed"
	"github.com/viswals/viswals/postgres/pgtest"
)

// got is one user or leave event, as a test compares them.
type got struct {
	kind changefeed.EventKind
	id   int64
}

// changes reads s until it has n user or leave events and returns them
// with the cursor after the last; markers are checked to come in order
// (a snapshot first, one live after the snapshot's users).
func changes(t *testing.T, s *changefeed.Stream, n int) ([]got, changefeed.Cursor) {
	t.Helper()
	var out []got
	var last changefeed.Cursor
	deadline := time.NewTimer(pgtest.HorizonWait)
	defer deadline.Stop()
	for len(out) < n {
		events, more, err := s.Next(context.Background())
		require.NoError(t, err)
		for _, e := range events {
			switch e.Kind {
			case changefeed.EventUser, changefeed.EventLeave:
				out = append(out, got{e.Kind, e.User.ID})
				last = e.Cursor
			}
		}
		if more == nil || len(out) >= n {
			continue
		}
		select {
		case <-more:
		case <-deadline.C:
			t.Fatalf("got %d events of %d: %v", len(out), n, out)
		}
	}
	return out, last
}

// snapshotOf reads a new stream's snapshot phase: the announced size, the
// users, and the live event's cursor.
func snapshotOf(t *testing.T, s *changefeed.Stream) (size int64, ids []int64, live changefeed.Cursor) {
	t.Helper()
	size = -1
	for {
		events, _, err := s.Next(context.Background())
		require.NoError(t, err)
		for _, e := range events {
			switch e.Kind {
			case changefeed.EventSnapshot:
				require.Equal(t, int64(-1), size, "one snapshot event")
				require.Empty(t, ids, "the snapshot event comes first")
				size = e.Size
			case changefeed.EventUser:
				require.NotEqual(t, int64(-1), size, "the snapshot event comes first")
				ids = append(ids, e.User.ID)
			case changefeed.EventLive:
				require.Equal(t, changefeed.KindLive, e.Cursor.Kind)
				return size, ids, e.Cursor
			default:
				t.Fatalf("event of kind %d in the snapshot phase", e.Kind)
			}
		}
	}
}

func named(id int64, first, last string) viswals.SealedUser {
	u := user(id, first)
	u.LastName = last
	return u
}

// The snapshot's size is announced first and is the number of users it
// sends; the live event follows them, with a cursor that resumes live.
func TestStream_SnapshotSizeAndLive(t *testing.T) {
	t.Parallel()
	e := newFeed(t, changefeed.Options{PageSize: 3})
	for id := range int64(10) {
		e.put(t, named(id+1, []string{"Ann", "Bob"}[id%2], "X"))
	}
	filters := []struct {
		filter viswals.Filter
		want   int
	}{
		{viswals.Filter{}, 10},
		{viswals.Filter{FirstName: "an"}, 5},
		{viswals.Filter{FirstName: "zz"}, 0},
	}
	lives := make([]changefeed.Cursor, len(filters))
	for i, tc := range filters {
		s := open(t, e, tc.filter, nil)
		size, ids, live := snapshotOf(t, s)
		require.Len(t, ids, tc.want, "filter %+v", tc.filter)
		require.Equal(t, int64(len(ids)), size, "the announced size of filter %+v", tc.filter)
		lives[i] = live
	}
	// Resumed from the live event: no snapshot to send, live at once.
	e.put(t, named(100, "Ann", "X"))
	for i, tc := range filters {
		r := open(t, e, tc.filter, &lives[i])
		size, ids, _ := snapshotOf(t, r)
		require.Zero(t, size)
		require.Empty(t, ids)
		if tc.want > 0 {
			evs, _ := changes(t, r, 1)
			require.Equal(t, []got{{changefeed.EventUser, 100}}, evs)
		}
	}

	// A stream resumed mid-snapshot announces what is left.
	s := open(t, e, viswals.Filter{}, nil)
	_, cursors := read(t, s, 4)
	r := open(t, e, viswals.Filter{}, &cursors[3])
	size, ids, _ := snapshotOf(t, r)
	require.Equal(t, int64(len(ids)), size)
	require.Equal(t, []int64{5, 6, 7, 8, 9, 10, 100}, ids)
}

// A user renamed out of a stream's filter leaves it; one renamed into it
// arrives as a user; a change that keeps a user out sends nothing.
func TestStream_Leave(t *testing.T) {
	t.Parallel()
	e := newFeed(t, changefeed.Options{})
	e.put(t, named(1, "Ann", "Lee"), named(2, "Anna", "Lee"), named(3, "Bob", "Lee"))
	s := open(t, e, viswals.Filter{FirstName: "an", LastName: "l"}, nil)
	_, ids, _ := snapshotOf(t, s)
	require.Equal(t, []int64{1, 2}, ids)

	for _, step := range []struct {
		put  viswals.SealedUser
		want []got
	}{
		{named(1, "Zed", "Lee"), []got{{changefeed.EventLeave, 1}}},  // out by its first name
		{named(3, "Andy", "Lee"), []got{{changefeed.EventUser, 3}}},  // in
		{named(2, "Anna", "Moe"), []got{{changefeed.EventLeave, 2}}}, // out by its last name
		{named(3, "Andrew", "Lee"), []got{{changefeed.EventUser, 3}}},
	} {
		e.put(t, step.put)
		evs, _ := changes(t, s, len(step.want))
		require.Equal(t, step.want, evs, "after %+v", step.put)
	}
	// Changes that keep users out send nothing: the next event is 3's.
	e.put(t, named(1, "Zoe", "Lee"))
	e.put(t, named(2, "Ann", "Moe"))
	e.put(t, named(3, "Anders", "Lee"))
	evs, _ := changes(t, s, 1)
	require.Equal(t, []got{{changefeed.EventUser, 3}}, evs)
	idle(t, s)
}

// Leaves resume like users, from the ring and from Postgres when the
// cursor is older than the ring; a user changed twice while the client
// was away leaves even though the state in between did not match.
func TestStream_LeaveResumes(t *testing.T) {
	t.Parallel()
	e := newFeed(t, changefeed.Options{RingSize: 4, PageSize: 3})
	f := viswals.Filter{FirstName: "a"}
	e.put(t, named(1, "Ann", "X"), named(2, "Amy", "X"), named(3, "Al", "X"))
	s := open(t, e, f, nil)
	_, _, live := snapshotOf(t, s)
	other := open(t, e, viswals.Filter{}, nil) // keeps the hub reading
	snapshotOf(t, other)

	e.put(t, named(1, "Bea", "X"))
	evs, afterLeave := changes(t, s, 1)
	require.Equal(t, []got{{changefeed.EventLeave, 1}}, evs)
	s.Close()

	// While away: 2 leaves through a state that does not match either;
	// 3 leaves; enough other changes to push all of it out of the ring.
	e.put(t, named(2, "Bob", "X"))
	e.put(t, named(2, "Cy", "X"))
	e.put(t, named(3, "Dan", "X"))
	for i := range int64(8) {
		e.put(t, named(100+i, "Zz", "X"))
	}
	changes(t, other, 3+8)

	for i, tc := range []struct {
		name string
		from changefeed.Cursor
		want []got
	}{
		{"before the first leave", live, []got{{changefeed.EventLeave, 1}, {changefeed.EventLeave, 2}, {changefeed.EventLeave, 3}}},
		// ...and the leave of 50, added by the first case.
		{"after it", afterLeave, []got{{changefeed.EventLeave, 2}, {changefeed.EventLeave, 3}, {changefeed.EventLeave, 50}}},
	} {
		r := open(t, e, f, &tc.from)
		evs, last := changes(t, r, len(tc.want))
		require.Equal(t, tc.want, evs, tc.name)
		idle(t, r)
		r.Close()
		// And from the last leave's cursor, nothing is repeated.
		r = open(t, e, f, &last)
		e.put(t, named(50+int64(i), "Ava", "X"))
		evs, _ = changes(t, r, 1)
		require.Equal(t, []got{{changefeed.EventUser, 50 + int64(i)}}, evs, tc.name)
		e.put(t, named(50+int64(i), "Kim", "X"))
		evs, _ = changes(t, r, 1)
		require.Equal(t, []got{{changefeed.EventLeave, 50 + int64(i)}}, evs, tc.name)
		r.Close()
	}
}
