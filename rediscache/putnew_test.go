package rediscache

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/viswals/viswals"
)

func TestPutNew(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, client := newTestCache(t, 90*time.Second)

	// An entry already there (a read filled it, or a newer write landed
	// first) is kept; a missing one is written, with the TTL.
	newer := sampleUser(1, viswals.Version{Load: 2, Line: 1})
	newer.FirstName = "newer"
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{newer}))
	require.NoError(t, c.PutNew(ctx, []viswals.SealedUser{sampleUser(1, viswals.Version{Load: 1, Line: 1}), sampleUser(2, viswals.Version{Load: 1, Line: 2})}))

	got, err := c.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, "newer", got.FirstName)
	got, err = c.Get(ctx, 2)
	require.NoError(t, err)
	assert.Equal(t, sampleUser(2, viswals.Version{Load: 1, Line: 2}), got)
	ttl, err := client.PTTL(ctx, c.Key(2)).Result()
	require.NoError(t, err)
	assert.InDelta(t, 90*time.Second, ttl, float64(5*time.Second))

	// A later Put of a newer version replaces what PutNew wrote.
	update := sampleUser(2, viswals.Version{Load: 3, Line: 1})
	update.FirstName = "updated"
	require.NoError(t, c.Put(ctx, []viswals.SealedUser{update}))
	got, err = c.Get(ctx, 2)
	require.NoError(t, err)
	assert.Equal(t, "updated", got.FirstName)

	require.NoError(t, c.PutNew(ctx, nil))
}
