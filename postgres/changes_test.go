package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/wait"
	"github.com/viswals/viswals/postgres"
	"github.com/viswals/viswals/postgres/pgtest"
)

type change struct {
	pos    viswals.Pos
	u      viswals.SealedUser
	before viswals.Before
}

// changesFrom reads every available change after pos, limit at a time.
func changesFrom(t *testing.T, s *postgres.Store, f viswals.Filter, pos viswals.Pos, limit int) (got []change, horizon uint64) {
	t.Helper()
	for {
		n := 0
		h, err := s.Changes(context.Background(), f, pos, limit, func(c viswals.Change) error {
			p := c.Pos
			require.True(t, pos.Less(p), "position %v not after %v", p, pos)
			require.Less(t, p.Xid, uint64(1)<<62)
			got = append(got, change{p, c.User, c.Before})
			pos = p
			n++
			return nil
		})
		require.NoError(t, err)
		horizon = h
		if n < limit {
			return got, horizon
		}
	}
}

func TestChanges_OrderAndHorizon(t *testing.T) {
	t.Parallel()
	s, url := newStore(t)
	conn := connect(t, url)

	upsert(t, s, user(5, "Ann", "A", "a@example.com", 1, 1), user(2, "Bob", "B", "b@example.com", 1, 2))
	upsert(t, s, user(1, "Cid", "C", "c@example.com", 1, 3))
	upsert(t, s, user(5, "Ann", "A", "a2@example.com", 2, 1)) // moves 5 to the end
	x1, x2, x3 := changedXID(t, conn, 2), changedXID(t, conn, 1), changedXID(t, conn, 5)
	require.Less(t, x1, x2)
	require.Less(t, x2, x3)

	want := []viswals.Pos{{Xid: x1, ID: 2}, {Xid: x2, ID: 1}, {Xid: x3, ID: 5}}
	wait.For(t, horizonWait, "the 3 changes to be readable", func() (bool, string) {
		got, horizon := changesFrom(t, s, viswals.Filter{}, viswals.Pos{}, 2)
		return len(got) == 3, fmt.Sprintf("%d changes, horizon %d", len(got), horizon)
	})
	for _, limit := range []int{1, 2, 10} {
		got, horizon := changesFrom(t, s, viswals.Filter{}, viswals.Pos{}, limit)
		require.Equal(t, want, positions(got), "limit %d", limit)
		require.Greater(t, horizon, x3)
		require.Equal(t, "a2@example.com", emailOf(got[2].u))
	}

	// Resuming from any position continues without repeats.
	got, _ := changesFrom(t, s, viswals.Filter{}, want[0], 10)
	require.Equal(t, want[1:], positions(got))
	got, _ = changesFrom(t, s, viswals.Filter{}, want[2], 10)
	require.Empty(t, got)

	// Filters apply.
	got, horizon := changesFrom(t, s, viswals.Filter{FirstName: "ANN"}, viswals.Pos{}, 10)
	require.Equal(t, want[2:], positions(got))
	// Everything below the horizon was seen: resuming there skips it all.
	got, _ = changesFrom(t, s, viswals.Filter{}, viswals.Pos{Xid: horizon}, 10)
	require.Empty(t, got)

	// Rewriting the same content does not move a row.
	upsert(t, s, user(1, "Cid", "C", "c@example.com", 3, 3))
	got, _ = changesFrom(t, s, viswals.Filter{}, want[2], 10)
	require.Empty(t, got)
}

// A transaction that got its id early but commits late must not be
// skipped by a reader that already saw a later transaction's change.
func TestChanges_LateCommitIsNotSkipped(t *testing.T) {
	t.Parallel()
	s, url := newStore(t)
	ctx := context.Background()

	// Transaction A writes user 100 and stays open.
	connA := connect(t, url)
	txA, err := connA.Begin(ctx)
	require.NoError(t, err)
	defer txA.Rollback(ctx)
	var xidA uint64
	require.NoError(t, txA.QueryRow(ctx, `INSERT INTO users (id, first_name, last_name, first_name_lc, last_name_lc,
		email_address, email_hash, created_at, version_load, version_line)
		VALUES (100, 'Late', 'A', 'late', 'a', 'k1:x', '\x00', now(), 1, 1) RETURNING changed_xid`).Scan(&xidA))

	// Transaction B, which started after A, writes user 200 and commits.
	upsert(t, s, user(200, "Early", "B", "b@example.com", 1, 2))
	snap, err := s.CurrentSnapshot(ctx)
	require.NoError(t, err)
	require.Contains(t, snap.Xip, xidA, "A is in flight")
	require.False(t, snap.Visible(xidA))

	// While A is open, the reader gets nothing at or past A's id, B included.
	got, horizon := changesFrom(t, s, viswals.Filter{}, viswals.Pos{}, 10)
	require.Empty(t, got)
	require.LessOrEqual(t, horizon, xidA)

	require.NoError(t, txA.Commit(ctx))

	// Now A's change comes first, then B's: nothing skipped.
	var all []change
	wait.For(t, horizonWait, "A's and B's changes to be readable", func() (bool, string) {
		var horizon uint64
		all, horizon = changesFrom(t, s, viswals.Filter{}, viswals.Pos{}, 10)
		return len(all) == 2, fmt.Sprintf("%d changes, horizon %d", len(all), horizon)
	})
	require.Equal(t, int64(100), all[0].u.ID)
	require.Equal(t, xidA, all[0].pos.Xid)
	require.Equal(t, int64(200), all[1].u.ID)
}

