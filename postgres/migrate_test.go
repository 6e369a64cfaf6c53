package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/postgres"
	"github.com/viswals/viswals/postgres/pgtest"
)

func TestMigrate_ConcurrentAndIdempotent(t *testing.T) {
	t.Parallel()
	url := pgtest.NewEmptyDatabase(t)
	ctx := context.Background()

	// Two processes starting at once: one applies, the other waits on the
	// advisory lock and finds nothing to do.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = postgres.Migrate(ctx, url) })
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	// And again, later.
	require.NoError(t, postgres.Migrate(ctx, url))

	conn := connect(t, url)
	var version int
	var dirty bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT version, dirty FROM schema_migrations").Scan(&version, &dirty))
	require.Equal(t, 3, version, "the latest migration")
	require.False(t, dirty)
	var indexes []string
	rows, err := conn.Query(ctx, "SELECT indexname FROM pg_indexes WHERE tablename = 'users' ORDER BY indexname")
	require.NoError(t, err)
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		indexes = append(indexes, name)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"users_changed", "users_first_name", "users_last_name", "users_pkey"}, indexes)
}

func TestMigrate_KeepsData(t *testing.T) {
	t.Parallel()
	s, url := newStore(t)
	upsert(t, s, user(1, "Ann", "Lee", "ann@example.com", 1, 1))
	require.NoError(t, postgres.Migrate(context.Background(), url))
	_, err := s.Get(context.Background(), 1)
	require.NoError(t, err)
}

// Migrations that cannot go on fail with what to do, and not as an outage
// (which the consumer would wait out).
func TestMigrate_Refused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup string // on a migrated database, or an empty one with fresh
		fresh bool
		want  string
	}{
		{name: "dirty", setup: "UPDATE schema_migrations SET dirty = true",
			want: "marked dirty at version 3"},
		{name: "a table in the way", fresh: true, setup: "CREATE TABLE loads (id int)",
			want: `relation "loads" already exists`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := pgtest.NewEmptyDatabase(t)
			ctx := context.Background()
			if !tc.fresh {
				require.NoError(t, postgres.Migrate(ctx, url))
			}
			_, err := connect(t, url).Exec(ctx, tc.setup)
			require.NoError(t, err)
			err = postgres.Migrate(ctx, url)
			require.ErrorContains(t, err, tc.want)
			require.NotEqual(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err))
		})
	}
}
