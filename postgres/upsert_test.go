package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/postgres"
)

func TestUpsert_InsertUpdateRedeliver(t *testing.T) {
	forEachUpsert(t, func(t *testing.T, s *postgres.Store, _ string) {
		ctx := context.Background()

		a := user(1, "Ann", "Lee", "ann@example.com", 1, 2)
		a.DeletedAt = ptr(epoch.Add(time.Hour))
		a.MergedAt = ptr(epoch.Add(2 * time.Hour))
		a.ParentUserID = ptr(int64(99)) // not loaded (yet): no foreign key
		b := user(2, "Bob", "Ng", "bob@example.com", 1, 3)
		require.Equal(t, []int64{1, 2}, ids(upsert(t, s, b, a)), "inserted rows are returned, in id order")

		got, err := s.Get(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, a, got)

		// The same message delivered again changes nothing.
		require.Empty(t, upsert(t, s, b, a))
		got, err = s.Get(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, a, got)

		// A later row updates, nulls included.
		a2 := user(1, "Anne", "Lee", "anne@example.com", 2, 1)
		require.Equal(t, []int64{1}, ids(upsert(t, s, a2)))
		got, err = s.Get(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, a2, got)
		require.Nil(t, got.DeletedAt)
		require.Nil(t, got.ParentUserID)
	})
}

func TestUpsert_OlderVersionChangesNothing(t *testing.T) {
	forEachUpsert(t, func(t *testing.T, s *postgres.Store, url string) {
		conn := connect(t, url)
		ctx := context.Background()

		newer := user(7, "New", "Name", "new@example.com", 5, 10)
		upsert(t, s, newer)
		xid := changedXID(t, conn, 7)

		// An old message redelivered after the newer one: same load, earlier
		// line; and an earlier load with a later line.
		require.Empty(t, upsert(t, s, user(7, "Old", "Name", "old@example.com", 5, 9)))
		require.Empty(t, upsert(t, s, user(7, "Old", "Name", "old@example.com", 4, 1000)))
		got, err := s.Get(ctx, 7)
		require.NoError(t, err)
		require.Equal(t, newer, got)
		require.Equal(t, xid, changedXID(t, conn, 7))
	})
}

func TestUpsert_SameContentNewerVersion(t *testing.T) {
	forEachUpsert(t, func(t *testing.T, s *postgres.Store, url string) {
		conn := connect(t, url)
		ctx := context.Background()

		first := user(3, "Zoë", "Ångström", "zoe@example.com", 1, 5)
		upsert(t, s, first)
		xid := changedXID(t, conn, 3)

		// The same row from a later load of the same file: sealed again (a new
		// ciphertext), same content, newer version.
		again := user(3, "Zoë", "Ångström", "zoe@example.com", 2, 5)
		require.NotEqual(t, first.EmailSealed, again.EmailSealed)
		require.Empty(t, upsert(t, s, again), "no content change, nothing to announce")

		got, err := s.Get(ctx, 3)
		require.NoError(t, err)
		require.Equal(t, first.EmailSealed, got.EmailSealed, "ciphertext kept")
		require.Equal(t, again.Version, got.Version, "version bumped")
		require.Equal(t, xid, changedXID(t, conn, 3), "changefeed position kept")

		// The bumped version now guards the row: an older row of the second
		// load can no longer win.
		require.Empty(t, upsert(t, s, user(3, "Zoe", "Other", "zoe@example.com", 2, 4)))

		// A content change moves the position forward.
		changedEmail := user(3, "Zoë", "Ångström", "zoe@new.example.com", 3, 1)
		require.Len(t, upsert(t, s, changedEmail), 1)
		got, err = s.Get(ctx, 3)
		require.NoError(t, err)
		require.Equal(t, changedEmail, got)
		require.Greater(t, changedXID(t, conn, 3), xid)
	})
}

