package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/postgres"
)

// A load's counts are exact by outcome, and a message delivered again is
// not counted again, whichever way its batch is written.
func TestUpsertCountedCountsEachMessageOnce(t *testing.T) {
	forEachUpsert(t, func(t *testing.T, s *postgres.Store, _ string) {
		ctx := context.Background()
		const load = 7
		upsert := func(msg string, refused int64, users ...viswals.SealedUser) *viswals.Receipt {
			t.Helper()
			rc := &viswals.Receipt{Load: load, Message: msg, Refused: refused}
			_, _, err := s.UpsertCounted(ctx, users, rc)
			require.NoError(t, err)
			return rc
		}
		// m1: three new ids, one of them twice (the later row wins).
		rc := upsert("m1", 1, user(1, "A", "A", "a@x", load, 1), user(2, "B", "B", "b@x", load, 2),
			user(3, "C", "C", "c@x", load, 3), user(3, "C2", "C", "c@x", load, 4))
		assert.True(t, rc.Counted)
		assert.Equal(t, viswals.Tally{Received: 5, Inserted: 3, Unchanged: 1, DeadLettered: 1}, rc.Tally)

		// m1 again (a redelivery): nothing counted, the record unchanged.
		again := upsert("m1", 1, user(1, "A", "A", "a@x", load, 1), user(2, "B", "B", "b@x", load, 2),
			user(3, "C", "C", "c@x", load, 3), user(3, "C2", "C", "c@x", load, 4))
		assert.False(t, again.Counted)
		assert.Equal(t, rc.Record.Tally, again.Record.Tally)

		// m2: one update, one same content, one older than stored, one new.
		rc = upsert("m2", 0, user(1, "A1", "A", "a@x", load, 10), user(2, "B", "B", "b@x", load, 11),
			user(3, "C0", "C", "c@x", load, 0), user(4, "D", "D", "d@x", load, 12))
		assert.Equal(t, viswals.Tally{Received: 4, Inserted: 1, Updated: 1, Unchanged: 2}, rc.Tally)

		// m3: every row refused before the store.
		rc = upsert("m3", 2)
		assert.True(t, rc.Counted)
		assert.Equal(t, viswals.Tally{Received: 2, DeadLettered: 2}, rc.Tally)

		got, err := s.GetLoad(ctx, load)
		require.NoError(t, err)
		assert.Equal(t, viswals.Tally{Received: 11, Inserted: 4, Updated: 1, Unchanged: 3, DeadLettered: 3}, got.Tally)
		assert.Nil(t, got.Summary)
		assert.Equal(t, viswals.LoadIncomplete, got.State(), "no summary yet")
		assert.False(t, got.FirstCommit.IsZero())
		assert.False(t, got.LastCommit.Before(got.FirstCommit))

		rec, fresh, err := s.RecordSummary(ctx, viswals.LoadSummary{Load: load, Read: 13, Published: 11, Rejected: 2})
		require.NoError(t, err)
		assert.True(t, fresh)
		assert.Equal(t, viswals.LoadDeadLettered, rec.State())
		_, fresh, err = s.RecordSummary(ctx, viswals.LoadSummary{Load: load, Read: 13, Published: 11, Rejected: 2})
		require.NoError(t, err)
		assert.False(t, fresh, "a summary delivered again is not new")
	})
}

// A replayed dead letter moves its rows from dead-lettered to what became
// of them, once, and received does not grow: a load whose dead letters are
// replayed and committed becomes complete.
func TestUpsertCountedReplayMovesDeadLetters(t *testing.T) {
	forEachUpsert(t, func(t *testing.T, s *postgres.Store, _ string) {
		ctx := context.Background()
		const load = 8
		count := func(rc *viswals.Receipt, users ...viswals.SealedUser) *viswals.Receipt {
			t.Helper()
			_, _, err := s.UpsertCounted(ctx, users, rc)
			require.NoError(t, err)
			return rc
		}
		// Two rows committed, two refused.
		count(&viswals.Receipt{Load: load, Message: "m1", Refused: 2},
			user(1, "A", "A", "a@x", load, 1), user(2, "B", "B", "b@x", load, 2))
		_, _, err := s.RecordSummary(ctx, viswals.LoadSummary{Load: load, Read: 4, Published: 4})
		require.NoError(t, err)

		// The dead letter replayed: one row commits, one is refused again.
		rc := count(&viswals.Receipt{Load: load, Message: "dl:a", Replayed: true, Refused: 1}, user(3, "C", "C", "c@x", load, 3))
		assert.True(t, rc.Counted)
		assert.Equal(t, viswals.Tally{Inserted: 1}, rc.Tally, "what the replay added")
		assert.Equal(t, viswals.Tally{Received: 4, Inserted: 3, DeadLettered: 1}, rc.Record.Tally)
		assert.Equal(t, viswals.LoadDeadLettered, rc.Record.State())

		again := count(&viswals.Receipt{Load: load, Message: "dl:a", Replayed: true, Refused: 1}, user(3, "C", "C", "c@x", load, 3))
		assert.False(t, again.Counted, "a replayed dead letter delivered again is counted once")
		assert.Equal(t, rc.Record.Tally, again.Record.Tally)

		// The row refused again, replayed once more, commits.
		rc = count(&viswals.Receipt{Load: load, Message: "dl:b", Replayed: true}, user(4, "D", "D", "d@x", load, 4))
		assert.Equal(t, viswals.Tally{Received: 4, Inserted: 4}, rc.Record.Tally)
		assert.Equal(t, viswals.LoadComplete, rc.Record.State())

		// A replay beyond the load's dead letters (its record pruned, or
		// they were never counted) counts as new rows: never below zero.
		rc = count(&viswals.Receipt{Load: load + 1, Message: "dl:c", Replayed: true}, user(5, "E", "E", "e@x", load, 5))
		assert.Equal(t, viswals.Tally{Received: 1, Inserted: 1}, rc.Record.Tally)
		rc = count(&viswals.Receipt{Load: load + 1, Message: "dl:d", Replayed: true}, user(5, "E", "E", "e@x", load, 5))
		assert.Equal(t, viswals.Tally{Received: 2, Inserted: 1, Unchanged: 1}, rc.Record.Tally)
	})
}

