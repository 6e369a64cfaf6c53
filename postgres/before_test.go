package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/internal/wait"
)

// A change carries the row's folded names and position before it; a
// write that changes no content keeps them; a new row has none.
func TestChanges_Before(t *testing.T) {
	t.Parallel()
	s, url := newStore(t)
	conn := connect(t, url)
	upsert(t, s, user(1, "Ann", "Lee", "a@example.com", 1, 1))
	first := changedXID(t, conn, 1)
	upsert(t, s, user(1, "Zed", "Lee", "a@example.com", 1, 2))
	upsert(t, s, user(1, "Zed", "Lee", "a@example.com", 1, 3)) // same content
	upsert(t, s, user(2, "Bob", "Moe", "b@example.com", 1, 4))

	var got []change
	wait.For(t, horizonWait, "both changes to be readable", func() (bool, string) {
		got, _ = changesFrom(t, s, viswals.Filter{}, viswals.Pos{}, 10)
		return len(got) == 2, fmt.Sprintf("%d changes", len(got))
	})
	require.Equal(t, viswals.Before{Exists: true, FirstFolded: "ann", LastFolded: "lee", Xid: first}, got[0].before)
	require.Equal(t, viswals.Before{}, got[1].before, "a new user has no state before")

	// A filter returns the changes of users that matched it before, too.
	filtered, _ := changesFrom(t, s, viswals.Filter{FirstName: "an"}, viswals.Pos{}, 10)
	require.Len(t, filtered, 1)
	require.Equal(t, int64(1), filtered[0].u.ID)
}

// A reader is never moved past the state before of a row whose newer
// version is held back by an older transaction still running: it could
// then not know what it last saw of the user.
func TestChanges_HorizonWaitsForTheNewerVersion(t *testing.T) {
	t.Parallel()
	s, url := newStore(t)
	ctx := context.Background()
	conn := connect(t, url)
	upsert(t, s, user(1, "Ann", "Lee", "a@example.com", 1, 1))
	before := changedXID(t, conn, 1)

	// An older transaction holds the horizon while user 1 changes again.
	old := connect(t, url)
	tx, err := old.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	var oldXid uint64
	require.NoError(t, tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(&oldXid))
	upsert(t, s, user(1, "Zed", "Lee", "a@example.com", 1, 2))

	got, horizon := changesFrom(t, s, viswals.Filter{}, viswals.Pos{}, 10)
	require.Empty(t, got, "the row's version is not final")
	require.LessOrEqual(t, horizon, before, "the horizon stops at the state before (old transaction %d)", oldXid)

	require.NoError(t, tx.Rollback(ctx))
	wait.For(t, horizonWait, "the newer version to be readable", func() (bool, string) {
		got, horizon = changesFrom(t, s, viswals.Filter{}, viswals.Pos{}, 10)
		return len(got) == 1, fmt.Sprintf("%d changes, horizon %d", len(got), horizon)
	})
	require.Equal(t, before, got[0].before.Xid)
}

// CountVisible counts what ListVisible returns.
func TestCountVisible(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	for i := range int64(9) {
		upsert(t, s, user(i+1, []string{"Ann", "Bob", "Cy"}[i%3], "Lee", fmt.Sprintf("u%d@example.com", i), 1, i+1))
	}
	snap, err := s.CurrentSnapshot(ctx)
	require.NoError(t, err)
	upsert(t, s, user(100, "Ann", "Lee", "x@example.com", 1, 100)) // after the snapshot
	for _, f := range []viswals.Filter{{}, {FirstName: "an"}, {FirstName: "b", LastName: "LE"}, {LastName: "zz"}} {
		for _, after := range []int64{0, 4} {
			var listed int64
			require.NoError(t, s.ListVisible(ctx, f, after, 1000, snap, func(viswals.SealedUser) error { listed++; return nil }))
			n, err := s.CountVisible(ctx, f, after, snap)
			require.NoError(t, err)
			require.Equal(t, listed, n, "filter %+v after %d", f, after)
		}
	}
	_, err = s.CountVisible(ctx, viswals.Filter{FirstName: "a\x00"}, 0, snap)
	require.Error(t, err)
}