func TestUpsert_DuplicateIDsInBatch(t *testing.T) {
	forEachUpsert(t, func(t *testing.T, s *postgres.Store, _ string) {
		ctx := context.Background()

		// Later lines win, wherever they sit in the batch; for an existing row
		// too.
		upsert(t, s, user(2, "Stored", "B", "b@example.com", 1, 1))
		batch := []viswals.SealedUser{
			user(1, "Line3", "A", "a3@example.com", 2, 3),
			user(2, "Line9", "B", "b9@example.com", 2, 9),
			user(1, "Line7", "A", "a7@example.com", 2, 7),
			user(2, "Line4", "B", "b4@example.com", 2, 4),
			user(1, "Line5", "A", "a5@example.com", 2, 5),
		}
		changed := upsert(t, s, batch...)
		require.Equal(t, []int64{1, 2}, ids(changed))
		require.Equal(t, "Line7", changed[0].FirstName)
		require.Equal(t, "Line9", changed[1].FirstName)
		for id, want := range map[int64]string{1: "Line7", 2: "Line9"} {
			got, err := s.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, want, got.FirstName)
		}
	})
}

func TestUpsert_ReturnsOnlyChangedRows(t *testing.T) {
	forEachUpsert(t, func(t *testing.T, s *postgres.Store, _ string) {

		upsert(t, s,
			user(1, "Same", "A", "a@example.com", 1, 1),
			user(2, "Old", "B", "b@example.com", 1, 2),
			user(3, "Newer", "C", "c@example.com", 9, 9),
		)
		changed := upsert(t, s,
			user(1, "Same", "A", "a@example.com", 2, 1),    // same content, newer: bump only
			user(2, "Changed", "B", "b@example.com", 2, 2), // changed
			user(3, "Stale", "C", "c@example.com", 2, 3),   // older: ignored
			user(4, "New", "D", "d@example.com", 2, 4),     // inserted
		)
		require.Equal(t, []int64{2, 4}, ids(changed))
		require.Equal(t, "Changed", changed[0].FirstName)
	})
}

func TestUpsert_Empty(t *testing.T) {
	forEachUpsert(t, func(t *testing.T, s *postgres.Store, _ string) {
		require.Empty(t, upsert(t, s))
	})
}

func TestUpsert_InvalidDataIsEINVALID(t *testing.T) {
	forEachUpsert(t, func(t *testing.T, s *postgres.Store, _ string) {
		ctx := context.Background()
		for name, u := range map[string]viswals.SealedUser{
			"NUL byte":     user(1, "a\x00b", "x", "x@example.com", 1, 1),
			"invalid utf8": user(1, "a\xffb", "x", "x@example.com", 1, 1),
		} {
			_, _, err := s.UpsertBatch(ctx, []viswals.SealedUser{user(2, "Good", "Row", "g@example.com", 1, 1), u})
			require.Error(t, err, name)
			require.Equal(t, viswals.EINVALID, viswals.ErrorCode(err), "%s: %v", name, err)
			require.Contains(t, viswals.ErrorMessage(err), "upsert batch", name)
		}
		// The transaction rolled back: the good row of the batch is not there.
		_, err := s.Get(ctx, 2)
		require.Equal(t, viswals.ENOTFOUND, viswals.ErrorCode(err))
	})
}

// Concurrent batches sharing ids in different orders neither deadlock nor
// lose the newest version.
func TestUpsert_ConcurrentOverlappingBatches(t *testing.T) {
	forEachUpsert(t, func(t *testing.T, s *postgres.Store, _ string) {
		ctx := context.Background()
		const workers, rounds, n = 4, 20, 50
		errs := make(chan error, workers)
		for w := range workers {
			go func() {
				var err error
				for r := 0; r < rounds && err == nil; r++ {
					batch := make([]viswals.SealedUser, n)
					for i := range batch {
						id := int64(i + 1)
						if w%2 == 1 {
							id = int64(n - i)
						}
						batch[i] = user(id, "W", "R", "x@example.com", int64(r), int64(w))
					}
					_, _, err = s.UpsertBatch(ctx, batch)
				}
				errs <- err
			}()
		}
		for range workers {
			require.NoError(t, <-errs)
		}
		for id := int64(1); id <= n; id++ {
			got, err := s.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, viswals.Version{Load: rounds - 1, Line: workers - 1}, got.Version)
		}
	})
}