func TestLoadsListAndGet(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	for _, id := range []int64{10, 30, 20} {
		_, _, err := s.RecordSummary(ctx, viswals.LoadSummary{Load: id})
		require.NoError(t, err)
	}
	page, err := s.ListLoads(ctx, 0, 2)
	require.NoError(t, err)
	require.Len(t, page, 2)
	assert.Equal(t, []int64{30, 20}, []int64{page[0].ID, page[1].ID}, "newest first")
	page, err = s.ListLoads(ctx, 20, 2)
	require.NoError(t, err)
	require.Len(t, page, 1)
	assert.Equal(t, int64(10), page[0].ID)
	assert.Equal(t, viswals.LoadComplete, page[0].State(), "an empty load is complete once its summary arrived")

	_, err = s.GetLoad(ctx, 99)
	assert.Equal(t, viswals.ENOTFOUND, viswals.ErrorCode(err))
}

// The message keys of loads that are accounted for and were last written
// before the cut-off go; those of recent loads, and of loads still
// incomplete however old, stay; so do the loads' records.
func TestPruneLoadMessages(t *testing.T) {
	t.Parallel()
	s, url := newStore(t)
	ctx := context.Background()
	const (
		oldComplete = iota + 1
		oldDeadLettered
		oldIncomplete
		recentComplete
	)
	for _, l := range []struct {
		id              int64
		published, dead int64
		summary         bool
	}{
		{oldComplete, 2, 0, true}, {oldDeadLettered, 2, 1, true}, {oldIncomplete, 2, 0, false}, {recentComplete, 2, 0, true},
	} {
		for i := range l.published {
			rc := &viswals.Receipt{Load: l.id, Message: fmt.Sprint("m", i)}
			var users []viswals.SealedUser
			if i < l.published-l.dead {
				users = append(users, user(l.id*10+i, "A", "B", "a@x", l.id, i+1))
			} else {
				rc.Refused = 1
			}
			_, _, err := s.UpsertCounted(ctx, users, rc)
			require.NoError(t, err)
		}
		if l.summary {
			_, _, err := s.RecordSummary(ctx, viswals.LoadSummary{Load: l.id, Read: l.published, Published: l.published})
			require.NoError(t, err)
		}
	}
	conn := connect(t, url)
	_, err := conn.Exec(ctx, `UPDATE loads SET last_commit_at = now() - interval '10 days', summary_at = now() - interval '10 days'
		WHERE id <> $1`, recentComplete)
	require.NoError(t, err)

	n, err := s.PruneLoadMessages(ctx, time.Now().Add(-7*24*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, int64(4), n, "the keys of the old complete and dead-lettered loads")
	keys := map[int64]int{}
	rows, err := conn.Query(ctx, `SELECT load_id, count(*) FROM load_messages GROUP BY load_id`)
	require.NoError(t, err)
	var id int64
	var c int
	_, err = pgx.ForEachRow(rows, []any{&id, &c}, func() error { keys[id] = c; return nil })
	require.NoError(t, err)
	assert.Equal(t, map[int64]int{oldIncomplete: 2, recentComplete: 2}, keys)
	for _, id := range []int64{oldComplete, oldDeadLettered, oldIncomplete, recentComplete} {
		_, err := s.GetLoad(ctx, id)
		assert.NoError(t, err, "load %d's record stays", id)
	}
	n, err = s.PruneLoadMessages(ctx, time.Now().Add(-7*24*time.Hour))
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left to prune")
}
