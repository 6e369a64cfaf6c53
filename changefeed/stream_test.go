package changefeed_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/changefeed"
	"github.com/viswals/viswals/postgres"
	"github.com/viswals/viswals/postgres/pgtest"
)

// feedEnv is a hub over a real Postgres store on its own database, running.
type feedEnv struct {
	store *postgres.Store
	url   string
	hub   *changefeed.Hub
	line  atomic.Int64 // versions of the users written, so later writes win
}

func newFeed(t *testing.T, opts changefeed.Options) *feedEnv {
	t.Helper()
	url := pgtest.NewDatabase(t)
	store, err := postgres.Open(context.Background(), url, postgres.PoolConfig{MaxConns: 8})
	require.NoError(t, err)
	opts.MinInterval, opts.Poll = time.Millisecond, 50*time.Millisecond
	e := &feedEnv{store: store, url: url, hub: changefeed.New(store, opts)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { e.hub.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		store.Close()
	})
	return e
}

// put writes users (id, first name) in one transaction.
func (e *feedEnv) put(t *testing.T, users ...viswals.SealedUser) {
	t.Helper()
	for i := range users {
		users[i].Version = viswals.Version{Load: 1, Line: e.line.Add(1)}
	}
	_, _, err := e.store.UpsertBatch(context.Background(), users)
	require.NoError(t, err)
}

func user(id int64, first string) viswals.SealedUser {
	hash := sha256.Sum256([]byte(first))
	return viswals.SealedUser{
		ID: id, FirstName: first, LastName: "X",
		EmailSealed: "k1:AAAA", EmailHash: hash[:],
		CreatedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

// read returns the next events of s, at least n (a stream returns a page
// at a time), with their cursors, waiting for live changes as the stream
// asks.
func read(t *testing.T, s *changefeed.Stream, n int) (users []viswals.SealedUser, cursors []changefeed.Cursor) {
	t.Helper()
	deadline := time.NewTimer(pgtest.HorizonWait)
	defer deadline.Stop()
	for len(users) < n {
		events, more, err := s.Next(context.Background())
		require.NoError(t, err)
		for _, e := range events {
			if e.Kind != changefeed.EventUser {
				continue
			}
			users = append(users, *e.User)
			cursors = append(cursors, e.Cursor)
		}
		if more == nil || len(users) >= n {
			continue
		}
		select {
		case <-more:
		case <-deadline.C:
			t.Fatalf("got %d events of %d: %v", len(users), n, idsOf(users))
		}
	}
	return users, cursors
}

// idle reads s until it has nothing to send and waits for changes: it is
// then in its live phase, reading from the hub.
func idle(t *testing.T, s *changefeed.Stream) {
	t.Helper()
	for {
		events, more, err := s.Next(context.Background())
		require.NoError(t, err)
		for _, e := range events {
			require.Contains(t, []changefeed.EventKind{changefeed.EventSnapshot, changefeed.EventLive}, e.Kind, "idle stream sent an event of kind %d", e.Kind)
		}
		if more != nil {
			return
		}
	}
}

func idsOf(users []viswals.SealedUser) []int64 {
	var ids []int64
	for _, u := range users {
		ids = append(ids, u.ID)
	}
	return ids
}

func open(t *testing.T, e *feedEnv, f viswals.Filter, resume *changefeed.Cursor) *changefeed.Stream {
	t.Helper()
	s, err := e.hub.Open(context.Background(), f, resume)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func TestStream_SnapshotThenLive(t *testing.T) {
	t.Parallel()
	e := newFeed(t, changefeed.Options{})
	e.put(t, user(3, "C"), user(1, "A"))
	e.put(t, user(2, "B"))

	s := open(t, e, viswals.Filter{}, nil)
	users, cursors := read(t, s, 3)
	require.Equal(t, []int64{1, 2, 3}, idsOf(users), "the snapshot, in id order")
	require.Equal(t, changefeed.KindSnapshot, cursors[2].Kind)

	e.put(t, user(10, "J"))
	e.put(t, user(1, "A2"))
	users, cursors = read(t, s, 2)
	require.Equal(t, []int64{10, 1}, idsOf(users))
	require.Equal(t, "A2", users[1].FirstName)
	require.Equal(t, changefeed.KindLive, cursors[1].Kind)
}

// A stream resumed from any event's cursor continues with the next event:
// nothing missed, nothing repeated, across the snapshot and live phases.
func TestStream_ResumeNoGapNoRepeat(t *testing.T) {
	t.Parallel()
	e := newFeed(t, changefeed.Options{PageSize: 3})
	for id := range int64(7) {
		e.put(t, user(id+1, "A"))
	}
	var got []int64
	s := open(t, e, viswals.Filter{}, nil)
	users, cursors := read(t, s, 4)
	got = append(got, idsOf(users[:4])...) // a client that stops mid-snapshot
	s.Close()

	s = open(t, e, viswals.Filter{}, &cursors[3])
	users, _ = read(t, s, 3) // the rest of the snapshot
	got = append(got, idsOf(users)...)
	e.put(t, user(8, "A"))
	users, cursors = read(t, s, 1)
	got = append(got, idsOf(users)...)
	s.Close()

	e.put(t, user(9, "A")) // while away
	e.put(t, user(2, "A again"))
	s = open(t, e, viswals.Filter{}, &cursors[0])
	users, _ = read(t, s, 2)
	got = append(got, idsOf(users)...)
	require.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 2}, got)
}

// The snapshot phase filters in SQL, the live phase in memory: both must
// fold names alike and select the same users.
func TestStream_FilterSameInSnapshotAndLive(t *testing.T) {
	t.Parallel()
	names := []string{"Ann", "anna", "ANDY", "Éanna", "Bob", "Ån", "ån", "an%", "a"}
	for _, prefix := range []string{"AN", "ån", "Å", "an%", "É"} {
		t.Run(prefix, func(t *testing.T) {
			t.Parallel()
			e := newFeed(t, changefeed.Options{})
			f := viswals.Filter{FirstName: prefix}
			var want, wantLive []int64
			for i, name := range names {
				e.put(t, user(int64(i+1), name))
				if f.Match(name, "X") {
					want = append(want, int64(i+1))
					wantLive = append(wantLive, int64(i+101))
				}
			}
			s := open(t, e, f, nil)
			snapshot, _ := read(t, s, len(want))
			require.Equal(t, want, idsOf(snapshot), "snapshot")

			// The same names again, live.
			for i, name := range names {
				e.put(t, user(int64(i+101), name))
			}
			live, _ := read(t, s, len(wantLive))
			require.Equal(t, wantLive, idsOf(live), "live")
		})
	}
}

// A stream resumed from a position older than the hub's ring reads the
// store until it is inside the ring again.
func TestStream_CatchUpBehindRing(t *testing.T) {
	t.Parallel()
	e := newFeed(t, changefeed.Options{RingSize: 4, PageSize: 3})
	e.put(t, user(1, "A"))
	s := open(t, e, viswals.Filter{}, nil)
	_, cursors := read(t, s, 1)
	s.Close()
	other := open(t, e, viswals.Filter{}, nil) // keeps the hub reading
	read(t, other, 1)
	idle(t, other)
	for i := range int64(20) {
		e.put(t, user(100+i, "A"))
	}
	read(t, other, 20) // the ring now holds the last 4 only

	s = open(t, e, viswals.Filter{}, &cursors[0])
	users, _ := read(t, s, 20)
	for i, u := range users {
		require.Equal(t, int64(100+i), u.ID)
	}
	e.put(t, user(200, "A"))
	users, _ = read(t, s, 1)
	require.Equal(t, int64(200), users[0].ID)
}

// A transaction that started before the stream opened and commits after
// later ones is still delivered.
func TestStream_LateCommit(t *testing.T) {
	t.Parallel()
	e := newFeed(t, changefeed.Options{})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `INSERT INTO users (id, first_name, last_name, first_name_lc, last_name_lc,
		email_address, email_hash, created_at, version_load, version_line)
		VALUES (1, 'Late', 'X', 'late', 'x', 'k1:AAAA', '\x00', now(), 1, 1)`)
	require.NoError(t, err)

	s := open(t, e, viswals.Filter{}, nil)
	e.put(t, user(2, "Early"))
	require.NoError(t, tx.Commit(ctx))
	users, _ := read(t, s, 2)
	require.Equal(t, []int64{1, 2}, idsOf(users), "in commit position order, the late one first")
}

