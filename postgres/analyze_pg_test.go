package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/viswals/viswals/internal/wait"
)

func TestAnalyzeIfStale(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	did, err := s.AnalyzeIfStale(ctx, 500, true)
	require.NoError(t, err)
	require.False(t, did, "nothing changed yet")

	_, _, err = s.UpsertBatch(ctx, benchUsers(0, 1))
	require.NoError(t, err)
	// The server publishes its change counters within about a second.
	wait.Until(t, 2*time.Minute, "1000 new rows in a table never analyzed to trigger ANALYZE", func() bool {
		did, err := s.AnalyzeIfStale(ctx, 500, false)
		require.NoError(t, err)
		return did
	})
	did, err = s.AnalyzeIfStale(ctx, 500, true)
	require.NoError(t, err)
	require.False(t, did, "just analyzed")
}