// The snapshot phase (ListVisible) and the live phase (Changes from
// snap.Start, skipping what snap saw) together deliver every user once in
// its latest state.
func TestSnapshotThenLive(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()

	upsert(t, s, user(1, "One", "X", "1@example.com", 1, 1), user(2, "Two", "X", "2@example.com", 1, 2))
	snap, err := s.CurrentSnapshot(ctx)
	require.NoError(t, err)
	upsert(t, s, user(1, "One", "X", "1b@example.com", 2, 1))  // changed after snap
	upsert(t, s, user(3, "Three", "X", "3@example.com", 2, 3)) // new after snap

	var snapshotIDs []int64
	require.NoError(t, s.ListVisible(ctx, viswals.Filter{}, 0, 100, snap, func(u viswals.SealedUser) error {
		snapshotIDs = append(snapshotIDs, u.ID)
		return nil
	}))
	require.Equal(t, []int64{2}, snapshotIDs)

	// With a name filter too.
	snapshotIDs = nil
	require.NoError(t, s.ListVisible(ctx, viswals.Filter{FirstName: "t"}, 0, 100, snap, func(u viswals.SealedUser) error {
		snapshotIDs = append(snapshotIDs, u.ID)
		return nil
	}))
	require.Equal(t, []int64{2}, snapshotIDs)

	var live []int64
	wait.For(t, horizonWait, "the 2 changes after the snapshot to be readable", func() (bool, string) {
		live = nil
		got, _ := changesFrom(t, s, viswals.Filter{}, viswals.Pos{Xid: snap.Xmin}, 10)
		for _, c := range got {
			if !snap.Visible(c.pos.Xid) {
				live = append(live, c.u.ID)
			}
		}
		return len(live) == 2, fmt.Sprintf("live %v", live)
	})
	require.Equal(t, []int64{1, 3}, live)
}

func TestParseSnapshot(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]viswals.Snapshot{
		"10:20:10,14,15": {Xmin: 10, Xmax: 20, Xip: []uint64{10, 14, 15}},
		"10:10:":         {Xmin: 10, Xmax: 10},
		"742:745:742":    {Xmin: 742, Xmax: 745, Xip: []uint64{742}},
	} {
		got, err := postgres.ParseSnapshot(text)
		require.NoError(t, err, text)
		require.Equal(t, want, got)
		require.Equal(t, text, postgres.SnapshotText(got))
	}
	for _, bad := range []string{"", "1:2", "a:b:", "0:1:", "20:10:", "10:20:9", "10:20:20", "10:20:15,14", "10:20:14,14", "10:20:,", "1:2:3:4", "-1:2:"} {
		_, err := postgres.ParseSnapshot(bad)
		require.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "%q", bad)
	}
}

func TestCurrentSnapshot_RoundTrip(t *testing.T) {
	t.Parallel()
	s, url := newStore(t)
	conn := connect(t, url)
	snap, err := s.CurrentSnapshot(context.Background())
	require.NoError(t, err)
	require.LessOrEqual(t, snap.Xmin, snap.Xmax)
	// Postgres accepts the text form back.
	var text string
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT $1::text::pg_snapshot::text", postgres.SnapshotText(snap)).Scan(&text))
	require.Equal(t, postgres.SnapshotText(snap), text)
}

func positions(cs []change) []viswals.Pos {
	var out []viswals.Pos
	for _, c := range cs {
		out = append(out, c.pos)
	}
	return out
}

func emailOf(u viswals.SealedUser) string {
	// The test sealing (see user) cannot be opened; compare hashes instead.
	for _, e := range []string{"a@example.com", "a2@example.com", "b@example.com", "c@example.com"} {
		if string(user(0, "", "", e, 0, 0).EmailHash) == string(u.EmailHash) {
			return e
		}
	}
	return ""
}

// horizonWait bounds the wait for committed changes to be readable.
const horizonWait = pgtest.HorizonWait

// A snapshot that did not come from Postgres (say, decoded from a
// client's cursor by other means) and that Postgres cannot read is refused
// as invalid input.
func TestListVisible_BadSnapshotIsInvalid(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	bad := viswals.Snapshot{Xmin: 20, Xmax: 10}
	err := s.ListVisible(context.Background(), viswals.Filter{}, 0, 10, bad, func(viswals.SealedUser) error { return nil })
	require.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "%v", err)
}