func TestStream_Render(t *testing.T) {
	t.Parallel()
	e := newFeed(t, changefeed.Options{})
	// Once the hub reads, streams opened after it start inside its ring.
	first := open(t, e, viswals.Filter{}, nil)
	idle(t, first)
	e.put(t, user(1, "Warm"))
	read(t, first, 1)
	// Streams a and b show users in view 0, c in view 1 (say, masked).
	a, b, c := open(t, e, viswals.Filter{}, nil), open(t, e, viswals.Filter{}, nil), open(t, e, viswals.Filter{}, nil)
	for _, s := range []*changefeed.Stream{a, b, c} {
		read(t, s, 1)
		idle(t, s)
	}
	var calls [changefeed.Views]atomic.Int64
	render := func(view int) func(dst []byte, u *viswals.SealedUser) ([]byte, error) {
		return func(dst []byte, u *viswals.SealedUser) ([]byte, error) {
			calls[view].Add(1)
			return append(append(dst, u.FirstName...), byte('0'+view)), nil
		}
	}
	e.put(t, user(2, "Ann"))
	for i, s := range []*changefeed.Stream{a, b, c} {
		view := i / 2
		for {
			events, more, err := s.Next(context.Background())
			require.NoError(t, err)
			if len(events) == 1 {
				data, err := s.Render(&events[0], view, render(view))
				require.NoError(t, err)
				require.Equal(t, fmt.Sprint("Ann", view), string(data), "each view has its own rendering")
				break
			}
			if more != nil {
				<-more
			}
		}
	}
	require.Equal(t, int64(1), calls[0].Load(), "a change from the ring is rendered once for every stream of a view")
	require.Equal(t, int64(1), calls[1].Load(), "and once for the other view")
}
