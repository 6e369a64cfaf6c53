package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals"
	"github.com/viswals/viswals/postgres"
	"github.com/viswals/viswals/postgres/pgtest"
)

func TestErrors_Unreachable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable", postgres.PoolConfig{ConnectTimeout: time.Second})
	require.NoError(t, err, "Open does not connect")
	defer s.Close()

	require.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(s.Ping(ctx)))
	_, _, err = s.UpsertBatch(ctx, []viswals.SealedUser{user(1, "A", "B", "a@example.com", 1, 1)})
	require.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err), "%v", err)
	require.Contains(t, err.Error(), "upsert batch: failed to connect", "details for logs")
	require.Equal(t, "upsert batch: database unavailable", viswals.ErrorMessage(err), "no details for clients")
	var connectErr *pgconn.ConnectError
	require.True(t, errors.As(err, &connectErr), "the driver error stays in the chain")
	_, err = s.Get(ctx, 1)
	require.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err))
	err = s.List(ctx, viswals.Filter{}, 0, 10, func(viswals.SealedUser) error { return nil })
	require.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err))
	_, err = s.Changes(ctx, viswals.Filter{}, viswals.Pos{}, 10, nil)
	require.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err))
	require.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(postgres.Migrate(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable")))
}

func TestErrors_ClosedStore(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	s.Close()
	_, _, err := s.UpsertBatch(context.Background(), []viswals.SealedUser{user(1, "A", "B", "a@example.com", 1, 1)})
	require.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err), "%v", err)
}

func TestErrors_Cancelled(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := s.UpsertBatch(ctx, []viswals.SealedUser{user(1, "A", "B", "a@example.com", 1, 1)})
	require.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err), "%v", err)
}

func TestErrors_BadURL(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(context.Background(), "postgres://u:secret@host:notaport/db", postgres.PoolConfig{})
	require.Equal(t, viswals.EINVALID, viswals.ErrorCode(err))
	require.NotContains(t, err.Error(), "secret")
}

func TestSQLStateCode(t *testing.T) {
	t.Parallel()
	for state, want := range map[string]string{
		"08006": viswals.EUNAVAILABLE, // connection_failure
		"57P01": viswals.EUNAVAILABLE, // admin_shutdown
		"57P03": viswals.EUNAVAILABLE, // cannot_connect_now
		"53300": viswals.EUNAVAILABLE, // too_many_connections
		"40P01": viswals.EUNAVAILABLE, // deadlock_detected
		"40001": viswals.EUNAVAILABLE, // serialization_failure
		"57014": viswals.EUNAVAILABLE, // query_canceled
		"22021": viswals.EINVALID,     // character_not_in_repertoire
		"22001": viswals.EINVALID,     // string_data_right_truncation
		"23505": viswals.EINVALID,     // unique_violation
		"54000": viswals.EINVALID,     // program_limit_exceeded
		"42P01": viswals.EINTERNAL,    // undefined_table: a bug
		"XX000": viswals.EINTERNAL,
		"":      viswals.EINTERNAL,
	} {
		require.Equal(t, want, postgres.SQLStateCode(state), state)
	}
}

// When the server terminates our connections (a restart, an admin), a
// call fails as unavailable or succeeds on a fresh connection, and the
// store recovers by itself.
func TestErrors_ConnectionsKilled(t *testing.T) {
	t.Parallel()
	s, url := newStore(t)
	ctx := context.Background()
	upsert(t, s, user(1, "A", "B", "a@example.com", 1, 1))
	admin := connect(t, url)
	_, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	require.NoError(t, err)

	// Each pooled connection may be found dead once, by the call that uses
	// it; the pool then replaces it.
	for attempt := 0; ; attempt++ {
		_, _, err = s.UpsertBatch(ctx, []viswals.SealedUser{user(2, "C", "D", "c@example.com", 1, 2)})
		if err == nil {
			break
		}
		require.Equal(t, viswals.EUNAVAILABLE, viswals.ErrorCode(err), "%v", err)
		require.Less(t, attempt, 4, "the store does not recover: %v", err)
	}
	_, err = s.Get(ctx, 2)
	require.NoError(t, err)
}

// A command pointed at a database no consumer has migrated is told so,
// not only which table is missing.
func TestErrors_NotMigrated(t *testing.T) {
	t.Parallel()
	s, err := postgres.Open(context.Background(), pgtest.NewEmptyDatabase(t), postgres.PoolConfig{MaxConns: 1})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	_, err = s.ListLoads(context.Background(), 0, 10)
	require.ErrorContains(t, err, `relation "loads" does not exist`)
	require.ErrorContains(t, err, "migrations on creates the tables")
}
