package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/postgres"
)

func TestListen_WakesOnCommit(t *testing.T) {
	t.Parallel()
	s, url := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	wake := make(chan struct{}, 1)
	done := make(chan error)
	go func() {
		done <- s.Listen(ctx, func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		})
	}()
	// Generous: on a starved machine a reconnect or a commit can take long;
	// a missing wake-up still fails.
	deadline := time.After(2 * time.Minute)
	await := func(what string) {
		t.Helper()
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("no wake-up %s", what)
		}
	}
	await("when listening starts")

	upsert(t, s, user(1, "A", "B", "a@example.com", 1, 1))
	await("after a commit")

	// A batch that changes nothing notifies nobody.
	upsert(t, s, user(1, "A", "B", "a@example.com", 1, 1))
	select {
	case <-wake:
		t.Fatal("woken by a batch that changed nothing")
	case <-time.After(200 * time.Millisecond):
	}

	// The server drops the listening connection: Listen reconnects, wakes
	// (a notification may have been lost meanwhile) and listens again.
	admin := connect(t, url)
	var killed int
	require.NoError(t, admin.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN `+postgres.NotifyChannel+`'`).Scan(&killed))
	require.Equal(t, 1, killed)
	await("after reconnecting")
	upsert(t, s, user(2, "C", "D", "c@example.com", 1, 2))
	await("after a commit, on the new connection")

	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(time.Minute):
		t.Fatal("Listen did not return after cancel")
	}
}