// A batch whose lowest or highest id is stored goes straight to the
// upsert. A COPY that meets a stored id in between falls back to the
// upsert, and COPY pauses for a number of batches that doubles while it
// keeps failing.
func TestUpsert_CopyFallbackAndPause(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()

	upsert(t, s, user(5, "Five", "X", "5@example.com", 1, 5)) // COPY
	require.Zero(t, s.CopyPause())
	upsert(t, s, user(5, "Five", "Y", "5@example.com", 2, 5), user(7, "Seven", "X", "7@example.com", 2, 7))
	require.Zero(t, s.CopyPause(), "5 is stored: no COPY tried")

	changed := upsert(t, s,
		user(4, "Four", "X", "4@example.com", 3, 4),
		user(5, "Five", "Z", "5@example.com", 3, 5),
		user(6, "Six", "X", "6@example.com", 3, 6))
	require.Equal(t, []int64{4, 5, 6}, ids(changed))
	got, err := s.Get(ctx, 5)
	require.NoError(t, err)
	require.Equal(t, "Z", got.LastName)
	require.EqualValues(t, 16, s.CopyPause(), "the COPY failed on 5")

	for i := range 16 {
		upsert(t, s, user(int64(100+i), "New", "X", "n@example.com", 4, int64(i)))
	}
	require.Zero(t, s.CopyPause())
	upsert(t, s, user(1, "One", "X", "1@example.com", 5, 1), user(6, "Six", "Z", "6@example.com", 5, 6), user(9, "Nine", "X", "9@example.com", 5, 9))
	require.EqualValues(t, 32, s.CopyPause(), "the COPY failed on 6 again")
	got, err = s.Get(ctx, 6)
	require.NoError(t, err)
	require.Equal(t, "Z", got.LastName)
	for _, id := range []int64{1, 9} {
		_, err := s.Get(ctx, id)
		require.NoError(t, err)
	}
}

// inserted promises the cache that no earlier version of the returned
// users existed: it must hold only for the COPY of new ids.
func TestUpsert_InsertedOnlyForNewIDs(t *testing.T) {
	t.Parallel()
	s, _ := newStoreWith(t, postgres.PoolConfig{})
	ctx := context.Background()

	changed, inserted, err := s.UpsertBatch(ctx, []viswals.SealedUser{user(1, "A", "B", "a@example.com", 1, 1), user(2, "C", "D", "c@example.com", 1, 2)})
	require.NoError(t, err)
	require.True(t, inserted, "new ids are copied")
	require.Equal(t, []int64{1, 2}, ids(changed))

	changed, inserted, err = s.UpsertBatch(ctx, []viswals.SealedUser{user(2, "C2", "D", "c@example.com", 2, 1)})
	require.NoError(t, err)
	require.False(t, inserted, "an update is not an insert")
	require.Equal(t, []int64{2}, ids(changed))

	// New lowest and highest ids around a stored one: the COPY fails and
	// the upsert writes them; not every row was new, so not inserted.
	changed, inserted, err = s.UpsertBatch(ctx, []viswals.SealedUser{user(0, "E", "F", "e@example.com", 3, 1), user(1, "A2", "B", "a@example.com", 3, 2), user(5, "G", "H", "g@example.com", 3, 3)})
	require.NoError(t, err)
	require.False(t, inserted)
	require.Equal(t, []int64{0, 1, 5}, ids(changed))

	unnest, _ := newStoreWith(t, postgres.PoolConfig{Upsert: postgres.UpsertUnnest})
	_, inserted, err = unnest.UpsertBatch(ctx, []viswals.SealedUser{user(1, "A", "B", "a@example.com", 1, 1)})
	require.NoError(t, err)
	require.False(t, inserted, "the unnest strategy never claims inserted")
}
