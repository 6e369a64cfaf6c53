package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEmpty(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	empty, err := s.Empty(ctx)
	require.NoError(t, err)
	require.True(t, empty)

	upsert(t, s, user(1, "A", "B", "a@example.com", 1, 1))
	empty, err = s.Empty(ctx)
	require.NoError(t, err)
	require.False(t, empty)
}
